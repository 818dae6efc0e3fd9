"""MoCHi: Hard Negative Mixing for Contrastive Learning (Kalantidis et al.,
NeurIPS 2020), on MoCo v2.

For each query ``q``, its ``N`` hardest negatives of the queue (largest
``q . n``) give ``s`` synthetic negatives mixed among themselves and ``s'``
mixed with the query, all re-normalised::

    h_k  = normalize(a_k n_i + (1 - a_k) n_j),  a_k ~ U(0, 1)
    h'_k = normalize(b_k q + (1 - b_k) n_j),    b_k ~ U(0, 0.5)

whose logits are appended to the negatives of MoCo's loss; they are not
enqueued. No official code exists: the paper's definitions, and each choice
documented in docs/survey.md.
"""
from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import Tensor

from mmpretrain.models.selfsup import MoCo
from mmpretrain.registry import MODELS
from ...utils.checks import is_int, is_number
from ..randomness import MIX, SampleRandomness
from .base import AdversarialSSLWrapper, check_temperature


@MODELS.register_module()
class MoCHi(AdversarialSSLWrapper):
    """MoCHi around mmpretrain's MoCo (v2).

    Args:
        algorithm: A ``MoCo`` config.
        num_hard: ``N``, the hardest negatives mixed (paper's ImageNet
            settings: 1024 or 256). ``>= 2`` and at most the queue's length.
        num_mixed: ``s``, synthetic negatives from pairs of hard ones.
        num_query_mixed: ``s'``, synthetic negatives from the query and a
            hard one.
        max_query_weight: The query's largest weight ``b`` in ``h'`` (paper:
            0.5).
        **kwargs: :class:`AdversarialSSLWrapper`'s arguments (no attack).
    """

    ALGORITHMS = (MoCo, )

    def __init__(self,
                 algorithm: dict,
                 num_hard: int = 1024,
                 num_mixed: int = 1024,
                 num_query_mixed: int = 128,
                 max_query_weight: float = 0.5,
                 **kwargs) -> None:
        for name, value in (('num_mixed', num_mixed),
                            ('num_query_mixed', num_query_mixed)):
            if not is_int(value) or value < 0:
                raise ValueError(f'MoCHi: {name} must be an int >= 0, got '
                                 f'{value!r}.')
        if not is_number(max_query_weight) or not 0 <= max_query_weight <= 1:
            raise ValueError('MoCHi: max_query_weight must be in [0, 1], got '
                             f'{max_query_weight!r}.')
        super().__init__(algorithm, attack=None, **kwargs)
        check_temperature(type(self).__name__, self.ssl)
        queue_len = self.algorithm.queue_len
        if not is_int(num_hard) or not 2 <= num_hard <= queue_len:
            raise ValueError(f'MoCHi: num_hard must be an int in [2, '
                             f'{queue_len}] (the queue length), got '
                             f'{num_hard!r}.')
        self.num_hard = num_hard
        self.num_mixed = num_mixed
        self.num_query_mixed = num_query_mixed
        self.max_query_weight = max_query_weight

    def loss(self, inputs: List[Tensor],
             data_samples: list) -> Dict[str, Tensor]:
        """One MoCHi iteration: MoCo's, with synthetic negatives appended."""
        sim = self.ssl.similarities(self.ssl.views(inputs))
        synthetic = self.synthesize(sim.query.detach(), sim.neg.detach())
        # the queries against their synthetic negatives: more negatives
        neg = torch.cat(
            [sim.neg, torch.einsum('nd,nsd->ns', sim.query, synthetic)],
            dim=1)
        loss = self.ssl.head_loss(sim.pos, neg)
        sim.finish()
        return dict(loss=loss)

    @torch.no_grad()
    def synthesize(self, q: Tensor, l_neg: Tensor) -> Tensor:
        """The (N, s + s', D) synthetic negatives of each query (constants).

        Args:
            q: The normalised queries (N, D).
            l_neg: Their similarities with the queue (N, K).
        """
        queue = self.ssl.queue().t()                       # (K, D)
        hard = queue[l_neg.topk(self.num_hard, dim=1).indices]  # (N, H, D)
        num, dim = q.shape
        total = self.num_mixed + self.num_query_mixed
        if total == 0:
            return q.new_zeros(num, 0, dim)
        # per sample: the pair indices, the second partners and the weights,
        # keyed by sample (the same for any split over processes)
        draws = SampleRandomness(num, q.device, self.sample_seed).rand(
            (3, total), MIX)
        first = (draws[:, 0] * self.num_hard).long().clamp(max=self.num_hard
                                                            - 1)
        second = (draws[:, 1] * self.num_hard).long().clamp(
            max=self.num_hard - 1)
        weights = draws[:, 2]

        def pick(index: Tensor) -> Tensor:
            return torch.gather(hard, 1, index[..., None].expand(-1, -1, dim))

        s = self.num_mixed
        a = weights[:, :s, None]
        mixed = a * pick(first[:, :s]) + (1 - a) * pick(second[:, :s])
        b = weights[:, s:, None] * self.max_query_weight
        with_query = b * q[:, None] + (1 - b) * pick(second[:, s:])
        return F.normalize(torch.cat([mixed, with_query], dim=1), dim=2)
