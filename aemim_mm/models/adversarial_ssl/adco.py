"""AdCo: Adversarial Contrast (Hu, Wang, Hu, Qi, CVPR 2021), on MoCo v2.

MoCo's queue becomes a bank ``W`` (D x K) of learnable negatives, shared by
every query and kept across iterations. Per iteration::

    L = CE([q . k_all, q . W^] / T, own key)      # k_all: every process's keys
    W <- W + ascent on CE([q . k_all, q . W^] / T_m, own key)   # after, pre-step q

``W^`` is ``W`` with unit columns. The ascent is SGD with momentum and weight
decay (:class:`~.memory_bank.MemoryBank`), with its own learning rate,
momentum and temperature; its gradient is the mean over every process's
queries (all-reduced), so every process holds the same bank. The bank is
MoCo's queue buffer; its velocity and fill count are buffers of the
wrapper: all saved in checkpoints, restored on resume. As the official
``ad_init``, the first ``K / batch`` iterations train MoCo's loss with the
bank filled with keys like a queue, then copy the query encoder into the
key encoder. Deviations from the official code
(``maple-research-lab/AdCo``): docs/survey.md.
"""
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from mmengine.dist import all_gather, get_rank
from torch import Tensor

from mmpretrain.models.selfsup import MoCo
from mmpretrain.registry import MODELS
from .base import AdversarialSSLWrapper, check_temperature
from .memory_bank import MemoryBank, bank_logits, check_memory_options


@MODELS.register_module()
class AdCo(AdversarialSSLWrapper, MemoryBank):
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
        check_memory_options('AdCo', memory_lr, memory_temperature,
                             memory_momentum, memory_weight_decay, fill)
        if not isinstance(batch_keys_as_negatives, bool):
            raise ValueError('AdCo: batch_keys_as_negatives must be a bool, '
                             f'got {batch_keys_as_negatives!r}.')
        super().__init__(algorithm, attack=None, **kwargs)
        check_temperature(type(self).__name__, self.ssl)
        self.memory_lr = memory_lr
        self.memory_temperature = memory_temperature
        self.memory_momentum = memory_momentum
        self.memory_weight_decay = memory_weight_decay
        self.batch_keys_as_negatives = batch_keys_as_negatives
        self.init_bank_state(fill)

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
        if not self.bank_full:                 # the official ad_init
            return dict(loss=self.fill_step(q, k))
        # L = CE([q . k_all, q . W^] / T, own key)
        pos, labels = self.positives(q, k)
        logits = torch.cat([pos, bank_logits(q, self.bank).clone()], dim=1)
        loss = self.ssl.loss_weight * F.cross_entropy(
            logits / self.ssl.temperature, labels)
        # W climbs the same loss of the pre-step queries, at T_m: its
        # coefficients are the softmax over the bank's columns
        memory_logits = logits.detach() / self.memory_temperature
        p = memory_logits.softmax(dim=1)[:, pos.shape[1]:]
        self.step_bank([q.detach()], [p], self.memory_temperature,
                       self.memory_lr, self.memory_momentum,
                       self.memory_weight_decay)
        return dict(loss=loss, adv_memory_objective=F.cross_entropy(
            memory_logits, labels))

    def positives(self, q: Tensor, k: Tensor) -> Tuple[Tensor, Tensor]:
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
                                  bank_logits(q, self.bank).clone())
        if self.fill_bank(k):
            self.ssl.reset_key_encoder()
        self.algorithm.queue_ptr.fill_(self.filled % self.bank.shape[1])
        return loss
