"""Datasets: the embedded scikit-image photo set used by the demo, the
loading transform that skips unreadable images, and the CIFAR-10 archive
(:mod:`.cifar10_archive`)."""
from .skimage_photos import SkimagePhotos

__all__ = ['SkimagePhotos']
from .transforms import (LoadImageFromFileOrSkip,  # noqa: E402
                         UnreadableImageError)

__all__ += ['LoadImageFromFileOrSkip', 'UnreadableImageError']
