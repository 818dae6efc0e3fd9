"""Adapters: separate clean and adversarial parameters (AdvProp-style).

AEMIM keeps most parameters shared (``psi``) and gives clean and adversarial
inputs their own small parameter sets (``phi_c``, ``phi_a``). Following timm's
``SplitBatchNorm2d``, the clean parameters keep their original names and the
adversarial ones live under names of their own, all starting with ``adv_``:

========================  =====================================  ==========================
adapter                   clean (original key)                   adversarial (dropped later)
========================  =====================================  ==========================
``'ln'`` (default)        ``backbone.layers.0.ln1.weight``       ``backbone.layers.0.ln1.adv_weight``
``'cls_token'``           ``backbone.cls_token``                 ``backbone.adv_cls_token``
``'none'`` (ablation)     everything shared                      nothing
========================  =====================================  ==========================

Dropping every key whose leaf name starts with ``adv_`` therefore leaves a
plain MAE / SimMIM checkpoint. The names still match mmpretrain's optimiser
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

from mmpretrain.registry import MODELS

#: The adapter choices of the paper (Table 8c).
ADAPTERS = ('ln', 'cls_token', 'none')
#: The two routes a forward can take.
ROUTES = ('clean', 'adv')
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
            :class:`AdapterLayerNorm`; ``'cls_token'`` adds an ``adv_cls_token``
            beside each ``cls_token`` parameter; ``'none'`` changes nothing.
        scope: Names of ``model``'s children to convert (encoder and decoder
            by default).

    Returns:
        The qualified names of the converted layers / tokens.

    Raises:
        ValueError: On an unknown ``adapter`` or ``scope`` entry, when the
            scope holds nothing to adapt, or (``'ln'``) a LayerNorm subclass
            with a ``forward`` of its own.
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
            if adapter == 'ln':
                for child_name, child in list(module.named_children()):
                    if (isinstance(child, nn.LayerNorm)
                            and not isinstance(child, AdapterLayerNorm)):
                        _check_plain_layer_norm(
                            child, f'{qualified}.{child_name}')
                        setattr(module, child_name,
                                AdapterLayerNorm.from_layer_norm(child))
                        converted.append(f'{qualified}.{child_name}')
            elif isinstance(module._parameters.get('cls_token'),
                            nn.Parameter):
                module.register_parameter(
                    ADV_PREFIX + 'cls_token',
                    nn.Parameter(module.cls_token.detach().clone()))
                # A plain reference (not a registered parameter) to the clean
                # token, so a route can always restore it.
                module.__dict__[_CLEAN_TOKEN] = module.cls_token
                converted.append(f'{qualified}.cls_token')
    if not converted:
        what = ('nn.LayerNorm layers' if adapter == 'ln' else
                'a `cls_token` parameter')
        raise ValueError(
            f'adapter={adapter!r} found no {what} in adapter_scope={tuple(scope)}'
            f' of {type(model).__name__}; use another adapter or scope.')
    return converted


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
            'AdapterLayerNorm would not keep. Leave its module out of '
            "adapter_scope or use adapter='cls_token' / 'none'.")


@torch.no_grad()
def reset_adversarial_adapters(model: nn.Module) -> None:
    """Make every adversarial adapter a copy of its clean twin.

    Called after weight initialisation, so that both routes start equal.
    """
    for module in model.modules():
        if isinstance(module, AdapterLayerNorm):
            module.reset_adversarial()
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
    norms = [m for m in model.modules() if isinstance(m, AdapterLayerNorm)]
    token_owners = [
        m for m in model.modules() if ADV_PREFIX + 'cls_token' in m._parameters
    ]
    saved_routes = [m.route for m in norms]
    saved_tokens = [m._parameters['cls_token'] for m in token_owners]
    for m in norms:
        m.route = route
    for m in token_owners:
        m._parameters['cls_token'] = (
            m._parameters[ADV_PREFIX + 'cls_token']
            if route == 'adv' else m.__dict__[_CLEAN_TOKEN])
    try:
        yield
    finally:
        for m, saved in zip(norms, saved_routes):
            m.route = saved
        for m, saved in zip(token_owners, saved_tokens):
            m._parameters['cls_token'] = saved


def is_adversarial_key(key: str) -> bool:
    """Whether a state-dict key belongs to an adversarial adapter."""
    return key.rsplit('.', 1)[-1].startswith(ADV_PREFIX)


def clean_twin_key(key: str) -> str:
    """The clean twin of an adversarial key: ``a.b.adv_weight`` -> ``a.b.weight``.

    Only the leaf name changes, whatever the module path holds.
    """
    head, dot, leaf = key.rpartition('.')
    if not leaf.startswith(ADV_PREFIX):
        raise ValueError(f'{key!r} is not an adversarial adapter key.')
    return head + dot + leaf[len(ADV_PREFIX):]


def adversarial_state_dict_keys(state_dict: dict) -> List[str]:
    """The keys of ``state_dict`` that hold adversarial adapter parameters."""
    return [k for k in state_dict if is_adversarial_key(k)]
