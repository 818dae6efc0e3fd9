"""AdvCL: When Does Contrastive Learning Preserve Adversarial Robustness from
Pretraining to Finetuning? (Fan et al., NeurIPS 2021), on SimCLR.

Per iteration, with two augmented views ``t(x)``, ``t'(x)``, a weakly
augmented view ``x`` (crop and flip), its high-frequency component
``HFC(x)``, the encoder-projector ``f`` with three sets of BatchNorms (clean;
``'adv'`` for the contrastive adversary; ``'adv_ce'`` for the pseudo-label
adversary) and pseudo-label heads ``h_k`` on the pooled encoder features::

    (x_cl, x_ce) = PGD_eps from x, jointly maximising
        SupCon(f_adv(x_cl), f(t(x)), f(t'(x)), f(HFC(x)))
        + w * mean_k CE(h_k(g_adv_ce(x_ce)), y_k)
        (BatchNorm in training mode, as the original's)
    L = SupCon(f_adv(x_cl), f(t(x)), f(t'(x)), f(HFC(x)))
      + w * mean_k CE(h_k(g_adv_ce(x_ce)), y_k)

``y_k`` are k-means pseudo-labels of a pre-trained encoder's features
(``PseudoLabelHook``). Deviations from the official code (``LijieFan/
AdvCL``): docs/survey.md.
"""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmpretrain.models.selfsup import SimCLR
from mmpretrain.registry import MODELS
from ...utils.checks import is_int, is_number
from ..adapters import adversarial_state_dict_keys
from ..split_norm import add_adversarial_twins, is_split_norm
from .base import AdversarialSSLWrapper, check_weight
from .frequency import high_frequency
from .losses import supcon

#: The view names AdvCL contrasts beside t(x) and t'(x).
EXTRA_VIEWS = ('adversarial', 'high_frequency')


