"""ACL: Robust Pre-Training by Adversarial Contrastive Learning (Jiang et
al., NeurIPS 2020), on SimCLR.

Per iteration, with views ``t(x)``, ``t'(x)``, the encoder-projector ``f``
(clean BatchNorms) and ``f_a`` (adversarial BatchNorms)::

    (x1, x2) = PGD_eps(t(x), t'(x)) jointly, maximising NCE(f_a(x1), f_a(x2))
               (BatchNorm in eval mode during the attack)
    DS  (dual stream, default):
        L = 1/2 [NCE(f(t(x)), f(t'(x))) + NCE(f_a(x1), f_a(x2))]
    A2A (both views adversarial, one set of BatchNorms):
        L = NCE(f(x1), f(x2))
    A2S (one view adversarial, one set of BatchNorms; t'(x) is attacked):
        L = NCE(f(t(x)), f(x2))

Deviations from the official code (``VITA-Group/Adversarial-Contrastive-
Learning``): docs/survey.md.
"""
from typing import Dict, List

from torch import Tensor

from mmpretrain.models.selfsup import SimCLR
from mmpretrain.registry import MODELS
from .base import AdversarialSSLWrapper, check_weight

#: ACL's variants (the paper's Table 1).
VARIANTS = ('DS', 'A2A', 'A2S')


@MODELS.register_module()
class ACL(AdversarialSSLWrapper):
    """ACL around mmpretrain's SimCLR.

    Args:
        algorithm: A ``SimCLR`` config.
        attack: The PGD (paper: eps 8, step 2, 5 steps, random start; 0-255
            units).
        variant: ``'DS'`` (default; needs ``adapter='bn'``), ``'A2A'`` or
            ``'A2S'`` (one set of BatchNorms: ``adapter='none'``).
        adv_weight: DS only: ``L = (1 - w) NCE_clean + w NCE_adv``; the
            paper's mean is ``w = 0.5``.
        adapter: ``'bn'`` (default, the dual BatchNorms of DS) or
            ``'none'``.
        **kwargs: :class:`AdversarialSSLWrapper`'s other arguments.
    """

    ALGORITHMS = (SimCLR, )
    ATTACK_NORMS = 'eval'

    def __init__(self,
                 algorithm: dict,
                 attack: dict = dict(type='PixelPGD', eps=8, steps=5,
                                     step_size=2),
                 variant: str = 'DS',
                 adv_weight: float = 0.5,
                 adapter: str = 'bn',
                 **kwargs) -> None:
        if variant not in VARIANTS:
            raise ValueError(
                f'ACL: variant must be one of {VARIANTS}, got {variant!r}.')
        check_weight('ACL', 'adv_weight', adv_weight, upper=1)
        needed = 'bn' if variant == 'DS' else 'none'
        if adapter != needed:
            raise ValueError(
                f"ACL: variant {variant!r} needs adapter={needed!r} "
                f"({'dual' if needed == 'bn' else 'one set of'} BatchNorms), "
                f'got {adapter!r}.')
        super().__init__(algorithm, attack, adapter=adapter, **kwargs)
        self.variant = variant
        self.adv_weight = adv_weight

    def loss(self, inputs: List[Tensor],
             data_samples: list) -> Dict[str, Tensor]:
        """One ACL iteration (``train_simCLR.py: train``)."""
        f, nce, w = self.ssl.embed, self.ssl.contrast, self.adv_weight
        t1, t2 = self.ssl.views(inputs)
        route = 'adv' if self.variant == 'DS' else 'clean'
        if self.variant == 'A2S':       # t'(x) alone is attacked
            adv = self.craft([t2], lambda v: nce(f([t1, v[0]])), route)
            return dict(loss=nce(f([t1, adv.views[0]])), **adv.log)
        # (x1, x2): both views attacked jointly
        adv = self.craft([t1, t2], lambda v: nce(f(v)), route)
        with self.route(route):
            loss_adv = nce(f(adv.views))
        if self.variant == 'A2A':
            return dict(loss=loss_adv, **adv.log)
        # DS: the mean of the clean and the adversarial stream
        return dict(loss_clean=(1 - w) * nce(f([t1, t2])),
                    loss_adv=w * loss_adv, **adv.log)
