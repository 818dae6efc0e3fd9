"""Former import path of the ImageNet-A / -R class subsets.

They are in :mod:`aemim_mm.datasets.imagenet_subsets`; this module
re-exports them.
"""
from ..datasets.imagenet_subsets import (IMAGENET_A_WNIDS, IMAGENET_R_WNIDS,
                                         SUBSETS, imagenet1k_wnid_to_index,
                                         imagenet1k_wnids, subset_indices,
                                         wnids_to_indices)

__all__ = [
    'IMAGENET_A_WNIDS', 'IMAGENET_R_WNIDS', 'SUBSETS',
    'imagenet1k_wnid_to_index', 'imagenet1k_wnids', 'subset_indices',
    'wnids_to_indices'
]
