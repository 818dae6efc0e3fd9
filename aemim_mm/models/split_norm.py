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
_PREFIX = 'adv_'
_ROUTE = '_aemim_norm_route'


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
    """The route (``'clean'`` or ``'adv'``) a split norm's tensors are on."""
    return norm.__dict__[_ROUTE]


def add_adversarial_twins(norm: nn.Module) -> None:
    """Register an ``adv_`` copy of each of ``norm``'s :data:`TWINS`.

    Parameters are copied as parameters (same ``requires_grad``), buffers as
    buffers (same persistence), so the twins are trained, saved, moved and
    broadcast as the originals are.

    Raises:
        ValueError: If ``norm`` has none of :data:`TWINS` (nothing to split).
    """
    found = False
    for name in TWINS:
        param = norm._parameters.get(name)
        buf = norm._buffers.get(name)
        if param is not None:
            norm.register_parameter(
                _PREFIX + name,
                nn.Parameter(param.detach().clone(),
                             requires_grad=param.requires_grad))
            found = True
        elif buf is not None:
            norm.register_buffer(
                _PREFIX + name, buf.detach().clone(),
                persistent=name not in norm._non_persistent_buffers_set)
            found = True
    if not found:
        raise ValueError(
            f'{type(norm).__name__} has no affine parameters and no running '
            'statistics: nothing to split. Leave its module out of '
            "adapter_scope or use adapter='none'.")
    norm.__dict__[_ROUTE] = 'clean'


def reset_adversarial_twins(norm: nn.Module) -> None:
    """Copy the clean parameters and statistics into their twins."""
    clean, adv = _route_stores(norm, 'clean')
    for name, tensor in clean.items():
        adv[name].data.copy_(tensor.data)


def _route_stores(norm: nn.Module,
                  route: str) -> Tuple[Dict[str, object], Dict[str, object]]:
    """``({name: clean tensor}, {name: adversarial tensor})`` of ``norm``'s
    twins, whatever route it is on."""
    first, second = {}, {}
    for store in (norm._parameters, norm._buffers):
        for name in TWINS:
            if _PREFIX + name in store:
                first[name] = store[name]
                second[name] = store[_PREFIX + name]
    if norm.__dict__[_ROUTE] == route:
        return first, second
    return second, first


def set_norm_route(norm: nn.Module, route: str) -> None:
    """Make ``norm``'s ``forward`` use the ``route`` twins (``'clean'`` or
    ``'adv'``) by exchanging each tensor with its twin."""
    if norm.__dict__[_ROUTE] == route:
        return
    for store in (norm._parameters, norm._buffers):
        for name in TWINS:
            if _PREFIX + name in store:
                store[name], store[_PREFIX + name] = (store[_PREFIX + name],
                                                      store[name])
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

