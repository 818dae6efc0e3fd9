"""Detection components for mmdet 3.x (imported by detection configs only).

``import aemim_mm.det`` (needs mmdet and full mmcv) registers in mmdet's
registries:

* ``ViTDetBackbone`` (``MODELS``): plain ViT with windowed / global attention
  that loads exported MAE / AEMIM encoders (:mod:`.vit_backbone`);
* ``SimpleFeaturePyramid`` (``MODELS``): ViTDet's pyramid, in place of ``FPN``
  (:mod:`.simple_feature_pyramid`);
* ``LN2d`` (``MODELS``): timm's ``LayerNorm2d`` (:mod:`.norm`);
* ``ViTLayerDecayOptimWrapperConstructor`` (``OPTIM_WRAPPER_CONSTRUCTORS``):
  layer-wise lr decay for detectors (:mod:`.layer_decay`).

:func:`make_tiny_coco` (:mod:`.tiny_coco`) writes a tiny COCO-format set.
Use in a config::

    custom_imports = dict(imports=['aemim_mm.det'], allow_failed_imports=False)
"""
from .layer_decay import ViTLayerDecayOptimWrapperConstructor
from .norm import LayerNorm2d
from .simple_feature_pyramid import SimpleFeaturePyramid
from .tiny_coco import CATEGORIES, make_tiny_coco
from .vit_backbone import ViTDetBackbone

__all__ = [
    'ViTDetBackbone', 'SimpleFeaturePyramid', 'LayerNorm2d',
    'ViTLayerDecayOptimWrapperConstructor', 'make_tiny_coco', 'CATEGORIES'
]
