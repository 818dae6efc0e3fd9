"""IFM: Implicit Feature Modification ("Can contrastive learning avoid
shortcut solutions?", Robinson et al., NeurIPS 2021), on MoCo v2 and SimCLR.

The worst case, within an L2 ball of radius eps, of the normalised positive
key and negatives moves the positive away from the query and the negatives
towards it; for unit embeddings it shifts the logits by exactly eps::

    logits     = [q k, q n_j] / T
    logits_adv = [q k - eps, q n_j + eps] / T
    L = (CE(logits) + alpha * CE(logits_adv)) / (1 + alpha)

No pixel is perturbed and nothing is stored. Deviations from the official
code (``joshr17/IFM``): docs/survey.md.
"""
from typing import Dict, List

from torch import Tensor

from mmpretrain.models.selfsup import MoCo, SimCLR
from mmpretrain.registry import MODELS
from ...utils.checks import is_number
from .base import AdversarialSSLWrapper, check_temperature, check_weight


@MODELS.register_module()
class IFM(AdversarialSSLWrapper):
    """IFM around mmpretrain's MoCo (v2) or SimCLR.

    Args:
        algorithm: A ``MoCo`` or ``SimCLR`` config.
        eps: The logit shift, in cosine units (paper: 0.1). ``>= 0``.
        alpha: The adversarial term's weight (paper: 1).
        **kwargs: :class:`AdversarialSSLWrapper`'s arguments (no attack).
    """

    ALGORITHMS = (MoCo, SimCLR)

    def __init__(self,
                 algorithm: dict,
                 eps: float = 0.1,
                 alpha: float = 1.0,
                 **kwargs) -> None:
        if not is_number(eps) or eps < 0:
            raise ValueError(f'IFM: eps must be a number >= 0, got {eps!r}.')
        check_weight('IFM', 'alpha', alpha)
        super().__init__(algorithm, attack=None, **kwargs)
        check_temperature(type(self).__name__, self.ssl)
        self.eps = eps
        self.alpha = alpha

    def loss(self, inputs: List[Tensor],
             data_samples: list) -> Dict[str, Tensor]:
        """One IFM iteration (``moco-master/moco/adv_builder.py``)."""
        sim = self.ssl.similarities(self.ssl.views(inputs))
        # (CE(logits) + alpha CE(logits shifted by eps)) / (1 + alpha)
        loss_clean = self.ssl.head_loss(sim.pos, sim.neg)
        loss_adv = self.ssl.head_loss(sim.pos - self.eps, sim.neg + self.eps)
        sim.finish()
        scale = 1 / (1 + self.alpha)
        return dict(loss_clean=scale * loss_clean,
                    loss_adv=scale * self.alpha * loss_adv)
