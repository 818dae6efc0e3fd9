"""Adapters: separate clean and adversarial parameters (AdvProp-style).

AEMIM keeps most parameters shared (``psi``) and gives clean and adversarial
inputs their own small parameter sets (``phi_c``, ``phi_a``). Following timm's
``SplitBatchNorm2d``, the clean parameters keep their original names and the
adversarial ones live under names of their own, all starting with ``adv_``:

========================  =====================================  ==========================
adapter                   clean (original key)                   adversarial (dropped later)
========================  =====================================  ==========================
``'ln'`` (default)        ``backbone.layers.0.ln1.weight``       ``backbone.layers.0.ln1.adv_weight``
``'bn'``                  ``backbone.bn1.weight``,               ``backbone.bn1.adv_weight``,
                          ``backbone.bn1.running_mean``, ...     ``backbone.bn1.adv_running_mean``, ...
``'norm'``                both of the above                      both of the above
``'cls_token'``           ``backbone.cls_token``                 ``backbone.adv_cls_token``
``'none'`` (ablation)     everything shared                      nothing
========================  =====================================  ==========================

``'bn'`` splits BatchNorms (AdvProp's auxiliary BatchNorm): separate affine
parameters AND running statistics (:mod:`~aemim_mm.models.split_norm`).
With ``'none'`` one BatchNorm sees both kinds of batches, so its running
statistics mix clean and adversarial ones.

Dropping every key whose leaf name starts with ``adv_`` therefore leaves a
plain MAE / SimMIM / SparK checkpoint. The names still match mmpretrain's optimiser
rules: ``adv_weight`` of a ``ln`` layer contains ``ln``, ``adv_bias`` contains
``bias`` and ``adv_cls_token`` contains ``cls_token``.

Which parameter set a forward uses is chosen explicitly with
:func:`adapter_route`, never by splitting the batch in halves, so any subset
of a batch (Fast AEMIM's 25 %) can take either route.
"""
from contextlib import contextmanager
from typing import Iterator, List, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _NormBase

from mmpretrain.registry import MODELS
from .split_norm import (ROUTE_PREFIXES, SPLIT_BATCH_NORMS,
                         SPLIT_LAYER_NORMS, add_adversarial_twins,
                         is_split_norm, norm_route, reset_adversarial_twins,
                         set_norm_route, splits_batch_norm)

#: The adapter choices: the paper's (Table 8c) and AdvProp's split BatchNorm
#: (``'bn'``; ``'norm'``: LayerNorms and BatchNorms).
ADAPTERS = ('ln', 'bn', 'norm', 'cls_token', 'none')
#: The routes a forward can take: clean, adversarial, and (split BatchNorms
#: only) a second adversarial route (``split_norm.ROUTE_PREFIXES``).
ROUTES = tuple(ROUTE_PREFIXES)
#: Leaf-name prefix of every adversarial parameter.
ADV_PREFIX = 'adv_'
_CLEAN_TOKEN = '_aemim_clean_cls_token'


