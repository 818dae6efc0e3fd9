"""AdversarialImageClassifier: the adversarial fine-tuning protocols of the
adversarial pre-training literature (ALF, AFF) on mmpretrain's
``ImageClassifier``.

* **ALF** (adversarial linear fine-tuning): the encoder frozen (the
  backbone's ``frozen_stages``), a linear head trained on PGD examples
  crafted through encoder and head: ``objective='pgd_at'``;
* **AFF** (adversarial full fine-tuning): the whole network, with PGD-AT
  (Madry et al., 2018: cross-entropy on PGD examples, ``'pgd_at'``) or
  TRADES (Zhang et al., 2019: ``CE(f(x), y) + beta * KL(f(x) || f(x'))``,
  ``x'`` maximising the KL from ``x + N(0, 0.001^2)``, ``'trades'``);
* SLF (standard linear fine-tuning) is mmpretrain's plain
  ``ImageClassifier`` with the frozen encoder.

The examples are :class:`~.attack.PixelPGD`'s (budgets in 0-255 pixel units
on the normalised inputs, inside the pixel box), crafted with every
BatchNorm in eval mode (running statistics, none updated), as the
originals' fine-tuning code does (Asym-AdvCL's ``finetuning_advCL_SLF.py``
and ``trades.py``). Config::

    model = dict(type='AdversarialImageClassifier', objective='trades',
                 beta=6.0, attack=dict(eps=8, steps=10, step_size=2),
                 backbone=..., neck=..., head=...)
"""
from typing import List, Optional

import torch
import torch.nn.functional as F
from mmpretrain.models import ImageClassifier
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor

from ..utils.checks import is_number
from .attack import PixelPGD, normalisation_stats
from .split_norm import eval_norms

__all__ = ['AdversarialImageClassifier', 'OBJECTIVES']

#: The training objectives.
OBJECTIVES = ('pgd_at', 'trades')
#: TRADES' start: ``x + N(0, TRADES_START_STD^2)`` in [0, 1] pixel units.
TRADES_START_STD = 0.001


@MODELS.register_module()
class AdversarialImageClassifier(ImageClassifier):
    """An ``ImageClassifier`` trained on adversarial examples (ALF / AFF).

    Args:
        objective: ``'pgd_at'`` or ``'trades'`` (see the module).
        attack: :class:`~.attack.PixelPGD`'s options (``eps``, ``steps``,
            ``step_size`` in 0-255 units; ``random_start``); default: the
            originals' training attack, eps 8/255, 10 steps of 2/255.
        beta: TRADES' weight of the KL term (the originals: 6).
        **kwargs: ``ImageClassifier``'s arguments.

    Raises:
        ValueError: For an unknown ``objective``, a bad attack option or a
            negative ``beta``, naming it.
    """

    def __init__(self,
                 objective: str = 'pgd_at',
                 attack: Optional[dict] = None,
                 beta: float = 6.0,
                 **kwargs) -> None:
        if objective not in OBJECTIVES:
            raise ValueError(f'AdversarialImageClassifier: objective must be '
                             f'one of {OBJECTIVES}, got {objective!r}.')
        if not is_number(beta) or beta < 0:
            raise ValueError('AdversarialImageClassifier: beta must be a '
                             f'number >= 0, got {beta!r}.')
        attack = dict(dict(eps=8, steps=10, step_size=2), **(attack or {}))
        attack.pop('type', None)
        if objective == 'trades' and not attack.get('random_start', True):
            raise ValueError('AdversarialImageClassifier: TRADES starts from '
                             'x + N(0, 0.001^2) (its KL has no gradient at '
                             'x): attack.random_start must stay True.')
        super().__init__(**kwargs)
        self.objective = objective
        self.beta = float(beta)
        self.attack = PixelPGD(**attack)

    def loss(self, inputs: Tensor, data_samples: List[DataSample]) -> dict:
        """PGD-AT: the head's loss on the examples; TRADES: the head's loss
        on the clean images plus ``beta`` times the batch-mean KL."""
        labels = torch.cat([s.gt_label for s in data_samples])
        if self.objective == 'pgd_at':
            x_adv = self.craft(inputs, lambda z: F.cross_entropy(
                self.logits(z), labels, reduction='none'))
            return self.head.loss(self.extract_feat(x_adv), data_samples)
        with torch.no_grad(), eval_norms(self):
            target = F.softmax(self.logits(inputs), dim=1)
        x_adv = self.craft(inputs, lambda z: F.kl_div(
            F.log_softmax(self.logits(z), dim=1), target,
            reduction='none').sum(1), start_std=TRADES_START_STD)
        feats = self.extract_feat(inputs)
        losses = self.head.loss(feats, data_samples)
        robust = F.kl_div(F.log_softmax(self.logits(x_adv), dim=1),
                          F.softmax(self.head(feats), dim=1),
                          reduction='batchmean')
        losses['loss_trades'] = self.beta * robust
        return losses

    def logits(self, inputs: Tensor) -> Tensor:
        """The head's logits of normalised images."""
        return self.head(self.extract_feat(inputs))

    def craft(self, inputs: Tensor, objective,
              start_std: Optional[float] = None) -> Tensor:
        """The attack's examples for ``objective`` (per-sample loss of
        normalised images), every BatchNorm in eval mode.

        Args:
            inputs: Normalised images.
            objective: The per-sample loss to maximise.
            start_std: ``None``: the attack's uniform start in the ball;
                else a Gaussian start of this std ([0, 1] pixel units), as
                TRADES (passed to the attack as the uniform draws that map
                to it, clipped to the ball).
        """
        mean, std = normalisation_stats(self.data_preprocessor, inputs)
        noise = None
        if start_std is not None and self.attack.eps > 0:
            # PixelPGD starts at x + (2u - 1) eps: u of a Gaussian start
            gauss = torch.randn_like(inputs) * (255.0 * start_std)
            noise = (0.5 + gauss / (2 * self.attack.eps)).clamp(0, 1)
        with eval_norms(self), torch.enable_grad():
            return self.attack(inputs, objective, mean, std,
                               noise=noise).x_adv

