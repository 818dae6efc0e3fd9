"""One stochastic-depth draw per sample for every pass of an iteration.

Drop path (stochastic depth) zeroes a residual branch per sample, drawn anew
at every call. AEMIM runs the encoder several times per iteration on the
same samples (the clean pass, each attack step, the adversarial pass) and
compares their features (the attack's objective, the logged ``adv_dist_init``
and ``adv_dist``). With fresh draws in each pass those features come from
different sub-networks: the distance then mixes the perturbation's effect
with the difference of two random depths.

:func:`record_drop_paths` lets the clean pass draw as usual (the same
distribution as mmcv's and timm's ``DropPath``: keep a sample's branch with
probability ``1 - drop_prob``, scaled by ``1 / (1 - drop_prob)``) and keeps
each layer's per-sample draws; :meth:`DropPathDraws.replay` makes later
passes of the same samples (or of a subset of them) use those draws. As with
the mask, each sample is seen through one sub-network per iteration.

Supported layers: :data:`DROP_PATHS`. Another class whose name contains
``DropPath`` is refused (its draws could not be replayed), and so is
activation checkpointing (``with_cp``) together with a non-zero drop path:
the backward's recomputation would run outside the replay and draw anew.
"""
import types
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Tuple

import torch
from mmcv.cnn.bricks.drop import DropPath as MMCVDropPath
from timm.layers import DropPath as TimmDropPath
from torch import nn

#: Drop-path layers whose draws are recorded and replayed.
DROP_PATHS: Tuple[type, ...] = (MMCVDropPath, TimmDropPath)

#: One recorded call: the (B, 1, ...) keep mask in {0, 1} and the divisor of
#: the kept branches (the keep probability; 1 for timm's
#: ``scale_by_keep=False``); ``None`` for a call that dropped nothing (eval
#: mode or ``drop_prob == 0``).
Draw = Optional[Tuple[torch.Tensor, float]]


def drop_path_layers(model: nn.Module) -> List[nn.Module]:
    """The drop-path layers of ``model`` (:data:`DROP_PATHS`).

    Raises:
        ValueError: For a layer whose class name contains ``DropPath`` but
            is not one of :data:`DROP_PATHS`, or for activation
            checkpointing (a module with ``with_cp=True``) in a model with a
            non-zero drop path; the message names the module.
    """
    layers = []
    for name, module in model.named_modules():
        if isinstance(module, DROP_PATHS):
            layers.append(module)
        elif 'DropPath' in type(module).__name__:
            raise ValueError(
                f'{name} is a {type(module).__name__}: AdversarialMIMWrapper '
                'replays the drop-path draws of the clean pass in the attack '
                'and the adversarial pass, and knows how to do so for '
                f'{[f"{c.__module__}.{c.__name__}" for c in DROP_PATHS]}. '
                'Build the model with one of those, or with drop_path_rate=0.')
    if any(m.drop_prob > 0 for m in layers):
        cp = [n for n, m in model.named_modules()
              if getattr(m, 'with_cp', False) is True]
        if cp:
            raise ValueError(
                f'{cp[0]} uses activation checkpointing (with_cp=True) in a '
                'model with a non-zero drop path: the recomputation in the '
                'backward would draw new drop paths instead of replaying the '
                "clean pass's. Set with_cp=False or drop_path_rate=0.")
    return layers


class DropPathDraws:
    """The drop-path draws of one clean pass, per layer and call.

    Args:
        layers: The drop-path layers (:func:`drop_path_layers`).
    """

    def __init__(self, layers: List[nn.Module]) -> None:
        self.layers = layers
        self.calls: Dict[int, List[Draw]] = {id(m): [] for m in layers}

    @contextmanager
    def replay(self,
               index: Optional[torch.Tensor] = None) -> Iterator[None]:
        """Inside the block, each layer's ``k``-th call of a pass applies the
        draw of its ``k``-th recorded call (cycling when a later pass calls
        it again), restricted to the samples ``index`` of the recorded
        batch (``None``: all of them).

        Raises:
            RuntimeError: (At the call) for a layer that the recorded pass
                never called.
        """
        counters = {id(m): 0 for m in self.layers}

        def forward(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
            calls = self.calls[id(module)]
            if not calls:
                raise RuntimeError(
                    f'A {type(module).__name__} (drop_prob '
                    f'{module.drop_prob}) ran in a pass after the clean one, '
                    'but not in the clean pass: it has no draw to replay.')
            draw = calls[counters[id(module)] % len(calls)]
            counters[id(module)] += 1
            if draw is None:
                return x
            keep, divisor = draw
            if index is not None:
                keep = keep[index.to(keep.device)]
            return x.div(divisor) * keep.to(x.dtype)

        with _forwards(self.layers, forward):
            yield


@contextmanager
def record_drop_paths(layers: List[nn.Module]) -> Iterator[DropPathDraws]:
    """Inside the block, ``layers`` draw as mmcv's ``DropPath`` does and
    keep their draws, which the yielded :class:`DropPathDraws` replays.

    Args:
        layers: The drop-path layers (:func:`drop_path_layers`).
    """
    draws = DropPathDraws(layers)

    def forward(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if not module.training or module.drop_prob == 0:
            draws.calls[id(module)].append(None)
            return x
        keep_prob = 1 - module.drop_prob
        shape = (x.shape[0], ) + (1, ) * (x.ndim - 1)
        keep = (keep_prob + torch.rand(
            shape, dtype=x.dtype, device=x.device)).floor()
        divisor = keep_prob if getattr(module, 'scale_by_keep', True) else 1.
        draws.calls[id(module)].append((keep, divisor))
        return x.div(divisor) * keep

    with _forwards(layers, forward):
        yield draws


@contextmanager
def _forwards(layers: List[nn.Module], forward) -> Iterator[None]:
    """Inside the block, ``forward(layer, x)`` is each layer's forward."""
    for layer in layers:
        layer.forward = types.MethodType(forward, layer)
    try:
        yield
    finally:
        for layer in layers:
            del layer.forward
