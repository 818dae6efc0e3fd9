"""Layer-wise learning-rate decay for mmdet detectors with a ViT backbone.

mmpretrain's ``LearningRateDecayOptimWrapperConstructor`` computes each
parameter's depth with ``model.get_layer_depth(name)``: mmpretrain's
classifiers have that method, mmdet's detectors do not (it raises
``NotImplementedError``). Its backbone does: mmpretrain's
``VisionTransformer.get_layer_depth(name, prefix='backbone.')`` gives
``patch_embed`` / ``pos_embed`` depth 0, ``backbone.layers.N`` depth N + 1 and
everything else (the final norm, the neck, the heads) the top depth
``num_layers + 1``. With decay rate ``d``, a parameter at depth ``k`` gets
``lr × d ** (num_layers + 1 - k)``, exactly ViTDet's rule.

:class:`ViTLayerDecayOptimWrapperConstructor` is that constructor, handing it
the backbone's ``get_layer_depth`` when the model has none. Weight-decay
options (``norm_decay_mult``, ``bias_decay_mult``, ``flat_decay_mult``,
``custom_keys`` with ``decay_mult``) are mmpretrain's.
"""
from functools import partial
from typing import Callable, List, Optional

from mmpretrain.engine.optimizers import \
    LearningRateDecayOptimWrapperConstructor
from torch import nn

from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS

from ..utils.checks import is_number


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class ViTLayerDecayOptimWrapperConstructor(
        LearningRateDecayOptimWrapperConstructor):
    """mmpretrain's layer-decay constructor for models whose backbone knows
    the layer depths (``model.backbone.get_layer_depth``).

    Use in an mmdet config::

        optim_wrapper = dict(
            optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
            constructor='ViTLayerDecayOptimWrapperConstructor',
            paramwise_cfg=dict(layer_decay_rate=0.75, flat_decay_mult=0.0))

    Raises:
        ValueError: ``layer_decay_rate`` not in (0, 1].
        TypeError: The model has no ``get_layer_depth`` and no backbone with
            one.
    """

    def __init__(self, optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None) -> None:
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        rate = self.paramwise_cfg.get('layer_decay_rate', 1.0)
        if not (is_number(rate) and 0 < rate <= 1):
            raise ValueError('optim_wrapper.paramwise_cfg.layer_decay_rate must '
                             f'be a number in (0, 1], got {rate!r}')

    def add_params(self,
                   params: List[dict],
                   module: nn.Module,
                   prefix: str = '',
                   get_layer_depth: Optional[Callable] = None,
                   **kwargs) -> None:
        """Adds the parameters, with depths from ``module.backbone``.

        Args:
            params (list[dict]): Parameter groups, extended in place.
            module (nn.Module): The model (first call) or a sub-module.
            prefix (str): The module's name prefix.
            get_layer_depth (callable, optional): ``name -> (depth,
                num_depths)``; found on the model or its backbone when None.
        """
        if get_layer_depth is None and not hasattr(module, 'get_layer_depth'):
            backbone = getattr(module, 'backbone', None)
            if not hasattr(backbone, 'get_layer_depth'):
                raise TypeError(
                    f'{type(self).__name__}: {type(module).__name__} has no '
                    '`get_layer_depth` method and no `backbone` with one (e.g. '
                    'mmpretrain VisionTransformer / aemim_mm ViTDetBackbone)')
            get_layer_depth = partial(
                backbone.get_layer_depth, prefix=f'{prefix}backbone.')
        super().add_params(params, module, prefix, get_layer_depth, **kwargs)
