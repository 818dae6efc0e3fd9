"""Load an image, and fail clearly or skip (and count) when it is unreadable.

mmcv's ``LoadImageFromFile`` reports an unreadable image in several ways: an
``AssertionError`` naming the file (OpenCV could not decode it; gone under
``python -O``), a Pillow ``OSError`` / ``UnidentifiedImageError`` that does not
name it, an OpenCV error for an empty file, or ``None`` without a word when
``ignore_empty=True``. :class:`LoadImageFromFileOrSkip` makes that one policy:

* ``on_error='raise'`` (default): :class:`UnreadableImageError` naming the file
  and the reason, before the sample goes any further.
* ``on_error='skip'``: a warning naming the file and the reason, the file is
  counted, and the transform returns ``None``. mmengine's ``BaseDataset``
  then fetches another random sample (up to its ``max_refetch`` times, 1000 by
  default) in the same ``__getitem__`` call, so the batch keeps its size.

How the count reaches the log: the transform runs wherever the dataset runs,
i.e. in the data loader's worker processes when ``num_workers > 0``, so it
cannot update the runner's counters itself. Instead it records the skipped
paths in the *next* sample it loads successfully, under the key
:data:`SKIPPED_KEY`; with ``BaseDataset``'s re-fetch that is the sample that
replaces the broken one. :class:`~aemim_mm.engine.SkipCounterHook` reads the
key from every batch (it makes ``PackInputs`` pack it), sums it over ranks and
logs the total. See ``docs/reliability.md``, "Reliability: loading and input
checks", for the limits.
"""
import logging
from typing import List, Optional

from mmcv.image.io import imread_flags, supported_backends
from mmcv.transforms import LoadImageFromFile
from mmengine.logging import print_log

from mmpretrain.registry import TRANSFORMS

__all__ = ['LoadImageFromFileOrSkip', 'UnreadableImageError', 'SKIPPED_KEY',
           'ON_ERROR']

#: Key of the list of skipped image paths in a sample's results / metainfo.
SKIPPED_KEY = 'skipped_images'

#: The policies of :class:`LoadImageFromFileOrSkip` for an unreadable image.
ON_ERROR = ('raise', 'skip')


class UnreadableImageError(OSError):
    """An image file is missing, empty, corrupt or truncated."""


@TRANSFORMS.register_module()
class LoadImageFromFileOrSkip(LoadImageFromFile):
    """``LoadImageFromFile`` with an explicit policy for unreadable images.

    An image is unreadable when reading its bytes fails (missing file, I/O
    error) or decoding them fails or gives nothing (empty, corrupt or
    truncated file; both the ``cv2`` and the ``pillow`` backend refuse a
    truncated JPEG or PNG, unless Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES``
    was switched on elsewhere).

    Every sample it loads gets the key :data:`SKIPPED_KEY`: the list of paths
    this process skipped since its previous successful load (usually empty).

    Args:
        on_error: ``'raise'`` (default) raises :class:`UnreadableImageError`
            naming the file; ``'skip'`` logs a warning naming it, counts it and
            returns ``None`` so that ``BaseDataset`` re-fetches another sample
            (training datasets only: a ``test_mode`` dataset raises on
            ``None``).
        to_float32: As for ``LoadImageFromFile``.
        color_type: As for ``LoadImageFromFile``: one of mmcv's
            ``imread_flags`` (``'color'``, ``'grayscale'``, ``'unchanged'``,
            ``'color_ignore_orientation'``, ``'grayscale_ignore_orientation'``).
        imdecode_backend: As for ``LoadImageFromFile``: one of mmcv's
            ``supported_backends`` (``'cv2'``, ``'turbojpeg'``, ``'pillow'``,
            ``'tifffile'``).
        backend_args: As for ``LoadImageFromFile``.

    Attributes:
        num_skipped: Images skipped by this instance in this process (a worker
            process has its own copy; the run's total is what
            :class:`~aemim_mm.engine.SkipCounterHook` logs).

    Raises:
        ValueError: At build time, for a bad option (the message names the
            option and what is allowed).
    """

    def __init__(self,
                 on_error: str = 'raise',
                 to_float32: bool = False,
                 color_type: str = 'color',
                 imdecode_backend: str = 'cv2',
                 *,
                 backend_args: Optional[dict] = None) -> None:
        name = type(self).__name__
        if not isinstance(on_error, str) or on_error not in ON_ERROR:
            raise ValueError(f'{name}: on_error must be one of {ON_ERROR}, '
                             f'got {on_error!r}.')
        if not isinstance(to_float32, bool):
            raise ValueError(f'{name}: to_float32 must be a bool, got '
                             f'{to_float32!r}.')
        if not isinstance(color_type, str) or color_type not in imread_flags:
            raise ValueError(f'{name}: color_type must be one of '
                             f'{tuple(imread_flags)}, got {color_type!r}.')
        if not isinstance(imdecode_backend, str) \
                or imdecode_backend not in supported_backends:
            raise ValueError(f'{name}: imdecode_backend must be one of '
                             f'{tuple(supported_backends)}, got '
                             f'{imdecode_backend!r}.')
        if backend_args is not None and not isinstance(backend_args, dict):
            raise ValueError(f'{name}: backend_args must be None or a dict, '
                             f'got {backend_args!r}.')
        super().__init__(
            to_float32=to_float32,
            color_type=color_type,
            imdecode_backend=imdecode_backend,
            ignore_empty=False,  # the policy is on_error
            backend_args=backend_args)
        self.on_error = on_error
        self.num_skipped = 0
        self._pending: List[str] = []

    def transform(self, results: dict) -> Optional[dict]:
        """Load the image of ``results['img_path']``.

        Args:
            results: The data info of one sample (``img_path`` required).

        Returns:
            ``results`` with ``img``, ``img_shape``, ``ori_shape`` and
            :data:`SKIPPED_KEY`; or ``None`` when the image is unreadable and
            ``on_error='skip'``.

        Raises:
            UnreadableImageError: If the image is unreadable and
                ``on_error='raise'``.
        """
        path = results['img_path']
        try:
            # mmcv asserts the decoded image is not None; under `python -O`
            # the assert is gone and `img.shape` raises instead. Both land
            # here, like read and decode errors.
            loaded = super().transform(results)
        except Exception as e:  # noqa: BLE001  (any read / decode failure)
            reason = f'{type(e).__name__}: {e}'.strip()
            if self.on_error == 'raise':
                raise UnreadableImageError(
                    f'{type(self).__name__}: cannot read image {path!r} '
                    f'({reason}). Fix or remove the file, or set '
                    "on_error='skip' to skip unreadable images (they are "
                    'logged and counted).') from e
            self.num_skipped += 1
            self._pending.append(str(path))
            print_log(
                f'{type(self).__name__}: skipped unreadable image {path!r} '
                f'({reason}); {self.num_skipped} skipped in this process.',
                logger='current',
                level=logging.WARNING)
            return None
        loaded[SKIPPED_KEY] = self._pending
        self._pending = []
        return loaded

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(on_error={self.on_error!r}, '
                + super().__repr__().split('(', 1)[1])