@MODELS.register_module()
class AdvCL(AdversarialSSLWrapper):
    """AdvCL around mmpretrain's SimCLR.

    Args:
        algorithm: A ``SimCLR`` config (its head's temperature is SupCon's,
            0.5 in the paper's config).
        attack: The PGD (paper: eps 8, step 2, 5 steps, random start; 0-255
            units), applied to both copies of the weak view.
        ks: The pseudo-label heads' numbers of classes (paper: 2, 10, 50,
            100, 500); their labels come from ``PseudoLabelHook``. ``()``:
            no heads, no cross-entropy.
        ce_weight: The pseudo-label cross-entropy's weight (paper: 0.2).
        radius: The high-frequency view's radius (paper: 8 on 32 px).
        base_temperature: SupCon's base temperature (its loss is scaled by
            ``temperature / base_temperature``; paper: 0.07).
        contrast_views: Which of ``('adversarial', 'high_frequency')`` join
            ``t(x)`` and ``t'(x)`` in SupCon (paper: both).
        adapter: ``'bn'`` (the paper's separate BatchNorms; the heads'
            adversary gets a third set, ``adv_ce_*``).
        adapter_scope: The children with split BatchNorms (paper: the
            encoder only; the projector's BatchNorm is shared).
        feat_dim: The pooled encoder features' width; ``None``: the
            projector's input width.
        **kwargs: :class:`AdversarialSSLWrapper`'s other arguments.
    """

    ALGORITHMS = (SimCLR, )
    ATTACK_NORMS = 'train'

    def __init__(self,
                 algorithm: dict,
                 attack: dict = dict(type='PixelPGD', eps=8, steps=5,
                                     step_size=2),
                 ks: Sequence[int] = (2, 10, 50, 100, 500),
                 ce_weight: float = 0.2,
                 radius: float = 8.,
                 base_temperature: float = 0.07,
                 contrast_views: Sequence[str] = EXTRA_VIEWS,
                 adapter: str = 'bn',
                 adapter_scope: Sequence[str] = ('backbone', ),
                 feat_dim: Optional[int] = None,
                 **kwargs) -> None:
        ks = tuple(ks)
        if not all(is_int(k) and k >= 2 for k in ks):
            raise ValueError(f'AdvCL: ks must be ints >= 2, got {ks!r}.')
        check_weight('AdvCL', 'ce_weight', ce_weight)
        if not is_number(radius) or radius < 0:
            raise ValueError(f'AdvCL: radius must be a number >= 0, got '
                             f'{radius!r}.')
        if not is_number(base_temperature) or base_temperature <= 0:
            raise ValueError('AdvCL: base_temperature must be a number > 0, '
                             f'got {base_temperature!r}.')
        unknown = [v for v in contrast_views if v not in EXTRA_VIEWS]
        if unknown or isinstance(contrast_views, str):
            raise ValueError(f'AdvCL: contrast_views must be a subset of '
                             f'{EXTRA_VIEWS}, got {contrast_views!r}.')
        if adapter != 'bn':
            raise ValueError("AdvCL: adapter must be 'bn' (its adversaries "
                             f'have BatchNorms of their own), got {adapter!r}.')
        super().__init__(algorithm, attack, adapter=adapter,
                         adapter_scope=adapter_scope, **kwargs)
        for module in self.algorithm.modules():     # the third BatchNorms
            if is_split_norm(module):
                add_adversarial_twins(module, 'adv_ce')
        self._adversarial_keys = adversarial_state_dict_keys(
            self.algorithm.state_dict())
        self.ks = ks
        self.ce_weight = ce_weight
        self.radius = radius
        self.base_temperature = base_temperature
        self.contrast_views = tuple(contrast_views)
        width = feat_dim or next(m for m in self.algorithm.neck.modules()
                                 if isinstance(m, nn.Linear)).in_features
        self.pseudo_heads = nn.ModuleList(nn.Linear(width, k) for k in ks)
        self.register_buffer('pseudo_labels',
                             torch.empty(0, len(ks), dtype=torch.long),
                             persistent=False)

    def set_pseudo_labels(self, labels: Tensor, ks: Sequence[int]) -> None:
        """The pseudo-labels of every training sample, (N, len(ks)).

        Raises:
            ValueError: If ``ks`` are not the heads' or the shape is wrong.
        """
        if tuple(ks) != self.ks or labels.dim() != 2 or labels.shape[
                1] != len(self.ks):
            raise ValueError(
                f'AdvCL has pseudo-label heads for ks={self.ks}; got labels '
                f'of shape {tuple(labels.shape)} for ks={tuple(ks)}.')
        self.pseudo_labels = labels.to(self.pseudo_labels.device,
                                       torch.long)

    def pseudo_targets(self, data_samples: list) -> Tensor:
        """The (len(ks), B) pseudo-labels of a batch, by ``sample_idx``.

        Raises:
            RuntimeError: Before ``set_pseudo_labels`` (no
                ``PseudoLabelHook``).
        """
        if self.pseudo_labels.numel() == 0:
            raise RuntimeError(
                'AdvCL has no pseudo-labels: add PseudoLabelHook to '
                "custom_hooks (the AdvCL configs have it), or set ks=() "
                'for no pseudo-label heads.')
        idx = torch.tensor([s.sample_idx for s in data_samples],
                           device=self.pseudo_labels.device)
        return self.pseudo_labels[idx].t()

    def pseudo_logits(self, view: Tensor) -> List[Tensor]:
        """Each head's logits on the pooled encoder features of ``view``."""
        out = self.algorithm.backbone(view)[-1]
        feat = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return [head(feat) for head in self.pseudo_heads]

    def pseudo_ce(self, logits: List[Tensor], targets: Tensor) -> Tensor:
        """The mean over heads of their cross-entropy (mean over samples;
        label -1 ignored)."""
        return sum(F.cross_entropy(lg, y, ignore_index=-1)
                   for lg, y in zip(logits, targets)) / len(logits)

    def contrast_term(self, z_adv: Optional[Tensor], z_clean: List[Tensor],
                      attack: bool = False) -> Tensor:
        """SupCon of ``[f_adv(x_cl)] + [f(t(x)), f(t'(x)), f(HFC(x))]``
        (``attack``: as the attack's objective; A-AdvCL changes both)."""
        views = ([z_adv] if z_adv is not None else []) + list(z_clean)
        return self.ssl.contrast(views, objective=supcon,
                                 base_temperature=self.base_temperature)

    def loss(self, inputs: List[Tensor],
             data_samples: list) -> Dict[str, Tensor]:
        """One AdvCL iteration (``pretraining_advCL.py: train``)."""
        f, w = self.ssl.embed, self.ce_weight
        t1, t2, x = self.ssl.views(inputs)
        y = self.pseudo_targets(data_samples) if self.ks else None
        with_adv = 'adversarial' in self.contrast_views
        # the clean views through the clean BatchNorms: t(x), t'(x), HFC(x)
        clean = [t1, t2] + ([high_frequency(x, self.radius)]
                            if 'high_frequency' in self.contrast_views else [])
        z_clean = f(clean)

        def heads(x_ce: Tensor) -> Tensor:
            with self.route('adv_ce'):
                return w * self.pseudo_ce(self.pseudo_logits(x_ce), y)

        def objective(v: List[Tensor]) -> Tensor:
            loss = 0
            if with_adv:
                with self.route('adv'):
                    loss = self.contrast_term(
                        f([v[0]])[0], [z.detach() for z in z_clean],
                        attack=True)
            return loss + (heads(v[1]) if self.ks else 0)

        if not (with_adv or self.ks):     # no adversary: SupCon of t, t'
            return dict(loss_contrast=self.contrast_term(None, z_clean))
        # (x_cl, x_ce): two copies of x, attacked jointly
        adv = self.craft([x, x], objective)
        x_cl, x_ce = adv.views
        z_adv = None
        if with_adv:
            with self.route('adv'):
                z_adv, = f([x_cl])
        losses = dict(loss_contrast=self.contrast_term(z_adv, z_clean))
        if self.ks:
            losses['loss_ce'] = heads(x_ce)
        return dict(losses, **adv.log)
