"""AdCo: Adversarial Contrast (Hu, Wang, Hu, Qi, CVPR 2021), on MoCo v2.

MoCo's queue becomes a bank ``W`` (D x K) of learnable negatives, shared by
every query and kept across iterations. Per iteration::

    L = CE([q . k_all, q . W^] / T, own key)      # k_all: every process's keys
    W <- W + ascent on CE([q . k_all, q . W^] / T_m, own key)   # after, pre-step q

``W^`` is ``W`` with unit columns. The ascent is SGD with momentum and weight
decay on the negated gradient (``torch.optim.SGD(maximize=True)``'s rule),
with its own learning rate, momentum and temperature; its gradient is the
mean over every process's queries (all-reduced), so every process holds the
same bank. The bank and its velocity are buffers: saved in checkpoints,
restored on resume. As the official ``ad_init``, the first ``K / batch``
iterations train MoCo's loss with the bank filled with keys like a queue,
then copy the query encoder into the key encoder. Deviations from the
official code (``maple-research-lab/AdCo``): docs/survey.md.
"""
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from mmengine.dist import all_gather, all_reduce, get_rank
from torch import Tensor

from mmpretrain.models.selfsup import MoCo
from mmpretrain.registry import MODELS
from ...utils.checks import is_number
from .base import AdversarialSSLWrapper, check_temperature


