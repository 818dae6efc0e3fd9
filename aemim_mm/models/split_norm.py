"""Split normalisation layers: AdvProp's auxiliary BatchNorm, in place.

AdvProp normalises clean and adversarial images with separate BatchNorms,
because adversarial batches have other statistics. A split norm here is the
original layer (same class, same ``forward``) that also holds an adversarial
twin of each affine parameter AND each running-statistics buffer, under the
leaf name prefixed ``adv_`` (as timm's ``SplitBatchNorm2d`` keeps its
auxiliary norms under names of their own)::

    backbone.layer1.0.bn1.weight            backbone.layer1.0.bn1.adv_weight
    backbone.layer1.0.bn1.bias              backbone.layer1.0.bn1.adv_bias
    backbone.layer1.0.bn1.running_mean      backbone.layer1.0.bn1.adv_running_mean
    backbone.layer1.0.bn1.running_var       backbone.layer1.0.bn1.adv_running_var
    backbone.layer1.0.bn1.num_batches_tracked
                                            backbone.layer1.0.bn1.adv_num_batches_tracked

Dropping every ``adv_`` key leaves the plain layer's state dict.

:func:`set_norm_route` exchanges each tensor with its twin, so that the
layer's own ``forward`` (BatchNorm, SyncBatchNorm, SparK's sparse forwards)
reads and updates the route's parameters and statistics and nothing else:
under DDP a ``SyncBatchNorm`` synchronises the batch statistics of the route
that runs, and only that route's running statistics move.
:func:`frozen_running_stats` runs forwards on batch statistics without
updating any running statistics (the attack's steps, visualisation).
"""
from contextlib import contextmanager
from typing import Dict, Iterator, Tuple

from mmengine.model.utils import _BatchNormXd
from torch import nn
from torch.nn.modules.batchnorm import _NormBase

from mmpretrain.models.utils.sparse_modules import (SparseBatchNorm2d,
                                                    SparseLayerNorm2D,
                                                    SparseSyncBatchNorm2d)

#: BatchNorm types that are split (``_BatchNormXd``: mmengine's one-process
#: SyncBatchNorm), with their subclasses that keep their ``forward``
#: (mmengine's ``SyncBN``); another subclass may compute something else.
SPLIT_BATCH_NORMS: Tuple[type, ...] = (
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm,
    _BatchNormXd, SparseBatchNorm2d, SparseSyncBatchNorm2d)
#: LayerNorm subclasses with a ``forward`` of their own that are split
#: (plain ``nn.LayerNorm`` becomes an ``AdapterLayerNorm``).
SPLIT_LAYER_NORMS: Tuple[type, ...] = (SparseLayerNorm2D, )
#: Parameters and buffers that get an adversarial twin, when present.
TWINS = ('weight', 'bias', 'running_mean', 'running_var',
         'num_batches_tracked')
#: The routes a split norm can have, with the leaf-name prefix of their
#: twins: the clean route keeps the original names; ``'adv'`` is AEMIM's and
#: AdvProp's auxiliary BatchNorm; ``'adv_ce'`` a second adversarial route
#: (AdvCL's BatchNorms of its pseudo-label attack).
ROUTE_PREFIXES = {'clean': '', 'adv': 'adv_', 'adv_ce': 'adv_ce_'}
_ROUTE = '_aemim_norm_route'
_ROUTES = '_aemim_norm_routes'


def splits_batch_norm(norm: nn.Module) -> bool:
    """Whether ``norm`` is a BatchNorm that :func:`add_adversarial_twins`
    splits: one of :data:`SPLIT_BATCH_NORMS` or a subclass of one that
    keeps its ``forward``."""
    return any(
        isinstance(norm, cls) and type(norm).forward is cls.forward
        for cls in SPLIT_BATCH_NORMS)


def is_split_norm(module: nn.Module) -> bool:
    """Whether ``module`` holds adversarial twins added by
    :func:`add_adversarial_twins`."""
    return _ROUTE in module.__dict__


def norm_route(norm: nn.Module) -> str:
    """The route (``'clean'``, ``'adv'``, ...) a split norm's tensors are
    on."""
    return norm.__dict__[_ROUTE]


def norm_routes(norm: nn.Module) -> Tuple[str, ...]:
    """The routes a split norm has, ``'clean'`` first."""
    return norm.__dict__[_ROUTES]