@MODELS.register_module()
class AdapterLayerNorm(nn.LayerNorm):
    """LayerNorm with a clean and an adversarial affine parameter set.

    ``weight`` / ``bias`` are the clean parameters (original key names);
    ``adv_weight`` / ``adv_bias`` the adversarial ones. :attr:`route` selects
    which set a forward uses; set it with :func:`adapter_route`.

    Args:
        normalized_shape: As for :class:`torch.nn.LayerNorm`.
        eps: As for :class:`torch.nn.LayerNorm`.
        bias: Whether the layer has a bias.
    """

    def __init__(self,
                 normalized_shape: int | Sequence[int],
                 eps: float = 1e-5,
                 bias: bool = True) -> None:
        super().__init__(normalized_shape, eps=eps, bias=bias)
        self.adv_weight = nn.Parameter(self.weight.detach().clone())
        self.adv_bias = (
            nn.Parameter(self.bias.detach().clone())
            if self.bias is not None else None)
        self.route = 'clean'

    @classmethod
    def from_layer_norm(cls, norm: nn.LayerNorm) -> 'AdapterLayerNorm':
        """Build an adapter layer from a LayerNorm, copying its parameters.

        Both parameter sets start as copies of ``norm``'s parameters.

        Raises:
            ValueError: If ``norm`` has no affine parameters (nothing to adapt).
        """
        if not norm.elementwise_affine:
            raise ValueError(
                'adapter="ln" needs LayerNorms with elementwise_affine=True; '
                f'got {norm!r}.')
        new = cls(norm.normalized_shape, eps=norm.eps,
                  bias=norm.bias is not None)
        new.to(device=norm.weight.device, dtype=norm.weight.dtype)
        with torch.no_grad():
            new.weight.copy_(norm.weight)
            if norm.bias is not None:
                new.bias.copy_(norm.bias)
        new.reset_adversarial()
        return new

    @torch.no_grad()
    def reset_adversarial(self) -> None:
        """Copy the clean parameters into the adversarial ones."""
        self.adv_weight.copy_(self.weight)
        if self.bias is not None:
            self.adv_bias.copy_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` with the parameters of the current route."""
        if self.route == 'adv':
            return F.layer_norm(x, self.normalized_shape, self.adv_weight,
                                self.adv_bias, self.eps)
        return super().forward(x)

    def extra_repr(self) -> str:
        return super().extra_repr() + f', route={self.route}'


def convert_adapters(model: nn.Module,
                     adapter: str = 'ln',
                     scope: Sequence[str] = ('backbone', 'neck')) -> List[str]:
    """Give the sub-modules ``scope`` of ``model`` adapters, in place.

    Args:
        model: The auto-encoder (e.g. an mmpretrain ``MAE``).
        adapter: ``'ln'`` swaps every :class:`torch.nn.LayerNorm` for an
            :class:`AdapterLayerNorm` (and splits SparK's sparse 2-D
            LayerNorm); ``'bn'`` splits every BatchNorm (parameters and
            running statistics); ``'norm'`` does both; ``'cls_token'`` adds
            an ``adv_cls_token`` beside each ``cls_token`` parameter;
            ``'none'`` changes nothing.
        scope: Names of ``model``'s children to convert (encoder and decoder
            by default).

    Returns:
        The qualified names of the converted layers / tokens.

    Raises:
        ValueError: On an unknown ``adapter`` or ``scope`` entry, when the
            scope holds nothing to adapt, or a normalisation layer the
            adapter would have to split but cannot (its type and the
            supported ones are named).
    """
    if adapter not in ADAPTERS:
        raise ValueError(f'adapter must be one of {ADAPTERS}, got {adapter!r}.')
    children = dict(model.named_children())
    for name in scope:
        if name not in children:
            raise ValueError(
                f'adapter_scope entry {name!r} is not a sub-module of '
                f'{type(model).__name__}; choose from {sorted(children)}.')
    if adapter == 'none':
        return []
    converted = []
    for scope_name in scope:
        root = children[scope_name]
        for name, module in list(root.named_modules()):
            qualified = f'{scope_name}.{name}' if name else scope_name
            if adapter == 'cls_token':
                if isinstance(module._parameters.get('cls_token'),
                              nn.Parameter):
                    module.register_parameter(
                        ADV_PREFIX + 'cls_token',
                        nn.Parameter(module.cls_token.detach().clone()))
                    # A plain reference (not a registered parameter) to the
                    # clean token, so a route can always restore it.
                    module.__dict__[_CLEAN_TOKEN] = module.cls_token
                    converted.append(f'{qualified}.cls_token')
                continue
            for child_name, child in list(module.named_children()):
                child_qualified = f'{qualified}.{child_name}'
                if _split_child(module, child_name, child, adapter,
                                child_qualified):
                    converted.append(child_qualified)
    if not converted:
        what = {'ln': 'nn.LayerNorm layers', 'bn': 'BatchNorm layers',
                'norm': 'LayerNorm or BatchNorm layers',
                'cls_token': 'a `cls_token` parameter'}[adapter]
        raise ValueError(
            f'adapter={adapter!r} found no {what} in adapter_scope={tuple(scope)}'
            f' of {type(model).__name__}; use another adapter or scope.')
    return converted


def _split_child(parent: nn.Module, name: str, child: nn.Module,
                 adapter: str, qualified: str) -> bool:
    """Give ``parent.name`` its adversarial twin if ``adapter`` splits its
    kind of layer; whether it did."""
    if is_split_norm(child) or isinstance(child, AdapterLayerNorm):
        return False
    if adapter in ('ln', 'norm') and isinstance(child, nn.LayerNorm):
        if type(child) in SPLIT_LAYER_NORMS:
            add_adversarial_twins(child)
        else:
            _check_plain_layer_norm(child, qualified)
            setattr(parent, name, AdapterLayerNorm.from_layer_norm(child))
        return True
    if adapter in ('bn', 'norm') and isinstance(child, _NormBase):
        if not splits_batch_norm(child):
            raise ValueError(
                f'adapter={adapter!r} splits {_names(SPLIT_BATCH_NORMS)}; '
                f'{qualified} is a {type(child).__name__}, which it does not '
                'split. Leave its module out of adapter_scope or use '
                "adapter='none' (one shared layer).")
        add_adversarial_twins(child)
        return True
    if adapter == 'norm' and isinstance(child, nn.GroupNorm):
        raise ValueError(
            f"adapter='norm' splits "
            f'{_names(SPLIT_BATCH_NORMS + (nn.LayerNorm, ) + SPLIT_LAYER_NORMS)}'
            f'; {qualified} is a {type(child).__name__}, which it does not '
            "split. Leave its module out of adapter_scope or use "
            "adapter='none' (one shared layer).")
    return False


def _names(types: Sequence[type]) -> List[str]:
    return [t.__name__ for t in types]


def _check_plain_layer_norm(norm: nn.LayerNorm, name: str) -> None:
    """Raise if ``norm`` computes something else than ``nn.LayerNorm``.

    A subclass with its own ``forward`` (mmpretrain's channels-first
    ``LayerNorm2d``, CLIP's float32 ``LayerNorm``) would lose it in an
    :class:`AdapterLayerNorm`.
    """
    if type(norm).forward is not nn.LayerNorm.forward:
        raise ValueError(
            f"adapter='ln' converts torch.nn.LayerNorm layers; {name} is a "
            f'{type(norm).__name__} with its own forward, which an '
            'AdapterLayerNorm would not keep (split LayerNorm subclasses: '
            f'{_names(SPLIT_LAYER_NORMS)}). Leave its module out of '
            "adapter_scope or use adapter='cls_token' / 'none'.")


@torch.no_grad()
def reset_adversarial_adapters(model: nn.Module) -> None:
    """Make every adversarial adapter a copy of its clean twin.

    Called after weight initialisation, so that both routes start equal.
    """
    for module in model.modules():
        if isinstance(module, AdapterLayerNorm):
            module.reset_adversarial()
        elif is_split_norm(module):
            reset_adversarial_twins(module)
        elif ADV_PREFIX + 'cls_token' in module._parameters:
            module.adv_cls_token.copy_(module.__dict__[_CLEAN_TOKEN])


@contextmanager
def adapter_route(model: nn.Module, route: str) -> Iterator[None]:
    """Run the forwards inside the block with the ``route`` adapters.

    Args:
        model: Any module holding adapters (the wrapper or the algorithm).
        route: ``'clean'`` or ``'adv'``.

    Example:
        >>> with adapter_route(model, 'adv'):
        ...     latent = model.backbone(x_adv)
    """
    if route not in ROUTES:
        raise ValueError(f'route must be one of {ROUTES}, got {route!r}.')
    modules = list(model.modules())
    norms = [m for m in modules if isinstance(m, AdapterLayerNorm)]
    split = [m for m in modules if is_split_norm(m)]
    token_owners = [
        m for m in modules if ADV_PREFIX + 'cls_token' in m._parameters
    ]
    if route not in ('clean', 'adv') and (norms or token_owners):
        raise ValueError(f'route {route!r} exists for split BatchNorms only; '
                         'LayerNorm and class-token adapters have the routes '
                         "('clean', 'adv').")
    saved_routes = [m.route for m in norms]
    saved_split = [norm_route(m) for m in split]
    saved_tokens = [m._parameters['cls_token'] for m in token_owners]
    for m in norms:
        m.route = route
    for m in split:
        set_norm_route(m, route)
    for m in token_owners:
        m._parameters['cls_token'] = (
            m._parameters[ADV_PREFIX + 'cls_token']
            if route == 'adv' else m.__dict__[_CLEAN_TOKEN])
    try:
        yield
    finally:
        for m, saved in zip(norms, saved_routes):
            m.route = saved
        for m, saved in zip(split, saved_split):
            set_norm_route(m, saved)
        for m, saved in zip(token_owners, saved_tokens):
            m._parameters['cls_token'] = saved


def is_adversarial_key(key: str) -> bool:
    """Whether a state-dict key belongs to an adversarial adapter."""
    return key.rsplit('.', 1)[-1].startswith(ADV_PREFIX)


def clean_twin_key(key: str) -> str:
    """The clean twin of an adversarial key: ``a.b.adv_weight`` ->
    ``a.b.weight`` (``adv_ce_weight`` too: the longest route prefix).

    Only the leaf name changes, whatever the module path holds.
    """
    head, dot, leaf = key.rpartition('.')
    if not leaf.startswith(ADV_PREFIX):
        raise ValueError(f'{key!r} is not an adversarial adapter key.')
    prefix = max((p for p in ROUTE_PREFIXES.values()
                  if p and leaf.startswith(p)), key=len)
    return head + dot + leaf[len(prefix):]


def adversarial_state_dict_keys(state_dict: dict) -> List[str]:
    """The keys of ``state_dict`` that hold adversarial adapter parameters."""
    return [k for k in state_dict if is_adversarial_key(k)]
