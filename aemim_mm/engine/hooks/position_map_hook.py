"""PositionMapHook: AdPE's perturbed position map, drawn during training.

Every ``vis_interval`` iterations and after the last one, on rank 0, each
encoder with ``adversarial_positions`` (MAEPlusViT, SimMIMViT) gets its
picture (:func:`~aemim_mm.visualization.position_map.draw_position_map`:
how far each masked patch's input moved, and where it is told it is)
written with ``runner.visualizer.add_image(name, ...)`` (the
LocalVisBackend saves ``<log_dir>/vis_data/vis_image/<name>_<iter>.png``).
Config::

    custom_hooks = [dict(type='AdversarialPositionsHook'),
                    dict(type='PositionMapHook', vis_interval=500)]
"""
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmpretrain.registry import HOOKS
from ...models.adversarial_positions import AdversarialPositions
from ...utils.checks import is_int
from ...visualization.position_map import draw_position_map

__all__ = ['PositionMapHook']


@HOOKS.register_module()
class PositionMapHook(Hook):
    """Draw AdPE's position map (see the module).

    Args:
        vis_interval: Draw every this many iterations; 0: only at the end.
        vis_at_end: Also draw after the last training iteration.
        name: The image's name (a suffix ``_<module>`` when the model has
            several adversaries).
        cell: Pixels per patch.

    Raises:
        ValueError: On a bad argument, naming it.
    """

    priority = 'LOW'

    def __init__(self, vis_interval: int = 500, vis_at_end: bool = True,
                 name: str = 'adpe_positions', cell: int = 24) -> None:
        for arg, value, low in (('vis_interval', vis_interval, 0),
                                ('cell', cell, 4)):
            if not is_int(value) or value < low:
                raise ValueError(f'PositionMapHook: {arg} must be an int >= '
                                 f'{low}, got {value!r}.')
        if not isinstance(vis_at_end, bool):
            raise ValueError('PositionMapHook: vis_at_end must be a bool, '
                             f'got {vis_at_end!r}.')
        if not isinstance(name, str) or not name:
            raise ValueError('PositionMapHook: name must be a non-empty str, '
                             f'got {name!r}.')
        self.vis_interval, self.vis_at_end = vis_interval, vis_at_end
        self.name, self.cell = name, cell

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        due = (self.vis_interval > 0 and self.every_n_train_iters(
            runner, self.vis_interval)) or (self.vis_at_end and
                                            self.is_last_train_iter(runner))
        if not due or not is_main_process():
            return
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        encoders = [(name, m) for name, m in model.named_modules()
                    if isinstance(getattr(m, 'adversarial_positions', None),
                                  AdversarialPositions)]
        for name, encoder in encoders:
            image = draw_position_map(encoder.adversarial_positions,
                                      encoder.pos_embed[:, 1:].detach(),
                                      encoder.mask_token.detach(), self.cell)
            suffix = '' if len(encoders) == 1 else '_' + name.replace('.',
                                                                      '_')
            runner.visualizer.add_image(self.name + suffix, image,
                                        step=runner.iter + 1)
