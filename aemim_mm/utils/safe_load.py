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
``HistoryBuffer.register_statistics`` (mmengine's extension point) adds a
function that every checkpoint then names too: exactly the functions
registered in the loading process are allowed (:func:`registered_statistics`).

torch resolves a global by name, and when two different objects on its
allow-list share a name (the real ``getattr`` allow-listed by someone else, and
the stand-in), which one it uses depends on the order of a set.
:func:`safe_load` therefore refuses, with :class:`AllowListConflictError`, a
checkpoint that uses such a name, so the outcome never depends on that order.

Safety is never switched off: nothing here passes ``weights_only=False``.
mmengine's loaders hand checkpoints to :func:`safe_load`: local files
(:func:`register_safe_local_loader`) and downloads
(:func:`register_safe_url_loaders`; mmengine downloads with
``torch.hub.load_state_dict_from_url``, whose ``weights_only`` defaults to
``False``). A failed download raises :class:`CheckpointDownloadError` (a
``URLError``; :class:`CheckpointHTTPError`, an ``HTTPError`` too, when the
server answered with an HTTP status); a download in torch.hub's legacy zip
format is extracted, as torch.hub does, and loaded safely. Inside ``with`` :func:`mmengine_loaders`, those two loaders hand
the call to mmengine's own functions instead, in that thread only.
``docs/import_effects.md`` lists everything ``import aemim_mm`` changes.
"""
import contextlib
import contextvars
import importlib
import os
import pickle
import pickletools
import urllib.error
import zipfile
from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING
from typing import (Any, Callable, Dict, Iterator, List, Optional, Set, Tuple,
                    Union)
from urllib.parse import urlparse

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer

__all__ = [
    'register_checkpoint_safe_globals', 'register_safe_local_loader',
    'download_checkpoint',
    'register_safe_url_loaders', 'safe_load', 'mmengine_loaders',
    'allow_list_conflicts', 'UnsafeCheckpointError', 'AllowListConflictError',
    'CheckpointDownloadError', 'CheckpointHTTPError'
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


# Set inside ``with mmengine_loaders()``: this context (thread / task) uses
# mmengine's own loaders.
_USE_MMENGINE_LOADERS: contextvars.ContextVar[bool] = contextvars.ContextVar(
    'aemim_mm_use_mmengine_loaders', default=False)


class UnsafeCheckpointError(pickle.UnpicklingError):
    """aemim_mm refused to unpickle a checkpoint.

    Raised as is when the checkpoint holds a global outside the
    ``weights_only`` allow-list (or one the restricted ``getattr`` refuses);
    :class:`AllowListConflictError` is the refusal for an ambiguous
    allow-list. Being an ``UnpicklingError``, it is caught where torch's own
    refusal is.
    """


class AllowListConflictError(UnsafeCheckpointError):
    """The checkpoint uses a name that torch's allow-list maps to two objects.

    torch would unpickle it with either object, depending on set order; so
    the checkpoint is refused whatever that order is.
    """


class CheckpointDownloadError(urllib.error.URLError):
    """A checkpoint download failed.

    A ``urllib.error.URLError`` (so an ``OSError`` too), like the errors of
    mmengine's own download; its message names the URL and the cache path.

    Attributes:
        url: The URL of the checkpoint.
        filename: The cache path the checkpoint was downloaded to.
        reason: The exception of the download (``HTTPError``, ``URLError``,
            ``TimeoutError``, ...).
    """

    def __init__(self, url: str, path: str, reason: BaseException) -> None:
        super().__init__(reason, path)
        self.url = url

    def __str__(self) -> str:
        return (f'Could not download checkpoint {self.url!r} to '
                f'{self.filename!r}: {self.reason}')


class CheckpointHTTPError(CheckpointDownloadError, urllib.error.HTTPError):
    """A checkpoint download the server answered with an HTTP error.

    Also a ``urllib.error.HTTPError``, with its attributes as urllib sets
    them: ``code`` (the status, e.g. 404), ``reason`` / ``msg`` (the
    status message), ``headers``; and ``url`` and ``filename`` (the cache
    path) as :class:`CheckpointDownloadError`. The ``HTTPError`` that the
    download raised is ``__cause__``.
    """

    def __init__(self, url: str, path: str,
                 error: urllib.error.HTTPError) -> None:
        urllib.error.HTTPError.__init__(self, url, error.code, error.msg,
                                        error.hdrs, None)
        self.args = (error, path)
        self.url = url
        self.filename = path

    def __str__(self) -> str:
        return (f'Could not download checkpoint {self.url!r} to '
                f'{self.filename!r}: HTTP Error {self.code}: {self.msg}')


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


def registered_statistics() -> List[Tuple[Callable, str]]:
    """The statistics registered with ``HistoryBuffer.register_statistics``
    in this process, as allow-list items.

    ``HistoryBuffer.__getstate__`` pickles every registered statistic into
    the checkpoint (mmengine's extension point), by its module and name.
    Exactly these function objects are allowed, under those names: a
    checkpoint that names a function this process did not register is still
    refused.

    Returns:
        ``(function, 'module.qualname')`` for each registered function other
        than ``HistoryBuffer``'s own ``min`` / ``max`` / ``current`` /
        ``mean``.
    """
    own = {getattr(HistoryBuffer, name) for name in _HISTORY_BUFFER_METHODS}
    return [(fn, f'{fn.__module__}.{fn.__qualname__}')
            for fn in HistoryBuffer._statistics_methods.values()
            if fn not in own and callable(fn)
            and hasattr(fn, '__module__') and hasattr(fn, '__qualname__')]


def register_checkpoint_safe_globals() -> None:
    """Allow mmengine's own checkpoints under ``weights_only=True``.

    Idempotent: torch keeps the allowed globals in a set, and the items are
    the same objects on every call.
    """
    torch.serialization.add_safe_globals(_safe_globals())


def _entry(item: SafeGlobal) -> Tuple[Any, str]:
    """The object of an allow-list item and the name torch gives it."""
    if isinstance(item, tuple):
        return item[0], item[1]
    return item, f'{item.__module__}.{item.__qualname__}'


def _describe(obj: Any) -> str:
    """``module.qualname`` of an allow-listed object."""
    module = getattr(obj, '__module__', None)
    qualname = getattr(obj, '__qualname__', None)
    return f'{module}.{qualname}' if module and qualname else repr(obj)


def allow_list_conflicts() -> Dict[str, List[Any]]:
    """Names of aemim_mm's allow-list entries that name other objects too.

    Returns:
        For each name that torch's allow-list
        (:func:`torch.serialization.get_safe_globals`) maps both to aemim_mm's
        object and to another one, the objects under that name, aemim_mm's
        first. Empty when there is no conflict.
    """
    ours = {name: obj for obj, name in map(
        _entry, _safe_globals() + registered_statistics())}
    conflicts: Dict[str, List[Any]] = {}
    for item in torch.serialization.get_safe_globals():
        obj, name = _entry(item)
        if name in ours and obj is not ours[name]:
            conflicts.setdefault(name, [ours[name]]).append(obj)
    return conflicts


def _globals_in_checkpoint(path: str) -> Optional[Set[str]]:
    """The globals (``module.name``) a zip checkpoint's pickle refers to.

    Args:
        path: The checkpoint file.

    Returns:
        The names, or ``None`` if they cannot be listed (not a ``torch.save``
        zip file, several or no ``data.pkl`` records, a malformed pickle, or
        a ``STACK_GLOBAL``, which names its global only at run time).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            records = [n for n in archive.namelist()
                       if n.count('/') == 1 and n.endswith('/data.pkl')]
            if len(records) != 1:
                return None
            data = archive.read(records[0])
        found = set()
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name == 'STACK_GLOBAL':
                return None
            if opcode.name == 'GLOBAL':
                module, name = arg.split(' ', 1)
                # as torch reads protocol 2 (``__builtin__`` -> ``builtins``)
                if (module, name) in NAME_MAPPING:
                    module, name = NAME_MAPPING[(module, name)]
                else:
                    module = IMPORT_MAPPING.get(module, module)
                found.add(f'{module}.{name}')
        return found
    except (zipfile.BadZipFile, ValueError):
        return None


def _refuse_ambiguous_globals(path: str) -> None:
    """Refuse a checkpoint that uses a name torch's allow-list maps twice.

    Args:
        path: The checkpoint file.

    Raises:
        AllowListConflictError: If torch's allow-list maps one of aemim_mm's
            names to another object as well, and the checkpoint uses that
            name (or its names cannot be listed).
    """
    conflicts = allow_list_conflicts()
    if not conflicts:
        return
    used = _globals_in_checkpoint(path)
    names = sorted(name for name in conflicts if used is None or name in used)
    if not names:
        return
    what = '; '.join(
        f"{name!r} -> aemim_mm's {_describe(conflicts[name][0])} and "
        + ' and '.join(_describe(obj) for obj in conflicts[name][1:])
        for name in names)
    uses = ('uses' if used is not None else
            'may use (its globals cannot be listed)')
    raise AllowListConflictError(
        f'Refused to load checkpoint {path!r}: it {uses} '
        f"{', '.join(map(repr, names))}, which torch's weights_only "
        f'allow-list maps to two different objects ({what}); torch would use '
        'one of them depending on set order. Allow-list the other object '
        "only around the loads that need it ('with "
        "torch.serialization.safe_globals([...]):'), or remove it "
        '(torch.serialization.clear_safe_globals(); aemim_mm adds its own '
        'entries back on the next safe_load).')


def _disallowed_globals(path: str) -> List[str]:
    """List the globals of a checkpoint that are not allowed (best effort)."""
    try:
        with torch.serialization.safe_globals(registered_statistics()):
            return list(
                torch.serialization.get_unsafe_globals_in_checkpoint(path))
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


def legacy_zip_member(path: str) -> Optional[str]:
    """The member of a checkpoint in torch.hub's legacy zip format.

    That format is a zip archive around ONE file, an old-style (not zip)
    ``torch.save`` file; a ``torch.save`` zip file has a folder of records
    instead.

    Args:
        path: The checkpoint file.

    Returns:
        The name of its one member, or ``None`` for anything else.
    """
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
    if len(members) == 1 and not members[0].is_dir():
        return members[0].filename
    return None


def _extract_legacy_zip(path: str, member: str, folder: str) -> str:
    """Extract the one ``member`` of a legacy zip checkpoint into ``folder``.

    Raises:
        RuntimeError: If ``member`` is not a plain file name (a path could
            write outside ``folder``).
    """
    if os.path.basename(member) != member or member in ('', '.', '..'):
        raise RuntimeError(
            f'Refused to extract checkpoint {path!r}: its one member '
            f'{member!r} (torch.hub\'s legacy zip format) is not a plain file '
            'name.')
    with zipfile.ZipFile(path) as archive:
        archive.extract(member, folder)
    return os.path.join(folder, member)


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
        AllowListConflictError: If the checkpoint uses a name that torch's
            allow-list maps both to aemim_mm's entry and to another object
            (e.g. ``builtins.getattr``, when the real ``getattr`` is
            allow-listed too); the message names the file, the name and both
            objects.
        RuntimeError: If ``path`` is in torch.hub's legacy zip format
            (:func:`legacy_zip_member`); the message names the file and its
            member.
    """
    register_checkpoint_safe_globals()
    path = os.fspath(path)
    member = legacy_zip_member(path)
    if member is not None:
        raise RuntimeError(
            f'Cannot load checkpoint {path!r}: it is a zip archive around '
            f'one file, {member!r} (torch.hub\'s legacy checkpoint format), '
            'which torch.load does not read. Load it through its URL (the '
            'download extracts it) or extract that file and load it.')
    _refuse_ambiguous_globals(path)
    try:
        with torch.serialization.safe_globals(registered_statistics()):
            return torch.load(path, map_location=map_location,
                              weights_only=True)
    except pickle.UnpicklingError as e:
        found = _disallowed_globals(path)
        what = (f'globals not on the weights_only allow-list '
                f'({", ".join(sorted(found))})' if found else
                'an object the weights_only unpickler refuses')
        raise UnsafeCheckpointError(
            f'Refused to load checkpoint {path!r}: it holds {what}. Only load '
            'it with weights_only=False if you trust its source. Reason: '
            f'{_reason(str(e))}') from None


def load_from_local(filename: str, map_location: Any) -> Any:
    """mmengine's loader for local paths, through :func:`safe_load`.

    It has the name of the mmengine function it replaces (as
    ``CheckpointLoader``'s ``''`` scheme), so that code and tests reading
    the loader's ``__name__`` see mmengine's; ``load_from_local_safely`` is
    the same function.

    Same behaviour as mmengine's ``load_from_local`` (``weights_only`` stays
    on), but a refused checkpoint raises :class:`UnsafeCheckpointError`
    naming the file and the disallowed globals. Inside ``with``
    :func:`mmengine_loaders`, mmengine's ``load_from_local`` itself runs.

    Args:
        filename: The checkpoint path (``~`` is expanded).
        map_location: As for :func:`torch.load`.

    Returns:
        The loaded checkpoint.

    Raises:
        FileNotFoundError: If there is no such file.
        UnsafeCheckpointError: If :func:`safe_load` refuses the checkpoint.
    """
    if _USE_MMENGINE_LOADERS.get():
        from mmengine.runner import checkpoint
        return checkpoint.load_from_local(filename, map_location)
    filename = os.path.expanduser(filename)
    if not os.path.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return safe_load(filename, map_location=map_location)


#: The former name of :func:`load_from_local` (same function).
load_from_local_safely = load_from_local


def register_safe_local_loader() -> None:
    """Route mmengine's local checkpoint loads (``load_from``, ``resume``,
    ``init_cfg=dict(type='Pretrained')``) through :func:`safe_load`."""
    from mmengine.runner import CheckpointLoader
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local, force=True)


def load_url_safely(url: str,
                    model_dir: Optional[str] = None,
                    map_location: Any = None,
                    progress: bool = True) -> Any:
    """mmengine's ``load_url`` (``torch.hub.load_state_dict_from_url``), with
    ``weights_only`` kept on.

    Downloads to the same cache (``<torch hub dir>/checkpoints/<file name>``,
    or ``model_dir``) unless the file is there, and loads it with
    :func:`safe_load`, whose refusal names the file. Inside ``with``
    :func:`mmengine_loaders`, mmengine's own ``load_url`` runs instead, with
    ``weights_only=True``.

    Args:
        url: The checkpoint's URL.
        model_dir: The cache folder. Defaults to torch's hub cache.
        map_location: As for :func:`torch.load`.
        progress: Whether to show a progress bar while downloading.

    Returns:
        The loaded checkpoint.

    A download in torch.hub's legacy format (a zip archive around one
    old-style ``.pth`` file) is extracted next to it, as
    ``torch.hub.load_state_dict_from_url`` does, and the extracted file is
    loaded.

    Raises:
        CheckpointDownloadError: If the download fails (a
            ``urllib.error.URLError``); the message names the URL and the
            cache path. :class:`CheckpointHTTPError` (also a
            ``urllib.error.HTTPError``, with ``code``) when the server
            answered with an HTTP error.
        RuntimeError: If a legacy zip's member is not a plain file name.
        UnsafeCheckpointError: If :func:`safe_load` refuses the checkpoint.
    """
    if _USE_MMENGINE_LOADERS.get():
        from mmengine.utils.dl_utils import load_url
        return load_url(url, model_dir=model_dir, map_location=map_location,
                        progress=progress, weights_only=True)
    model_dir = model_dir or os.path.join(torch.hub.get_dir(), 'checkpoints')
    path = download_checkpoint(url, model_dir, progress)
    member = legacy_zip_member(path)
    if member is not None:      # torch.hub's legacy format: extract, load
        path = _extract_legacy_zip(path, member, model_dir)
    return safe_load(path, map_location=map_location)


def download_checkpoint(url: str, model_dir: Optional[str] = None,
                        progress: bool = True) -> str:
    """The local copy of a checkpoint URL, downloaded unless it is there.

    The cache is mmengine's and torch.hub's: ``<torch hub dir>/checkpoints/
    <file name>`` (or ``model_dir``). Nothing is unpickled.

    Raises:
        CheckpointDownloadError: If the download fails (naming the URL and
            the cache path); :class:`CheckpointHTTPError` for an HTTP status.
    """
    model_dir = model_dir or os.path.join(torch.hub.get_dir(), 'checkpoints')
    os.makedirs(model_dir, exist_ok=True)
    path = os.path.join(model_dir, os.path.basename(urlparse(url).path))
    if not os.path.exists(path):
        try:    # torch writes a temporary file and moves it when complete
            torch.hub.download_url_to_file(url, path, progress=progress)
        except urllib.error.HTTPError as e:     # without the URL
            raise CheckpointHTTPError(url, path, e) from e
        except OSError as e:    # URLError, timeouts: often without the URL
            raise CheckpointDownloadError(url, path, e) from e
    return path


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


@contextlib.contextmanager
def mmengine_loaders() -> Iterator[None]:
    """Use mmengine's own checkpoint loaders inside the ``with`` block.

    ``import aemim_mm`` routes mmengine's local loads (the ``''`` scheme)
    and downloads (``load_url``) through :func:`safe_load`. Inside this
    block, and only in the thread (or asyncio task) that entered it, those two
    loaders call mmengine's ``load_from_local`` and mmengine's ``load_url``
    (``torch.hub.load_state_dict_from_url``) instead, with mmengine's and
    torch's own errors. Nothing global changes: the registrations stay, other
    threads keep the safe loaders, torch's allow-list is untouched, and
    ``weights_only`` stays ``True`` (downloads are loaded with
    ``weights_only=True``, which mmengine's own call leaves at ``False``).
    :func:`safe_load` called directly is not affected.

    Example:
        >>> with mmengine_loaders():
        ...     runner.load_or_resume()

    Yields:
        None.
    """
    token = _USE_MMENGINE_LOADERS.set(True)
    try:
        yield
    finally:
        _USE_MMENGINE_LOADERS.reset(token)
