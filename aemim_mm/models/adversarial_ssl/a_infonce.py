"""A-InfoNCE: Adversarial Contrastive Learning via Asymmetric InfoNCE (Yu et
al., ECCV 2022): Asym-RoCL and Asym-AdvCL.

Two changes of the base method's contrastive term (the attack and the rest
of the update stay the base's):

* **Inferior positives (IP).** The pairs of a clean view and the
  adversarial view are weighted asymmetrically, on similarities whose other
  side is detached: the term with the clean anchor and the adversarial
  positive (it moves the clean embedding) by ``w * d``, the term with the
  adversarial anchor and a clean positive (it moves the adversarial one) by
  ``w * (1 - d)``; ``d`` is the stop-gradient degree (0.2: the clean view is
  pulled towards the adversarial one far less than the other way round).
  Asym-AdvCL can anneal ``d`` towards 0.5 as the clean-adversarial feature
  distance falls below its early-training average.
* **Hard negatives (HN).** HCL's hardness-weighted, debiased denominator
  (:class:`~.losses.HardNegatives`).

Deviations from the official code (``yqy2001/A-InfoNCE``): docs/survey.md.
"""
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from mmengine.dist import all_reduce
from mmengine.logging import MessageHub
from torch import Tensor

from mmpretrain.registry import MODELS
from ...utils.checks import is_int, is_number
from ..split_norm import frozen_running_stats
from .advcl import AdvCL
from .base import check_weight
from .losses import HardNegatives, info_nce, supcon
from .rocl import RoCL


def _hard_negatives(method: str, cfg: Optional[dict],
                    supcon_code: bool) -> Optional[HardNegatives]:
    """A :class:`HardNegatives` from its config dict, checked; ``None``
    stays ``None``.

    ``dict(beta, tau_plus)`` computes the denominator as the official code
    does (``as_official=True``, the default): weights normalised by the
    candidate's row, and, in its SupCon (``supcon_code``: Asym-AdvCL), the
    row max subtracted and each term divided by the candidate's ``pos +
    Ng``. ``as_official=False``: HCL's formula, row by row.
    """
    if cfg is None:
        return None
    if not isinstance(cfg, dict) or set(cfg) - {'beta', 'tau_plus',
                                                'as_official'}:
        raise ValueError(f'{method}: hard_negatives must be None or a dict of '
                         f"'beta', 'tau_plus' (and 'as_official'), got "
                         f'{cfg!r}.')
    cfg = dict(cfg)
    official = cfg.pop('as_official', True)
    if not isinstance(official, bool):
        raise ValueError(f'{method}: hard_negatives.as_official must be a '
                         f'bool, got {official!r}.')
    hn = HardNegatives(
        row_shift=supcon_code,
        weight_mean='candidate' if official else 'negatives',
        denominator='candidate' if official and supcon_code else 'anchor',
        **cfg)
    if not is_number(hn.beta) or hn.beta < 0:
        raise ValueError(f'{method}: hard_negatives.beta must be a number '
                         f'>= 0, got {hn.beta!r}.')
    if not is_number(hn.tau_plus) or not 0 <= hn.tau_plus < 1:
        raise ValueError(f'{method}: hard_negatives.tau_plus must be in '
                         f'[0, 1), got {hn.tau_plus!r}.')
    return hn


def _check_ip(method: str, degree: float, weight: float) -> None:
    check_weight(method, 'stop_grad_degree', degree, upper=1)
    check_weight(method, 'adv_weight', weight)


