"""Former import path of the ImageNet-style evaluation data sets.

They are in :mod:`aemim_mm.datasets.imagenet_folders`; this module re-exports
them.
"""
from ..datasets.imagenet_folders import (IMG_EXTENSIONS, ImageNetClassFolders,
                                         ImageNetReal,
                                         folder_to_imagenet_index)

__all__ = [
    'IMG_EXTENSIONS', 'ImageNetClassFolders', 'ImageNetReal',
    'folder_to_imagenet_index'
]
