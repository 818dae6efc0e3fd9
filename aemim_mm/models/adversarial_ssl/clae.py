"""CLAE: Contrastive Learning with Adversarial Examples (Ho & Vasconcelos,
NeurIPS 2020), on SimCLR.

Per iteration, with views ``t(x)``, ``t'(x)``, the encoder-projector ``f``
(clean BatchNorms) and ``f_a`` (the same weights, auxiliary adversarial
BatchNorms)::

    x_adv = t(x) + eps * sign(grad NCE(f_a(t(x)), f_a(x)) at x = t(x))
                           (one FGSM step, no random start; BatchNorm in
                            training mode)
    L = NCE(f(t(x)), f(t'(x))) + alpha * NCE(f(t(x)), f_a(x_adv))

Deviations from the official code (``chihhuiho/CLAE``): docs/survey.md.
"""
from typing import Dict, List

from torch import Tensor

from mmpretrain.models.selfsup import SimCLR
from mmpretrain.registry import MODELS
from .base import AdversarialSSLWrapper, check_weight


@MODELS.register_module()
class CLAE(AdversarialSSLWrapper):
    """CLAE around mmpretrain's SimCLR.

    Args:
        algorithm: A ``SimCLR`` config.
        attack: One FGSM step (paper: eps 0.03 in the [-1, 1] input space of
            its mean = std = 0.5 normalisation, 0.03 x 0.5 x 255 = 3.825 in
            0-255 units; no random start).
        alpha: The adversarial term's weight (paper: 1).
        adapter: ``'bn'`` (default, the paper's auxiliary BatchNorm) or
            ``'none'``.
        adv_bn_momentum: The auxiliary BatchNorms' momentum (paper: 0.01).
        **kwargs: :class:`AdversarialSSLWrapper`'s other arguments.
    """

    ALGORITHMS = (SimCLR, )
    ATTACK_NORMS = 'train'

    def __init__(self,
                 algorithm: dict,
                 attack: dict = dict(type='PixelPGD', eps=3.825, steps=1,
                                     random_start=False),
                 alpha: float = 1.0,
                 adapter: str = 'bn',
                 adv_bn_momentum: float = 0.01,
                 **kwargs) -> None:
        check_weight('CLAE', 'alpha', alpha)
        super().__init__(algorithm, attack, adapter=adapter,
                         adv_bn_momentum=(adv_bn_momentum if adapter == 'bn'
                                          else None), **kwargs)
        self.alpha = alpha

    def loss(self, inputs: List[Tensor],
             data_samples: list) -> Dict[str, Tensor]:
        """One CLAE iteration (``SimCLR/main.py: train``)."""
        f, nce = self.ssl.embed, self.ssl.contrast
        t1, t2 = self.ssl.views(inputs)
        # NCE(f(t(x)), f(t'(x))): SimCLR's own term, clean BatchNorms
        z1, z2 = f([t1, t2])
        losses = dict(loss_clean=nce([z1, z2]))
        # x_adv: FGSM from t(x) against f_a(t(x)), auxiliary BatchNorms
        adv = self.craft([t1], lambda v: nce([f([t1])[0], f(v)[0]]),
                         route='adv')
        # + alpha * NCE(f(t(x)), f_a(x_adv))
        with self.route('adv'):
            z_adv, = f(adv.views)
        losses['loss_adv'] = self.alpha * nce([z1, z_adv])
        return dict(losses, **adv.log)