@MODELS.register_module()
class ARoCL(RoCL):
    """Asym-RoCL: RoCL with A-InfoNCE's contrastive term.

    Args:
        algorithm: A ``SimCLR`` config.
        inferior_positive: Weight the clean/adversarial pairs of the 3-view
            NT-Xent asymmetrically (the official ``--stop_grad``).
        stop_grad_degree: ``d`` (shells: 0.2).
        adv_weight: ``w`` (shells: 1).
        hard_negatives: ``dict(beta, tau_plus)`` for HN (shells: 1.0, 0.12)
            or ``None``.
        **kwargs: :class:`RoCL`'s arguments (the attack and the regulariser
            stay RoCL's, as in the official code).
    """

    def __init__(self,
                 algorithm: dict,
                 inferior_positive: bool = True,
                 stop_grad_degree: float = 0.2,
                 adv_weight: float = 1.0,
                 hard_negatives: Optional[dict] = None,
                 **kwargs) -> None:
        if not isinstance(inferior_positive, bool):
            raise ValueError('ARoCL: inferior_positive must be a bool, got '
                             f'{inferior_positive!r}.')
        _check_ip('ARoCL', stop_grad_degree, adv_weight)
        hn = _hard_negatives('ARoCL', hard_negatives, supcon_code=False)
        super().__init__(algorithm, **kwargs)
        if not self.adversarial_contrast:
            raise ValueError('ARoCL re-weights the adversarial view of the '
                             'contrast: adversarial_contrast must be True.')
        self.inferior_positive = inferior_positive
        self.stop_grad_degree = stop_grad_degree
        self.adv_weight = adv_weight
        self.hard_negatives = hn

    def contrast_term(self, embeddings: List[Tensor]) -> Tensor:
        """A-InfoNCE's 3-view NT-Xent of ``[t(x), t'(x), x_adv]``."""
        weights = None
        if self.inferior_positive:
            w, d = self.adv_weight, self.stop_grad_degree
            # (anchor view, positive view): clean -> adv w d, adv -> clean
            # w (1 - d), the clean pair 1
            weights = [[1., 1., w * d], [1., 1., w * d],
                       [w * (1 - d), w * (1 - d), 1.]]
        return self.ssl.contrast(embeddings, objective=info_nce,
                                 stop_grad=self.stop_grad_others,
                                 pair_weights=weights,
                                 hard_negatives=self.hard_negatives)


