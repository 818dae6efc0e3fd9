"""Safe loading of mmengine checkpoints with ``torch.load(weights_only=True)``.

Since torch 2.6, :func:`torch.load` defaults to ``weights_only=True``: the
unpickler only builds tensors, containers and globals on an allow-list. A
checkpoint written by mmengine's ``Runner`` holds a few more things, all in its
``message_hub`` entry: ``HistoryBuffer`` objects (the logged scalars) backed by
numpy arrays, numpy scalars (e.g. the ``eta`` runtime info) and, through
``HistoryBuffer.__getstate__``, references to ``HistoryBuffer.min`` / ``max`` /
``current`` / ``mean``. Torch's pickle protocol 2 stores those methods as
``getattr(HistoryBuffer, 'min')``, i.e. with the global ``builtins.getattr``.
Without an allow-list, ``Runner.resume`` fails with an ``UnpicklingError``.

:func:`register_checkpoint_safe_globals` adds exactly these globals. Instead of
the real ``getattr`` (which would let a checkpoint read any attribute of any
allowed object) it registers, under the name ``builtins.getattr``, a function
that only returns the statistics methods of ``HistoryBuffer``. The objects on
the list were found by saving checkpoints with a real ``Runner``
(``IterBasedTrainLoop`` and ``EpochBasedTrainLoop``; ``AmpOptimWrapper``
only adds the grad scaler's state, a dict of Python numbers) and listing their
globals with :func:`torch.serialization.get_unsafe_globals_in_checkpoint`.
The config in ``meta['cfg']`` is stored as text: no ``ConfigDict`` needed.

Safety is never switched off: nothing here passes ``weights_only=False``.
mmengine's loaders hand checkpoints to :func:`safe_load`: local files
(:func:`register_safe_local_loader`) and downloads
(:func:`register_safe_url_loaders`; mmengine downloads with
``torch.hub.load_state_dict_from_url``, whose ``weights_only`` defaults to
``False``).
"""
import importlib
import os
import pickle
from typing import Any, Callable, List, Optional, Tuple, Union
from urllib.parse import urlparse

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer

__all__ = [
    'register_checkpoint_safe_globals', 'register_safe_local_loader',
    'register_safe_url_loaders', 'safe_load', 'UnsafeCheckpointError'
]

SafeGlobal = Union[Callable, Tuple[Callable, str]]

# The statistics methods that ``HistoryBuffer.__getstate__`` pickles.
_HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')

# numpy dtypes of the arrays and scalars that mmengine stores: float64 / int64
# for ``HistoryBuffer`` (Python floats and ints), float32 / int32 for values a
# user logs from numpy or on platforms whose default int is 32 bit.
_NUMPY_DTYPES = ('float64', 'float32', 'int64', 'int32')


# Words that mark the line of torch's error message that names the problem.
_REASON_KEYS = ('GLOBAL', 'not allowed', 'Can only', 'unrecognized')


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds a global outside the ``weights_only`` allow-list."""


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """Stand-in for ``builtins.getattr`` while unpickling a checkpoint.

    Only ``getattr(HistoryBuffer, name)`` for a statistics method name is
    allowed; this is how pickle protocol 2 stores ``HistoryBuffer.min`` etc.

    Args:
        obj: The object the checkpoint asks an attribute of.
        name: The attribute name.

    Returns:
        The unbound ``HistoryBuffer`` method.

    Raises:
        pickle.UnpicklingError: For any other object or attribute.
    """
    if obj is HistoryBuffer and name in _HISTORY_BUFFER_METHODS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'getattr({getattr(obj, "__qualname__", type(obj).__name__)}, '
        f'{name!r}) is not allowed in a checkpoint: aemim_mm only allows '
        f'getattr(HistoryBuffer, name) for name in {_HISTORY_BUFFER_METHODS}')


def _numpy_multiarray() -> Any:
    """Return numpy's ``multiarray`` module (``numpy._core`` in numpy 2)."""
    try:
        return importlib.import_module('numpy._core.multiarray')
    except ImportError:  # numpy 1
        return importlib.import_module('numpy.core.multiarray')


def _safe_globals() -> List[SafeGlobal]:
    """The explicit allow-list for mmengine checkpoints.

    Returns:
        Items for :func:`torch.serialization.add_safe_globals`.
    """
    multiarray = _numpy_multiarray()
    items: List[SafeGlobal] = [
        HistoryBuffer,
        (_history_buffer_getattr, 'builtins.getattr'),
        # (collections.OrderedDict, torch.Size ... are allowed by torch.)
        np.ndarray,
        np.dtype,
    ]
    # numpy 2 pickles these as ``numpy._core.multiarray.*``, numpy 1 as
    # ``numpy.core.multiarray.*``: accept checkpoints written by either.
    for fn_name in ('_reconstruct', 'scalar'):
        fn = getattr(multiarray, fn_name)
        for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
            items.append((fn, f'{module}.{fn_name}'))
    # ``np.dtype(...)`` returns instances of concrete classes
    # (``numpy.dtypes.Float64DType`` ...), whose state the unpickler only sets
    # when the class itself is allowed.
    for dtype_name in _NUMPY_DTYPES:
        items.append(type(np.dtype(dtype_name)))
    return items


