"""AdversarialMaskHook: the learned mask's ascent (AdversarialMaskSimMIM).

Config::

    optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
        'mask_net': dict(lr_mult=-1.0, decay_mult=0.0)}))
    custom_hooks = [dict(type='AdversarialMaskHook')]

Before training (after a resume) it checks that every parameter of each
``AdversarialMaskSimMIM``'s masking network is in exactly one param group of
the optimiser, with a negative learning rate (ascent) and no weight decay,
refusing the run naming the parameter otherwise, and then marks the model
guarded (a training forward is refused before).
"""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmpretrain.registry import HOOKS
from ...models.adversarial_mask_simmim import AdversarialMaskSimMIM
from .adversarial_positions_hook import check_ascent, optimizers

__all__ = ['AdversarialMaskHook']


@HOOKS.register_module()
class AdversarialMaskHook(Hook):
    """Check that the optimiser climbs the masking networks (see the
    module)."""

    priority = 'NORMAL'

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        found = [(name, m) for name, m in model.named_modules()
                 if isinstance(m, AdversarialMaskSimMIM)]
        if not found:
            raise ValueError('AdversarialMaskHook: the model has no '
                             'AdversarialMaskSimMIM.')
        optims = optimizers(runner.optim_wrapper)
        for name, module in found:
            prefix = f'{name}.mask_net' if name else 'mask_net'
            for leaf, param in module.mask_net.named_parameters():
                check_ascent(f'{prefix}.{leaf}', param, optims,
                             key='mask_net')
        for _, module in found:
            module.guarded = True