@MODELS.register_module()
class AAdvCL(AdvCL):
    """Asym-AdvCL: AdvCL with A-InfoNCE's contrastive term.

    Args:
        algorithm: A ``SimCLR`` config.
        inferior_positive: Weight the pairs of the adversarial view and the
            clean views asymmetrically (the official ``--stop_grad``).
        stop_grad_degree: ``d`` (shells: 0.2).
        adv_weight: ``w`` (shells: 1.2 for IP, 0.7 for IP + HN).
        adaptive: ``dict(from_epoch, d_min)``: from epoch ``from_epoch``
            (0-based; shells: 30) ``d`` follows the mean clean-adversarial
            distance of the encoder's pooled features (clean BatchNorms):
            above its average over the earlier epochs ``d`` is
            ``stop_grad_degree``, below ``d_min`` (0.4) it is 0.5, linear in
            between. ``None``: ``d`` fixed.
        hard_negatives: ``dict(beta, tau_plus)`` for HN (shells: 1.0, 0.12)
            or ``None``.
        attack_original: The attack maximises AdvCL's own SupCon even when
            the training term has HN (the official ``--attack_ori``).
        **kwargs: :class:`AdvCL`'s arguments.
    """

    def __init__(self,
                 algorithm: dict,
                 inferior_positive: bool = True,
                 stop_grad_degree: float = 0.2,
                 adv_weight: float = 1.0,
                 adaptive: Optional[dict] = dict(from_epoch=30, d_min=0.4),
                 hard_negatives: Optional[dict] = None,
                 attack_original: bool = False,
                 **kwargs) -> None:
        for name, value in (('inferior_positive', inferior_positive),
                            ('attack_original', attack_original)):
            if not isinstance(value, bool):
                raise ValueError(f'AAdvCL: {name} must be a bool, got '
                                 f'{value!r}.')
        _check_ip('AAdvCL', stop_grad_degree, adv_weight)
        if adaptive is not None:
            if not (isinstance(adaptive, dict) and set(adaptive) == {
                    'from_epoch', 'd_min'} and is_int(adaptive['from_epoch'])
                    and adaptive['from_epoch'] >= 0
                    and is_number(adaptive['d_min'])
                    and adaptive['d_min'] >= 0):
                raise ValueError(
                    'AAdvCL: adaptive must be None or dict(from_epoch=int >= '
                    f'0, d_min=number >= 0), got {adaptive!r}.')
            if not inferior_positive:
                raise ValueError('AAdvCL: adaptive anneals the inferior-'
                                 'positive degree: it needs '
                                 'inferior_positive=True.')
        hn = _hard_negatives('AAdvCL', hard_negatives, supcon_code=True)
        super().__init__(algorithm, **kwargs)
        if 'adversarial' not in self.contrast_views:
            raise ValueError("AAdvCL re-weights the adversarial view: "
                             "contrast_views must hold 'adversarial'.")
        self.inferior_positive = inferior_positive
        self.stop_grad_degree = stop_grad_degree
        self.adv_weight = adv_weight
        self.adaptive = adaptive
        self.hard_negatives = hn
        self.attack_original = attack_original
        #: the average clean-adversarial distance of the early epochs (sum
        #: over samples, their number), saved in checkpoints
        self.register_buffer('distance_sum',
                             torch.zeros((), dtype=torch.float64))
        self.register_buffer('distance_count',
                             torch.zeros((), dtype=torch.float64))
        self._degree = stop_grad_degree

    def contrast_term(self, z_adv: Optional[Tensor], z_clean: List[Tensor],
                      attack: bool = False) -> Tensor:
        """A-InfoNCE's SupCon of ``[x_cl, t(x), t'(x), HFC(x)]``.

        As the official ``SupConLoss`` mixes it: a cross pair (the
        adversarial view and a clean one) enters both the adversarial
        anchor's and the clean anchor's row with the same value, ``w`` times
        ``d L(clean -> adv) + (1 - d) L(adv -> clean)`` on detached
        similarities (IP), or ``w L(adv -> clean)`` without IP (the clean
        anchor's own term is replaced). The attack's objective never has IP,
        and no HN with ``attack_original``.
        """
        views = [z_adv] + list(z_clean)
        hn = None if (attack and self.attack_original) else \
            self.hard_negatives
        ip = self.inferior_positive and not attack
        w, d, n = self.adv_weight, (self._degree if ip else 0.), len(views)
        weights = [[1.] * n for _ in range(n)]
        stop = [[False] * n for _ in range(n)]
        for c in range(1, n):
            weights[0][c] = 2 * w * (1 - d)     # adv anchor -> clean
            weights[c][0] = 2 * w * d           # clean anchor -> adv
            stop[0][c] = stop[c][0] = ip
        return self.ssl.contrast(views, objective=supcon,
                                 base_temperature=self.base_temperature,
                                 stop_grad=stop, pair_weights=weights,
                                 hard_negatives=hn)

    def loss(self, inputs: List[Tensor],
             data_samples: list) -> Dict[str, Tensor]:
        """AdvCL's iteration with the degree ``d`` of this iteration."""
        self._degree = self.stop_grad_degree
        losses = super().loss(inputs, data_samples)
        degree = losses['loss_contrast'].new_tensor(self._degree)
        return dict(losses, stop_grad_degree=degree)

    def craft(self, views, objective, route='clean'):
        """The attack, then (adaptive) this iteration's degree from the
        clean-adversarial distance of its result."""
        adv = super().craft(views, objective, route)
        if self.adaptive is not None and self.training:
            self._degree = self._adaptive_degree(views[0], adv.views[0])
        return adv

    @torch.no_grad()
    def _adaptive_degree(self, x: Tensor, x_cl: Tensor) -> float:
        """``d`` from the mean distance of the pooled encoder features of
        ``x`` and ``x_cl`` (clean BatchNorms, batch statistics, none
        updated), over every process's samples."""
        backbone = self.algorithm.backbone
        with self.route('clean'), frozen_running_stats(self.algorithm):
            feats = [F.adaptive_avg_pool2d(backbone(v)[-1], 1).flatten(1)
                     for v in (x, x_cl)]
        distance = F.pairwise_distance(*feats).double()
        stats = torch.stack([distance.sum(),
                             distance.new_tensor(float(len(distance)))])
        all_reduce(stats, op='sum')
        mean = float(stats[0] / stats[1])
        epoch = MessageHub.get_current_instance().get_info('epoch', 0)
        if epoch < self.adaptive['from_epoch']:
            self.distance_sum += stats[0]
            self.distance_count += stats[1]
            return self.stop_grad_degree
        average = float(self.distance_sum / self.distance_count.clamp_min(1))
        d0, d_min = self.stop_grad_degree, self.adaptive['d_min']
        if mean > average:
            return d0
        if mean < d_min:
            return 0.5
        return (average - mean) / (average - d_min) * (0.5 - d0) + d0