def register_checkpoint_safe_globals() -> None:
    """Allow mmengine's own checkpoints under ``weights_only=True``.

    Idempotent: torch keeps the allowed globals in a set, and the items are
    the same objects on every call.
    """
    torch.serialization.add_safe_globals(_safe_globals())


def _disallowed_globals(path: str) -> List[str]:
    """List the globals of a checkpoint that are not allowed (best effort)."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # not a zip checkpoint, unreadable ...
        return []


def _reason(message: str) -> str:
    """Pick the informative line out of torch's ``weights_only`` error."""
    lines = [line.strip() for line in message.splitlines()]
    for line in lines:
        line = line.split('WeightsUnpickler error:')[-1].strip()
        if any(key in line for key in _REASON_KEYS):
            return line
    return ' '.join(line for line in lines if line)


def safe_load(path: Union[str, os.PathLike],
              map_location: Any = 'cpu') -> Any:
    """Load a checkpoint with ``torch.load(weights_only=True)``.

    The aemim_mm allow-list is registered first.

    Args:
        path: The checkpoint file.
        map_location: As for :func:`torch.load`. Defaults to ``'cpu'``.

    Returns:
        The loaded object (usually a dict).

    Raises:
        UnsafeCheckpointError: If the checkpoint holds globals outside the
            allow-list (its message names the file and the globals).
    """
    register_checkpoint_safe_globals()
    path = os.fspath(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        found = _disallowed_globals(path)
        what = (f'globals not on the weights_only allow-list '
                f'({", ".join(sorted(found))})' if found else
                'an object the weights_only unpickler refuses')
        raise UnsafeCheckpointError(
            f'Refused to load checkpoint {path!r}: it holds {what}. Only load '
            'it with weights_only=False if you trust its source. Reason: '
            f'{_reason(str(e))}') from None


def load_from_local_safely(filename: str, map_location: Any) -> Any:
    """mmengine's loader for local paths, through :func:`safe_load`.

    Same behaviour as mmengine's ``load_from_local`` (``weights_only`` stays
    on), but a refused checkpoint raises :class:`UnsafeCheckpointError`
    naming the file and the disallowed globals.
    """
    filename = os.path.expanduser(filename)
    if not os.path.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return safe_load(filename, map_location=map_location)


def register_safe_local_loader() -> None:
    """Route mmengine's local checkpoint loads (``load_from``, ``resume``,
    ``init_cfg=dict(type='Pretrained')``) through :func:`safe_load`."""
    from mmengine.runner import CheckpointLoader
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local_safely, force=True)


def load_url_safely(url: str,
                    model_dir: Optional[str] = None,
                    map_location: Any = None,
                    progress: bool = True) -> Any:
    """mmengine's ``load_url`` (``torch.hub.load_state_dict_from_url``), with
    ``weights_only`` kept on.

    Downloads to the same cache (``<torch hub dir>/checkpoints/<file name>``,
    or ``model_dir``) unless the file is there, and loads it with
    :func:`safe_load`, whose refusal names the file.

    Raises:
        OSError: If the download fails; the message names the URL.
    """
    model_dir = model_dir or os.path.join(torch.hub.get_dir(), 'checkpoints')
    os.makedirs(model_dir, exist_ok=True)
    path = os.path.join(model_dir, os.path.basename(urlparse(url).path))
    if not os.path.exists(path):
        try:    # torch writes a temporary file and moves it when complete
            torch.hub.download_url_to_file(url, path, progress=progress)
        except OSError as e:    # URLError, HTTPError: often without the URL
            raise OSError(f'Could not download checkpoint {url!r} to '
                          f'{path!r}: {e}') from e
    return safe_load(path, map_location=map_location)


def register_safe_url_loaders() -> None:
    """Keep ``weights_only`` on for every checkpoint mmengine downloads.

    All of mmengine's download schemes (``http://``, ``https://`` and the
    model-zoo ones: ``torchvision://``, ``modelzoo://``, ``open-mmlab://``,
    ``openmmlab://``, ``mmcls://``) end in ``load_from_http``, which (rank 0
    first) calls ``load_url`` of ``mmengine.runner.checkpoint``:
    ``torch.hub.load_state_dict_from_url``, whose ``weights_only`` defaults
    to ``False``. That one name is bound to :func:`load_url_safely`; mmengine's
    scheme registry has no hook below ``load_from_http``. Idempotent.
    """
    from mmengine.runner import checkpoint
    checkpoint.load_url = load_url_safely
