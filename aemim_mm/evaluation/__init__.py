"""Robustness evaluation of fine-tuned classifiers.

Importing this package registers in mmpretrain's registries the data sets
``ImageNetClassFolders``, ``ImageNetReal`` and the metrics
``SubsetAccuracy``, ``RealAccuracy``. The corruption generator
(``imagecorruptions-imaug``) and the attacks (ART) are imported only when
used.
"""
from .corruption_error import (ALEXNET_ERR, IMAGENET_C_CORRUPTIONS,
                               corruption_errors, mean_corruption_error,
                               ood_score)
from .datasets import ImageNetClassFolders, ImageNetReal
from .imagenet_subsets import (IMAGENET_A_WNIDS, IMAGENET_R_WNIDS,
                               imagenet1k_wnids, subset_indices)
from .metrics import RealAccuracy, SubsetAccuracy, restrict_to_subset

__all__ = [
    'ALEXNET_ERR', 'IMAGENET_C_CORRUPTIONS', 'corruption_errors',
    'mean_corruption_error', 'ood_score', 'ImageNetClassFolders',
    'ImageNetReal', 'IMAGENET_A_WNIDS', 'IMAGENET_R_WNIDS',
    'imagenet1k_wnids', 'subset_indices', 'RealAccuracy', 'SubsetAccuracy',
    'restrict_to_subset'
]
