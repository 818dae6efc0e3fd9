"""BYORL: Bootstrap Your Own Robust Latents (Gowal et al., 2020), on BYOL
and SimSiam.

Per iteration, with views ``t(x)``, ``t'(x)``, the online network ``g``
(encoder, projector; the head's predictor ``q``) and the stop-gradient
target ``k`` (BYOL: the EMA target network; SimSiam: the online projection,
detached)::

    delta = PGD_eps  maximising  |q(g(t(x) + delta)) ~ k(t'(x))|  (the
            algorithm's regression loss; BatchNorm on batch statistics,
            none updated)
    L = the algorithm's two-view loss with t(x) replaced by t(x) + delta

No official code exists; the survey's Table 1 gives the attack. Decisions
(which view, the BatchNorm mode, the symmetric loss): docs/survey.md.
"""
from typing import Dict, List

from torch import Tensor

from mmpretrain.models.selfsup import BYOL, SimSiam
from mmpretrain.registry import MODELS
from .base import AdversarialSSLWrapper


@MODELS.register_module()
class BYORL(AdversarialSSLWrapper):
    """BYORL around mmpretrain's BYOL (or SimSiam).

    Args:
        algorithm: A ``BYOL`` or ``SimSiam`` config.
        attack: The PGD (0-255 units; the paper's steps and step size are
            not published: CIFAR-10 configs use eps 8, 5 steps of 2).
        **kwargs: :class:`AdversarialSSLWrapper`'s arguments.
    """

    ALGORITHMS = (BYOL, SimSiam)
    ATTACK_NORMS = 'frozen'

    def __init__(self,
                 algorithm: dict,
                 attack: dict = dict(type='PixelPGD', eps=8, steps=5,
                                     step_size=2),
                 **kwargs) -> None:
        super().__init__(algorithm, attack, **kwargs)

    def loss(self, inputs: List[Tensor],
             data_samples: list) -> Dict[str, Tensor]:
        """One BYORL iteration."""
        g, k, reg = self.ssl.embed, self.ssl.target, self.ssl.regression
        t1, t2 = self.ssl.views(inputs)
        self.ssl.step()                 # BYOL: the EMA target moves first
        e2 = g(t2)
        k2 = k(t2, e2)
        # delta maximises the regression of t(x) + delta onto k(t'(x))
        adv = self.craft([t1], lambda v: reg(g(v[0]), k2))
        x_adv = adv.views[0]
        # the algorithm's loss, t(x) replaced by its adversarial example
        e_adv = g(x_adv)
        loss = self.ssl.symmetric(e_adv, e2, k(x_adv, e_adv), k2)
        return dict(loss=loss, **adv.log)
