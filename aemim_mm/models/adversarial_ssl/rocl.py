"""RoCL: Adversarial Self-Supervised Contrastive Learning (Kim, Tack,
Hwang, NeurIPS 2020), on SimCLR.

Per iteration, with views ``t(x)``, ``t'(x)`` and the encoder-projector
``f``::

    x_adv = PGD_eps(t(x))  maximising  NCE(f(x_adv), f(t'(x)))
                           (BatchNorm in eval mode during the attack)
    L = NCE(f(t(x)), f(t'(x)), f(x_adv))       # 3-view NT-Xent
      + (1 / lambda) * NCE(f(x_adv), f(t'(x)))  # the regulariser

Deviations from the official code (``Kim-Minseon/RoCL``): docs/survey.md.
"""
from typing import Dict, List, Optional

from torch import Tensor

from mmpretrain.models.selfsup import SimCLR
from mmpretrain.registry import MODELS
from ...utils.checks import is_number
from .base import AdversarialSSLWrapper


@MODELS.register_module()
class RoCL(AdversarialSSLWrapper):
    """RoCL around mmpretrain's SimCLR.

    Args:
        algorithm: A ``SimCLR`` config (its head's temperature is RoCL's,
            0.5 in the paper's configs).
        attack: The PGD (paper: eps 8, step 0.007 x 255 = 1.785, 7 steps,
            random start; 0-255 units).
        lamda: The regulariser's weight is ``1 / lamda`` (paper: 256);
            ``None`` drops the regulariser.
        adversarial_contrast: Whether ``x_adv`` joins the NT-Xent as a third
            view (the official ``--advtrain_type Rep``); ``False`` with
            ``lamda=None`` is SimCLR with RoCL's similarity.
        stop_grad_others: Similarities ``f @ sg(f).T`` as the official
            ``pairwise_similarity`` computes them (default); ``False`` for
            the symmetric NT-Xent of SimCLR.
        **kwargs: :class:`AdversarialSSLWrapper`'s arguments.
    """

    ALGORITHMS = (SimCLR, )
    ATTACK_NORMS = 'eval'

    def __init__(self,
                 algorithm: dict,
                 attack: dict = dict(type='PixelPGD', eps=8, steps=7,
                                     step_size=1.785),
                 lamda: Optional[float] = 256.,
                 adversarial_contrast: bool = True,
                 stop_grad_others: bool = True,
                 **kwargs) -> None:
        if lamda is not None and not (is_number(lamda) and lamda > 0):
            raise ValueError(
                f'RoCL: lamda must be None or a number > 0, got {lamda!r}.')
        for name, value in (('adversarial_contrast', adversarial_contrast),
                            ('stop_grad_others', stop_grad_others)):
            if not isinstance(value, bool):
                raise ValueError(f'RoCL: {name} must be a bool, got '
                                 f'{value!r}.')
        super().__init__(algorithm, attack, **kwargs)
        self.lamda = lamda
        self.adversarial_contrast = adversarial_contrast
        self.stop_grad_others = stop_grad_others

    def contrast_term(self, embeddings: List[Tensor]) -> Tensor:
        """The NT-Xent of ``[f(t(x)), f(t'(x)), f(x_adv)]`` (A-RoCL
        re-weights it)."""
        return self.ssl.contrast(embeddings, self.stop_grad_others)

    def loss(self, inputs: List[Tensor],
             data_samples: list) -> Dict[str, Tensor]:
        """One RoCL iteration (``rocl_train.py: train``)."""
        f, nce, sg = self.ssl.embed, self.ssl.contrast, self.stop_grad_others
        t1, t2 = self.ssl.views(inputs)
        # x_adv = PGD on t(x), maximising NCE(f(x_adv), f(t'(x)))
        adv = self.craft([t1], lambda v: nce(f([v[0], t2]), sg))
        x_adv = adv.views[0]
        # NCE over {t(x), t'(x)} (+ x_adv), one forward of all views
        views = [t1, t2, x_adv] if self.adversarial_contrast else [t1, t2]
        losses = dict(loss_contrast=self.contrast_term(f(views)))
        # + (1 / lambda) * NCE(f(x_adv), f(t'(x))), its own forward
        if self.lamda is not None:
            losses['loss_reg'] = nce(f([x_adv, t2]), sg) / self.lamda
        return dict(losses, **adv.log)
