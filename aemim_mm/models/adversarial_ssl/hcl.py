"""HCL: Contrastive Learning with Hard Negative Samples (Robinson, Chuang,
Sra, Jegelka, ICLR 2021), on SimCLR and MoCo v2.

Not an optimised perturbation: the negatives of each anchor are re-weighted
towards the hard ones (importance weights ``n_j ** beta``, normalised by
their mean) and debiased for same-class negatives (prior ``tau_plus``)::

    Ng = max((-tau_plus * N * pos + sum_j w_j n_j) / (1 - tau_plus),
             N * e ** (-1 / T))
    L  = mean(-log(pos / (pos + Ng)))          # pos = e^{s_p / T}, n_j = e^{s_j / T}

The weights carry gradient, as in the official code (``joshr17/HCL``:
``image/main.py``). With ``beta = 0`` and ``tau_plus = 0`` it is the
algorithm's own loss. Deviations: docs/survey.md.
"""
import math
from typing import Dict, List

import torch
from torch import Tensor

from mmpretrain.models.selfsup import MoCo, SimCLR
from mmpretrain.registry import MODELS
from ...utils.checks import is_number
from .base import AdversarialSSLWrapper, check_temperature


def hcl_loss(pos: Tensor, neg: Tensor, temperature: float, beta: float,
             tau_plus: float) -> Tensor:
    """HCL's loss of positive (M, 1) and negative (M, K) similarities.

    Args:
        pos: Each anchor's similarity with its positive.
        neg: Each anchor's similarities with its negatives.
        temperature: T.
        beta: The hardness exponent.
        tau_plus: The positive-class prior.
    """
    pos = torch.exp(pos.squeeze(1) / temperature)
    neg = torch.exp(neg / temperature)
    num = neg.shape[1]
    imp = (beta * neg.log()).exp()
    reweighted = (imp * neg).sum(dim=-1) / imp.mean(dim=-1)
    ng = (-tau_plus * num * pos + reweighted) / (1 - tau_plus)
    ng = torch.clamp(ng, min=num * math.exp(-1 / temperature))
    return (-torch.log(pos / (pos + ng))).mean()


@MODELS.register_module()
class HCL(AdversarialSSLWrapper):
    """HCL around mmpretrain's SimCLR or MoCo (v2).

    Args:
        algorithm: A ``SimCLR`` or ``MoCo`` config (its head's temperature
            is HCL's; the paper's: 0.5).
        beta: The hardness exponent (paper: 1.0). ``>= 0``.
        tau_plus: The positive-class prior (paper: 0.1). In ``[0, 1)``.
        **kwargs: :class:`AdversarialSSLWrapper`'s arguments (no attack).
    """

    ALGORITHMS = (SimCLR, MoCo)

    def __init__(self,
                 algorithm: dict,
                 beta: float = 1.0,
                 tau_plus: float = 0.1,
                 **kwargs) -> None:
        if not is_number(beta) or beta < 0:
            raise ValueError(f'HCL: beta must be a number >= 0, got {beta!r}.')
        if not is_number(tau_plus) or not 0 <= tau_plus < 1:
            raise ValueError('HCL: tau_plus must be a number in [0, 1), got '
                             f'{tau_plus!r}.')
        super().__init__(algorithm, attack=None, **kwargs)
        check_temperature(type(self).__name__, self.ssl)
        self.beta = beta
        self.tau_plus = tau_plus

    def loss(self, inputs: List[Tensor],
             data_samples: list) -> Dict[str, Tensor]:
        """One HCL iteration (``image/main.py: criterion``)."""
        sim = self.ssl.similarities(self.ssl.views(inputs))
        loss = self.ssl.loss_weight * hcl_loss(
            sim.pos, sim.neg, self.ssl.temperature, self.beta, self.tau_plus)
        sim.finish()
        return dict(loss=loss)
