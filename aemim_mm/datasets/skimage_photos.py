"""The photos embedded in :mod:`skimage.data` as an mmpretrain dataset.

The demo pre-trains on these few photos so that it runs offline and without a
data download. Every sample is one photo, as a full-size array; the random
crop of the pipeline makes the samples of one epoch differ.

Channel order: the samples are **BGR** (``HWC`` ``uint8``), the order that
``LoadImageFromFile`` gives. Use them, like every mmpretrain MAE / SimMIM
config, with ``SelfSupDataPreprocessor(..., to_rgb=True)`` and the RGB mean /
std of ImageNet.
"""
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np
from mmengine.dataset import BaseDataset

from mmpretrain.registry import DATASETS, TRANSFORMS
from ..utils.checks import is_int

#: The natural RGB photos of ``skimage.data`` that load offline (they ship
#: inside the scikit-image wheel). ``eagle``, ``lily``, ``skin`` and others
#: need a download (``pooch``) and are not listed; ``cat`` is the same photo as
#: ``chelsea``; ``colorwheel`` and ``logo`` are synthetic and not listed.
#: ``stereo_motorcycle`` is a (left, right, disparity) tuple: the left view
#: is used.
DEFAULT_PHOTOS = ('astronaut', 'coffee', 'chelsea', 'rocket',
                  'hubble_deep_field', 'immunohistochemistry', 'retina',
                  'stereo_motorcycle')

#: Grayscale photos of ``skimage.data`` that load offline. They are not used by
#: default; named in ``names`` they are converted to RGB by repeating the
#: single channel three times.
GRAYSCALE_PHOTOS = ('camera', 'moon', 'coins', 'clock', 'page', 'text',
                    'grass', 'gravel', 'brick', 'microaneurysms')


#: Callables of ``skimage.data`` that are not photo loaders.
_NOT_PHOTOS = frozenset({'lbp_frontal_face_cascade_filename', 'data_dir',
                         'file_hash', 'binary_blobs', 'checkerboard'})


def _to_uint8_rgb(name: str, img: np.ndarray) -> np.ndarray:
    """Convert what a ``skimage.data`` loader returned to ``HWC`` uint8 RGB.

    Args:
        name: The photo's name, for error messages.
        img: The loaded array: ``HW`` (grayscale), ``HWC`` with 3 (RGB) or 4
            (RGBA, alpha dropped) channels; uint8, bool or float in [0, 1].

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 RGB.

    Raises:
        ValueError: If the array is not an image of a supported shape / dtype.
    """
    img = np.asarray(img)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    elif np.issubdtype(img.dtype, np.floating):
        if img.min() < 0 or img.max() > 1:
            raise ValueError(
                f'SkimagePhotos: photo {name!r} is a float image outside '
                f'[0, 1] (range {img.min()}..{img.max()}); cannot convert it.')
        img = np.round(img * 255).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ValueError(f'SkimagePhotos: photo {name!r} has dtype '
                         f'{img.dtype}; expected uint8, bool or float.')
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'SkimagePhotos: photo {name!r} has shape '
                         f'{img.shape}; expected (H, W), (H, W, 3) or '
                         '(H, W, 4) -- it is not a 2-D image.')
    return np.ascontiguousarray(img)


def load_skimage_photo(name: str) -> np.ndarray:
    """Load one photo of :mod:`skimage.data` as ``HWC`` uint8 RGB.

    Args:
        name: The name of a ``skimage.data`` loader, e.g. ``'astronaut'``.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 RGB.

    Raises:
        ValueError: If ``skimage.data`` has no photo of that name, or what it
            returns is not a 2-D image.
        RuntimeError: If the photo exists but cannot be loaded here (e.g. it
            needs a download, which fails offline).
    """
    import skimage.data

    if (not isinstance(name, str) or name.startswith(('_', 'download'))
            or name in _NOT_PHOTOS
            or not callable(getattr(skimage.data, name, None))):
        raise ValueError(
            f'SkimagePhotos: skimage.data has no photo named {name!r}. '
            f'Photos that load offline: RGB {list(DEFAULT_PHOTOS)}, '
            f'grayscale (converted to RGB) {list(GRAYSCALE_PHOTOS)}.')
    try:
        img = getattr(skimage.data, name)()
    except Exception as e:  # noqa: BLE001  (pooch / network / file errors)
        raise RuntimeError(
            f'SkimagePhotos: photo {name!r} could not be loaded from '
            f'skimage.data ({type(e).__name__}: {e}). Photos that need a '
            'download (e.g. eagle, lily) fail offline; choose one of '
            f'{list(DEFAULT_PHOTOS + GRAYSCALE_PHOTOS)}.') from e
    if isinstance(img, tuple):  # stereo_motorcycle: (left, right, disp)
        img = img[0]
    return _to_uint8_rgb(name, img)


def _resize_max_side(img: np.ndarray, max_size: int) -> np.ndarray:
    """Shrink ``img`` (area interpolation) so its longer side is ``max_size``.

    Images that are already small enough are returned unchanged.
    """
    h, w = img.shape[:2]
    if max(h, w) <= max_size:
        return img
    import cv2
    scale = max_size / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


