"""``LN2d``: timm's channels-first ``LayerNorm2d`` in mmdet's ``MODELS``.

mmcv and mmdet 3.3 register no LayerNorm over the channels of an NCHW map
(mmpretrain's ``LN2d`` lives in mmpretrain's registry, which mmdet-scoped
configs do not search). ViTDet's pyramid normalises with one, so the name
``LN2d`` is registered here, in mmdet's registry, for
``norm_cfg=dict(type='LN2d', eps=1e-6)``.
"""
from timm.layers import LayerNorm2d

from mmdet.registry import MODELS

if 'LN2d' not in MODELS.module_dict:
    MODELS.register_module(name='LN2d', module=LayerNorm2d)

__all__ = ['LayerNorm2d']
