"""Datasets: the embedded scikit-image photo set used by the demo, the
loading transform that skips unreadable images, the ImageNet-style
evaluation folders (ImageNet-A/-R/-Sketch/-V2/-C, ImageNet-Real) with the
ImageNet-A / -R class subsets, and the CIFAR-10 archive
(:mod:`.cifar10_archive`), and ColorJitter with hue shifts that work under
numpy 2 (:mod:`.color_jitter`)."""
from .color_jitter import HueWrapColorJitter
from .imagenet_folders import ImageNetClassFolders, ImageNetReal
from .skimage_photos import SkimagePhotos
from .transforms import LoadImageFromFileOrSkip, UnreadableImageError

__all__ = [
    'HueWrapColorJitter', 'ImageNetClassFolders', 'ImageNetReal', 'SkimagePhotos',
    'LoadImageFromFileOrSkip', 'UnreadableImageError'
]