@DATASETS.register_module()
class SkimagePhotos(BaseDataset):
    """The photos embedded in :mod:`skimage.data`, for offline demos.

    Each sample is a dict with ``img`` (the full photo, ``HWC`` uint8,
    **BGR** like ``LoadImageFromFile`` gives -- pair it with
    ``SelfSupDataPreprocessor(to_rgb=True)``), ``img_shape``, ``ori_shape``
    and ``photo`` (its name). Do not put ``LoadImageFromFile`` in the
    pipeline; start it with the crop.

    Args:
        names: The ``skimage.data`` photos to use. Defaults to
            :data:`DEFAULT_PHOTOS` (every natural RGB photo that loads
            offline).
            Grayscale photos (:data:`GRAYSCALE_PHOTOS`) may be named; they are
            converted to RGB by repeating the channel.
        repeat: How many times each photo appears in one epoch, so that
            ``len(dataset) == len(names) * repeat``. The random crops of the
            pipeline make the repeats differ.
        max_size: If given, photos whose longer side exceeds it are shrunk
            (area interpolation, aspect kept) at load time, so a random crop
            covers a recognisable part of the scene and cropping is cheap.
        pipeline: The data pipeline (transforms after loading).
        test_mode: Whether the dataset is used for testing (no re-fetch on a
            failed pipeline).
        lazy_init: Whether to defer loading the photos until first use.
        **kwargs: Other :class:`mmengine.dataset.BaseDataset` arguments
            (``indices`` selects photos before ``repeat``).

    Raises:
        ValueError: If a name is not a photo of ``skimage.data``, ``names`` is
            empty or has duplicates, ``repeat`` is not a positive int, or
            ``max_size`` is not a positive int.
        RuntimeError: If a named photo cannot be loaded (the message names it).
    """

    METAINFO: dict = dict(classes=None)

    def __init__(self,
                 names: Optional[Sequence[str]] = None,
                 repeat: int = 1,
                 max_size: Optional[int] = None,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 test_mode: bool = False,
                 lazy_init: bool = False,
                 **kwargs) -> None:
        if not (names is None or isinstance(names, str) or
                (isinstance(names, (list, tuple))
                 and all(isinstance(n, str) for n in names))):
            raise ValueError('SkimagePhotos: names must be None, a str or a '
                             f'list of str, got {names!r}.')
        names = tuple(DEFAULT_PHOTOS if names is None else
                      ([names] if isinstance(names, str) else names))
        if not names:
            raise ValueError('SkimagePhotos: `names` is empty; name at least '
                             f'one photo, e.g. {list(DEFAULT_PHOTOS)}.')
        dups = sorted({n for n in names if names.count(n) > 1})
        if dups:
            raise ValueError(f'SkimagePhotos: `names` has duplicates {dups}; '
                             'use `repeat` to repeat photos.')
        if not is_int(repeat) or repeat < 1:
            raise ValueError('SkimagePhotos: `repeat` must be a positive int, '
                             f'got {repeat!r}.')
        if max_size is not None and (not is_int(max_size)
                                     or max_size < 1):
            raise ValueError('SkimagePhotos: `max_size` must be None or a '
                             f'positive int, got {max_size!r}.')
        self.names = names
        self.repeat = int(repeat)
        self.max_size = max_size
        # Build transforms through mmpretrain's registry (as mmpretrain's own
        # BaseDataset does), so the dataset works without a default scope.
        transforms = [
            TRANSFORMS.build(t) if isinstance(t, dict) else t
            for t in pipeline
        ]
        super().__init__(
            ann_file='',
            pipeline=transforms,
            test_mode=test_mode,
            lazy_init=lazy_init,
            **kwargs)

    def load_data_list(self) -> List[Dict]:
        """Load every named photo (BGR) into one data-info dict each.

        Returns:
            list[dict]: One dict per photo (before ``repeat``).
        """
        data_list = []
        for name in self.names:
            rgb = load_skimage_photo(name)
            if self.max_size is not None:
                rgb = _resize_max_side(rgb, self.max_size)
            bgr = np.ascontiguousarray(rgb[..., ::-1])
            h, w = bgr.shape[:2]
            data_list.append(
                dict(img=bgr, img_shape=(h, w), ori_shape=(h, w), photo=name))
        return data_list

    @property
    def num_photos(self) -> int:
        """int: The number of distinct photos (``len(self) // repeat``)."""
        return super().__len__()

    def __len__(self) -> int:
        """int: ``num_photos * repeat``."""
        return self.num_photos * self.repeat

    def get_data_info(self, idx: int) -> dict:
        """Return a copy of the data info of sample ``idx``.

        Args:
            idx: Index in ``[-len(self), len(self))``; sample ``idx`` is photo
                ``idx % num_photos``.

        Returns:
            dict: A fresh copy (the pipeline may modify it in place), with
            ``sample_idx`` set to the non-negative ``idx``.
        """
        n = len(self)
        if not -n <= idx < n:
            raise IndexError(f'SkimagePhotos: index {idx} out of range for '
                             f'{n} samples.')
        idx = idx % n
        info = super().get_data_info(idx % self.num_photos)
        info['sample_idx'] = idx
        return info
