"""aemim_mm: adversarial examples for masked image modeling, as an mmpretrain plug-in.

Importing this package registers its components in mmpretrain's registries
(``MODELS``, ``HOOKS``, ``DATASETS``), so that an mmpretrain config only needs::

    custom_imports = dict(imports=['aemim_mm'], allow_failed_imports=False)

Detection components live in :mod:`aemim_mm.det`, imported by detection configs
only, so that importing :mod:`aemim_mm` never requires mmdet.
"""
from .version import __version__
from . import (apis, datasets, engine, evaluation, models,  # noqa: F401
               utils, visualization)

__all__ = ['__version__']
