"""Robustness evaluation of fine-tuned classifiers.

Importing this package registers in mmpretrain's registries the metrics
``SubsetAccuracy``, ``RealAccuracy`` and (through :mod:`aemim_mm.datasets`,
re-exported here) the data sets ``ImageNetClassFolders``, ``ImageNetReal``.
The corruption generator (``imagecorruptions-imaug``) and the attacks (ART)
are imported only when used.
"""
from ..datasets.imagenet_folders import ImageNetClassFolders, ImageNetReal
from ..datasets.imagenet_subsets import (IMAGENET_A_WNIDS, IMAGENET_R_WNIDS,
                                         imagenet1k_wnids, subset_indices)
from .corruption_error import (ALEXNET_ERR, IMAGENET_C_CORRUPTIONS,
                               corruption_errors, mean_corruption_error,
                               ood_score)
from .metrics import RealAccuracy, SubsetAccuracy, restrict_to_subset

__all__ = [
    'ALEXNET_ERR', 'IMAGENET_C_CORRUPTIONS', 'corruption_errors',
    'mean_corruption_error', 'ood_score', 'ImageNetClassFolders',
    'ImageNetReal', 'IMAGENET_A_WNIDS', 'IMAGENET_R_WNIDS',
    'imagenet1k_wnids', 'subset_indices', 'RealAccuracy', 'SubsetAccuracy',
    'restrict_to_subset'
]