@MODELS.register_module()
class AdCo(AdversarialSSLWrapper):
    """AdCo around mmpretrain's MoCo (v2).

    Args:
        algorithm: A ``MoCo`` config; its queue is the bank (``queue_len``
            negatives; the head's temperature is the network's, AdCo: 0.12).
        memory_lr: The bank's learning rate (AdCo: 3). ``>= 0``.
        memory_temperature: ``T_m`` of the bank's update (AdCo: 0.02).
        memory_momentum: The bank's SGD momentum (AdCo: 0.9, the network's).
        memory_weight_decay: The bank's weight decay (AdCo: 1e-4).
        fill: Start with the official ``ad_init``: train MoCo's loss while
            the bank fills with keys, then copy the query encoder into the
            key encoder; ``False``: start adversarial from MoCo's random
            queue.
        batch_keys_as_negatives: Every process's keys in the positive
            logits, the other samples' as extra negatives (AdCo); ``False``:
            each query's own key only (MoCo's).
        **kwargs: :class:`AdversarialSSLWrapper`'s arguments (no attack).
    """

    ALGORITHMS = (MoCo, )

    def __init__(self,
                 algorithm: dict,
                 memory_lr: float = 3.0,
                 memory_temperature: float = 0.02,
                 memory_momentum: float = 0.9,
                 memory_weight_decay: float = 1e-4,
                 fill: bool = True,
                 batch_keys_as_negatives: bool = True,
                 **kwargs) -> None:
        checks = (('memory_lr', memory_lr, 0, None),
                  ('memory_momentum', memory_momentum, 0, 1),
                  ('memory_weight_decay', memory_weight_decay, 0, None))
        for name, value, low, high in checks:
            if not is_number(value) or value < low or (high is not None
                                                       and value > high):
                raise ValueError(f'AdCo: {name} must be a number >= {low}'
                                 + (f' and <= {high}' if high else '') +
                                 f', got {value!r}.')
        if not is_number(memory_temperature) or memory_temperature <= 0:
            raise ValueError('AdCo: memory_temperature must be a number > 0, '
                             f'got {memory_temperature!r}.')
        for name, value in (('fill', fill), ('batch_keys_as_negatives',
                                             batch_keys_as_negatives)):
            if not isinstance(value, bool):
                raise ValueError(f'AdCo: {name} must be a bool, got '
                                 f'{value!r}.')
        super().__init__(algorithm, attack=None, **kwargs)
        check_temperature(type(self).__name__, self.ssl)
        self.memory_lr = memory_lr
        self.memory_temperature = memory_temperature
        self.memory_momentum = memory_momentum
        self.memory_weight_decay = memory_weight_decay
        self.batch_keys_as_negatives = batch_keys_as_negatives
        bank = self.algorithm.queue
        self.register_buffer('bank_velocity', torch.zeros_like(bank))
        #: how many bank columns the fill has written (K: filled)
        self.register_buffer(
            'bank_filled', torch.tensor(0 if fill else bank.shape[1]))
        #: ``bank_filled`` on the host, read once after a build or a load
        #: (no per-iteration device synchronisation)
        self._filled: Optional[int] = None
        self.register_load_state_dict_post_hook(_forget_filled)

    @property
    def filled(self) -> int:
        """How many bank columns the fill has written (K: full)."""
        if self._filled is None:
            self._filled = int(self.bank_filled)
        return self._filled

    @property
    def bank(self) -> Tensor:
        """The learnable negatives (D, K): MoCo's queue buffer."""
        return self.algorithm.queue

    def loss(self, inputs: List[Tensor],
             data_samples: list) -> Dict[str, Tensor]:
        """One AdCo iteration (``training/train.py: update_network``)."""
        t1, t2 = self.ssl.views(inputs)
        q = self.ssl.query(t1)
        self.ssl.step()
        k = self.ssl.key(t2)
        if self.filled < self.bank.shape[1]:   # the official init
            return dict(loss=self.fill_step(q, k))
        # L = CE([q . k_all, q . W^] / T, own key)
        pos, labels = self.positives(q, k)
        neg = q @ F.normalize(self.bank, dim=0).clone()
        loss = self.ssl.loss_weight * F.cross_entropy(
            torch.cat([pos, neg], dim=1) / self.ssl.temperature, labels)
        # W climbs the loss of the pre-step queries, at T_m
        memory_objective = self.update_bank(q.detach(), pos.detach(), labels)
        return dict(loss=loss, adv_memory_objective=memory_objective)

    def positives(self, q: Tensor, k: Tensor):
        """The positive logits and each query's label among them."""
        if not self.batch_keys_as_negatives:
            return (q * k).sum(1, keepdim=True), q.new_zeros(
                q.shape[0], dtype=torch.long)
        k_all = torch.cat(all_gather(k), dim=0)
        labels = torch.arange(q.shape[0], device=q.device) + get_rank() * \
            q.shape[0]
        return q @ k_all.t(), labels

    def fill_step(self, q: Tensor, k: Tensor) -> Tensor:
        """MoCo's loss against the bank, the keys written into it like a
        queue; once it is full, the key encoder becomes the query encoder."""
        loss = self.ssl.head_loss((q * k).sum(1, keepdim=True),
                                  q @ F.normalize(self.bank, dim=0).clone())
        with torch.no_grad():
            keys = torch.cat(all_gather(k), dim=0).t()
            start = self.filled
            end = min(start + keys.shape[1], self.bank.shape[1])
            self.bank[:, start:end] = keys[:, :end - start]
            self.bank_filled.fill_(end)
            self.algorithm.queue_ptr.fill_(end % self.bank.shape[1])
            self._filled = end
            if end == self.bank.shape[1]:
                self.ssl.reset_key_encoder()
        return loss

    def update_bank(self, q: Tensor, pos: Tensor, labels: Tensor) -> Tensor:
        """One ascent step of the bank on the memory loss of ``q``; returns
        that loss before the step (logged as ``adv_memory_objective``).

        The gradient is the mean over every process's queries; the step is
        ``torch.optim.SGD(maximize=True)``'s: ``v = m v - g + wd W``,
        ``W = W - lr v``.
        """
        bank = self.bank.detach().clone().requires_grad_()
        with torch.enable_grad():
            logits = torch.cat([pos, q @ F.normalize(bank, dim=0)], dim=1)
            memory_loss = F.cross_entropy(logits / self.memory_temperature,
                                          labels)
            grad, = torch.autograd.grad(memory_loss, bank)
        with torch.no_grad():
            all_reduce(grad, op='mean')
            step = -grad + self.memory_weight_decay * self.bank
            self.bank_velocity.mul_(self.memory_momentum).add_(step)
            self.bank.sub_(self.memory_lr * self.bank_velocity)
        return memory_loss.detach()


def _forget_filled(module: AdCo, incompatible_keys) -> None:
    """After a load, read ``bank_filled`` again."""
    module._filled = None
