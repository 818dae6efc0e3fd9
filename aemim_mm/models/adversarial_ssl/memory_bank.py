"""A bank of learnable embeddings moved by the contrastive loss (AdCo's
negatives, CaCo's positives and negatives): what the memory-based methods
share.

:class:`MemoryBank` is mixed into a method (an
:class:`~.base.AdversarialSSLWrapper`) that has a ``bank`` (D x K, used
column-normalised). It gives

* the fill (the originals' ``ad_init``): every process's keys written into
  the bank like a queue, until it is full (:meth:`MemoryBank.fill_bank`);
* the bank's step (:meth:`MemoryBank.step_bank`): for logits
  ``l = q . W^`` and per-entry coefficients ``C`` (AdCo: the softmax
  ``p`` at ``T_m``, gradient ascent; CaCo: ``p`` for negatives and
  ``1 - p`` for the positive),
  ``a = d/dW sum_{n,k} C_nk l_nk / (N T_m)``, the mean of ``a`` over
  processes (one all_reduce), then the originals' SGD rule
  ``v <- m v - a + wd W``, ``W <- W - lr v``;
* ``bank_velocity`` (the momentum) and ``bank_filled`` (how many columns
  the fill wrote) as buffers, saved in checkpoints and restored on resume,
  with ``bank_filled`` read on the host once after a build or load (no
  per-iteration synchronisation).
"""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.dist import all_gather, all_reduce
from torch import Tensor

from ...utils.checks import is_number


def bank_logits(q: Tensor, bank: Tensor) -> Tensor:
    """The similarities (N, K) of normalised queries with the unit bank
    columns."""
    return q @ F.normalize(bank, dim=0)


class MemoryBank:
    """Mixin: fill and step of a learnable bank (see the module)."""

    bank: Tensor

    def init_bank_state(self, fill: bool) -> None:
        """Register ``bank_velocity`` and ``bank_filled`` (0, or the bank's
        size when ``fill`` is ``False``)."""
        bank = self.bank
        self.register_buffer('bank_velocity', torch.zeros_like(bank))
        self.register_buffer('bank_filled',
                             torch.tensor(0 if fill else bank.shape[1]))
        self._filled: Optional[int] = None
        self.register_load_state_dict_post_hook(_forget_filled)

    @property
    def filled(self) -> int:
        """How many bank columns the fill has written (K: full)."""
        if self._filled is None:
            self._filled = int(self.bank_filled)
        return self._filled

    @property
    def bank_full(self) -> bool:
        """Whether the fill is over."""
        return self.filled >= self.bank.shape[1]

    @torch.no_grad()
    def fill_bank(self, keys: Tensor) -> bool:
        """Write every process's ``keys`` (N, D) into the next columns;
        ``True`` once the bank is full."""
        keys = torch.cat(all_gather(keys), dim=0).t()
        start, size = self.filled, self.bank.shape[1]
        end = min(start + keys.shape[1], size)
        self.bank[:, start:end] = keys[:, :end - start]
        self.bank_filled.fill_(end)
        self._filled = end
        return end == size

    @torch.no_grad()
    def step_bank(self, queries: Sequence[Tensor],
                  coefficients: Sequence[Tensor], temperature: float,
                  lr: float, momentum: float, weight_decay: float) -> None:
        """One step of the bank (see the module) for each ``(q, C)`` pair
        summed.

        Args:
            queries: Normalised queries (N, D), constants.
            coefficients: Their coefficients (N, K) on the bank's logits.
            temperature: ``T_m``.
            lr, momentum, weight_decay: The bank's SGD.
        """
        bank = self.bank.detach().clone().requires_grad_()
        with torch.enable_grad():
            unit = F.normalize(bank, dim=0)
            total = sum((q @ unit * c).sum() / q.shape[0]
                        for q, c in zip(queries, coefficients))
            ascent, = torch.autograd.grad(total / temperature, bank)
        all_reduce(ascent, op='mean')
        self.bank_velocity.mul_(momentum).add_(
            weight_decay * self.bank - ascent)
        self.bank.sub_(lr * self.bank_velocity)


def _forget_filled(module: MemoryBank, incompatible_keys) -> None:
    """After a load, read ``bank_filled`` again."""
    module._filled = None


def check_memory_options(method: str, memory_lr: float,
                         memory_temperature: float, memory_momentum: float,
                         memory_weight_decay: float, fill: bool) -> None:
    """Raise ``ValueError`` naming the first bad option of a bank."""
    checks = (('memory_lr', memory_lr, 0, None),
              ('memory_momentum', memory_momentum, 0, 1),
              ('memory_weight_decay', memory_weight_decay, 0, None))
    for name, value, low, high in checks:
        if not is_number(value) or value < low or (high is not None
                                                   and value > high):
            raise ValueError(f'{method}: {name} must be a number >= {low}' +
                             (f' and <= {high}' if high else '') +
                             f', got {value!r}.')
    if not is_number(memory_temperature) or memory_temperature <= 0:
        raise ValueError(f'{method}: memory_temperature must be a number > '
                         f'0, got {memory_temperature!r}.')
    if not isinstance(fill, bool):
        raise ValueError(f'{method}: fill must be a bool, got {fill!r}.')
