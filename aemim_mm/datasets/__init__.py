"""Datasets: the embedded scikit-image photo set used by the demo."""
from .skimage_photos import SkimagePhotos

__all__ = ['SkimagePhotos']
from .transforms import (LoadImageFromFileOrSkip,  # noqa: E402
                         UnreadableImageError)

__all__ += ['LoadImageFromFileOrSkip', 'UnreadableImageError']