def add_adversarial_twins(norm: nn.Module, route: str = 'adv') -> None:
    """Register a ``route`` copy of each of ``norm``'s :data:`TWINS` (leaf
    names prefixed ``ROUTE_PREFIXES[route]``: ``adv_`` for ``'adv'``).

    Parameters are copied as parameters (same ``requires_grad``), buffers as
    buffers (same persistence), so the twins are trained, saved, moved and
    broadcast as the originals are. A norm that is already split gets one
    more route (copies of its clean tensors).

    Raises:
        ValueError: If ``norm`` has none of :data:`TWINS` (nothing to split),
            or ``route`` is not a route of :data:`ROUTE_PREFIXES` other than
            ``'clean'``, or ``norm`` already has it.
    """
    if route not in ROUTE_PREFIXES or route == 'clean':
        raise ValueError(f'route must be one of '
                         f'{[r for r in ROUTE_PREFIXES if r != "clean"]}, '
                         f'got {route!r}.')
    if is_split_norm(norm) and route in norm_routes(norm):
        raise ValueError(f'{type(norm).__name__} already has the route '
                         f'{route!r}.')
    clean = _stores(norm, 'clean') if is_split_norm(norm) else None
    prefix = ROUTE_PREFIXES[route]
    found = False
    for name in TWINS:
        param = norm._parameters.get(name)
        buf = norm._buffers.get(name)
        source = clean[name] if clean is not None and name in clean else (
            param if param is not None else buf)
        if param is not None:
            norm.register_parameter(
                prefix + name,
                nn.Parameter(source.detach().clone(),
                             requires_grad=param.requires_grad))
            found = True
        elif buf is not None:
            norm.register_buffer(
                prefix + name, source.detach().clone(),
                persistent=name not in norm._non_persistent_buffers_set)
            found = True
    if not found:
        raise ValueError(
            f'{type(norm).__name__} has no affine parameters and no running '
            'statistics: nothing to split. Leave its module out of '
            "adapter_scope or use adapter='none'.")
    routes = norm_routes(norm) if is_split_norm(norm) else ('clean', )
    norm.__dict__[_ROUTES] = routes + (route, )
    norm.__dict__.setdefault(_ROUTE, 'clean')


def reset_adversarial_twins(norm: nn.Module) -> None:
    """Copy the clean parameters and statistics into every route's twins."""
    clean = _stores(norm, 'clean')
    for route in norm_routes(norm)[1:]:
        for name, tensor in _stores(norm, route).items():
            tensor.data.copy_(clean[name].data)


def _stores(norm: nn.Module, route: str) -> Dict[str, object]:
    """``{name: tensor}`` of ``route``'s twins of ``norm``, whatever route it
    is on."""
    current = norm.__dict__[_ROUTE]
    twin = ROUTE_PREFIXES[norm_routes(norm)[1]]     # a route that has twins
    found = {}
    for store in (norm._parameters, norm._buffers):
        for name in TWINS:
            if name not in store or twin + name not in store:
                continue
            if route == current:
                found[name] = store[name]
            elif route == 'clean':
                found[name] = store[ROUTE_PREFIXES[current] + name]
            else:
                found[name] = store[ROUTE_PREFIXES[route] + name]
    return found


def _exchange(norm: nn.Module, prefix: str) -> None:
    """Exchange each tensor with its ``prefix`` twin."""
    for store in (norm._parameters, norm._buffers):
        for name in TWINS:
            if prefix + name in store:
                store[name], store[prefix + name] = (store[prefix + name],
                                                     store[name])


def set_norm_route(norm: nn.Module, route: str) -> None:
    """Make ``norm``'s ``forward`` use the ``route`` twins (``'clean'``,
    ``'adv'``, ...) by exchanging each tensor with its twin (through the
    clean route: the active route's own slot holds the clean tensor).

    Raises:
        ValueError: If ``norm`` has no such route.
    """
    current = norm.__dict__[_ROUTE]
    if current == route:
        return
    if route not in norm_routes(norm):
        raise ValueError(f'{type(norm).__name__} has the routes '
                         f'{norm_routes(norm)}, not {route!r}.')
    if current != 'clean':
        _exchange(norm, ROUTE_PREFIXES[current])
    if route != 'clean':
        _exchange(norm, ROUTE_PREFIXES[route])
    norm.__dict__[_ROUTE] = route


@contextmanager
def eval_norms(model: nn.Module) -> Iterator[None]:
    """Inside the block, every BatchNorm-like layer of ``model`` (BatchNorm,
    SyncBatchNorm, InstanceNorm) runs in eval mode: it normalises with the
    running statistics of its route, updates none and does not
    synchronise."""
    norms = [m for m in model.modules()
             if isinstance(m, _NormBase) and m.training]
    for m in norms:
        m.train(False)
    try:
        yield
    finally:
        for m in norms:
            m.train(True)


@contextmanager
def frozen_running_stats(model: nn.Module) -> Iterator[None]:
    """Inside the block, BatchNorms in training mode normalise with batch
    statistics and update no running statistics (of either route)."""
    norms = [
        m for m in model.modules()
        if isinstance(m, _NormBase) and m.track_running_stats
    ]
    for m in norms:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in norms:
            m.track_running_stats = True

