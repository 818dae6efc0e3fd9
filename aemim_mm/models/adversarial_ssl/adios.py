"""ADIOS: Adversarial Masking for Self-Supervised Learning (Shi, Siddharth,
Torr, Kosiorek, ICML 2022), on SimCLR, BYOL and SimSiam.

A masking network ``M`` (:class:`~.masking_net.MaskingUNet`: U-Net, 1x1
conv, softmax over ``N`` slots) gives ``N`` soft masks ``m_1..m_N`` of the
augmented view ``x_t``; each occludes ``x_t`` into ``x_t (1 - m_k)``, which
the algorithm compares with the other view ``x_o``. Per iteration, two
optimisers alternate (official ``src/methods/*_adios.py: training_step``)::

    (i)  encoder step (masks detached):
             min_theta  sum_k L_ssl(x_o, x_t (1 - sg(m_k)))
    (ii) mask step (encoder, projector and head frozen, after step i):
             max_phi    sum_k [L_ssl(x_o, x_t (1 - m_k))
                               - alpha_s mean_b 1 / (sin(pi s_k) + 1e-10)]
                        + alpha_e sum_b sum_k p_k log p_k,
                        p = softmax_k(s_1..s_N)

``s_k`` is the fraction of the image that mask ``k`` covers. ``L_ssl`` is the
algorithm's own loss of the pair, computed as the algorithm does (SimCLR:
NT-Xent over the global batch, both views in one forward; BYOL: the
symmetric predictor loss to the EMA target, moved once per iteration;
SimSiam: the official SimSiam-ADIOS terms, below). The last term is the
official ``Entropy()`` (``src/utils/metrics.py``: ``sum p log p``, i.e. the
negative entropy of the mask sizes' softmax) with the official sign: the
masking net is rewarded for unequal mask sizes, against the sparsity term's
pull towards equal ones (docs/adios.md). The masks multiply the
*normalised* views after augmentation, as the official pipelines do.

SimSiam (official ``simsiam_adios.py``): both views are masked, each by the
masks of its own view, and ``L_ssl`` of mask ``k`` is the mean of the
predictor-to-stop-gradient terms ``D(p(a), sg(z(b)))`` over the pairs
(masked 1, 2), (masked 2, 1) and, optionally, their mirror
(``use_symmetry_mask``: (2, masked 1), (1, masked 2)), the unmasked pair
(``use_no_mask``) and the masked pair (``use_both_mask``).

Two optimisers (mmengine ``OptimWrapperDict``, keys ``'encoder'`` and
``'mask_net'``) and the model's own :meth:`ADIOS.train_step`, which
synchronises the gradients of each step itself (under DDP too, through
``AEMIMDistributedDataParallel``). Deviations from the official code:
docs/adios.md.
"""
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import torch
from mmengine.dist import all_reduce_params, get_world_size
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch import Tensor, nn

from mmpretrain.models.selfsup import BYOL, SimCLR, SimSiam
from mmpretrain.registry import MODELS
from ...utils.checks import is_int
from ..attack import unit_pixels
from .base import AdversarialSSLWrapper, check_weight
from .joint_embedding import ContrastiveInterface

#: The keys of the ``OptimWrapperDict``: the algorithm's and the masking
#: network's optimizer.
OPTIMIZERS = ('encoder', 'mask_net')
#: The official guard of the sparsity penalty ``1 / (sin(pi s) + 1e-10)``.
SPARSITY_GUARD = 1e-10
#: Opacity of the mask overlays of :meth:`ADIOS.visualize`.
OVERLAY_ALPHA = 0.7


@dataclass
class MaskObjective:
    """What the masking network maximises, and what is logged of it.

    Attributes:
        objective: ``sum_k [L_ssl,k - alpha_s sparsity_k] + alpha_e
            sum p log p`` (a scalar with gradient to the masks).
        log: ``adv_mask_objective``, ``adv_mask_ssl`` (``sum_k L_ssl,k``),
            ``adv_mask_sparsity`` (``sum_k mean_b 1 / sin(pi s_k)``,
            unweighted), ``adv_mask_entropy`` (entropy of the mask sizes'
            softmax, mean over samples), ``adv_mask_size_min`` and
            ``adv_mask_size_max`` (each sample's smallest and largest mask
            fraction, mean over samples; the official ``mask_summed_min`` /
            ``_max``).
    """
    objective: Tensor
    log: Dict[str, Tensor] = field(default_factory=dict)


def occlude(view: Tensor, mask: Tensor) -> Tensor:
    """``view (1 - mask)``: the normalised view with the mask's pixels
    (softly) set to 0, the data set's mean colour."""
    return view * (1 - mask)


def red_overlay(view: Tensor, mask: Tensor,
                alpha: float = OVERLAY_ALPHA) -> Tensor:
    """A mask (B, 1, H, W) in [0, 1] drawn in red over an RGB ``view`` in
    [0, 1], with opacity ``alpha``."""
    red = view.new_tensor([1., 0., 0.]).reshape(1, 3, 1, 1)
    return view * (1 - alpha * mask) + alpha * mask * red


@MODELS.register_module()
class ADIOS(AdversarialSSLWrapper):
    """ADIOS around mmpretrain's SimCLR, BYOL or SimSiam.

    Args:
        algorithm: A ``SimCLR``, ``BYOL`` or ``SimSiam`` config (exact type).
        mask_net: The masking network (config or module) mapping a view
            (B, 3, H, W) to ``num_masks`` soft masks (B, N, H, W):
            :class:`~.masking_net.MaskingUNet` (``img_size`` = the views').
            Its parameters are ``mask_net.*`` in the state dict (dropped by
            export).
        num_masks: ``N``, the masks per view (official ``--N``: 4 or 6).
        alpha_sparsity: ``alpha_s``, weight of the sparsity penalty
            (official ``--alpha_sparsity``). ``>= 0``.
        alpha_entropy: ``alpha_e``, weight of ``sum p log p`` of the mask
            sizes (official ``--alpha_entropy``). ``>= 0``.
        use_symmetry_mask: SimSiam only (default ``True``, as the official
            argument): add the mirrored terms (unmasked predictions of the
            masked views' stop-gradient projections).
        use_no_mask: SimSiam only (default ``True``): add the unmasked pair.
        use_both_mask: SimSiam only (default ``True``): add the masked pair.
        **kwargs: :class:`AdversarialSSLWrapper`'s ``data_preprocessor``
            and ``init_cfg`` (no attack, no adapters).

    Raises:
        TypeError: For another algorithm (naming the supported ones).
        ValueError: For a bad option, naming it.
    """

    ALGORITHMS = (SimCLR, BYOL, SimSiam)
    #: :meth:`train_step` synchronises its gradients itself: under DDP,
    #: ``AEMIMDistributedDataParallel`` calls it instead of a DDP forward.
    SYNCS_OWN_GRADIENTS = True

    def __init__(self,
                 algorithm: dict,
                 mask_net: dict = dict(type='MaskingUNet'),
                 num_masks: int = 4,
                 alpha_sparsity: float = 1.0,
                 alpha_entropy: float = 0.0,
                 use_symmetry_mask: Optional[bool] = None,
                 use_no_mask: Optional[bool] = None,
                 use_both_mask: Optional[bool] = None,
                 **kwargs) -> None:
        if not is_int(num_masks) or num_masks < 1:
            raise ValueError('ADIOS: num_masks must be an int >= 1, got '
                             f'{num_masks!r}.')
        check_weight('ADIOS', 'alpha_sparsity', alpha_sparsity)
        check_weight('ADIOS', 'alpha_entropy', alpha_entropy)
        flags = dict(use_symmetry_mask=use_symmetry_mask,
                     use_no_mask=use_no_mask, use_both_mask=use_both_mask)
        for name, value in flags.items():
            if value is not None and not isinstance(value, bool):
                raise ValueError(f'ADIOS: {name} must be a bool (SimSiam) or '
                                 f'None, got {value!r}.')
        if isinstance(mask_net, dict):
            mask_net = dict(mask_net)
            given = mask_net.setdefault('num_masks', num_masks)
            if given != num_masks:
                raise ValueError(
                    f'ADIOS: mask_net.num_masks ({given!r}) differs from '
                    f'num_masks ({num_masks}); set num_masks only.')
        elif not isinstance(mask_net, nn.Module):
            raise ValueError('ADIOS: mask_net must be a config dict or a '
                             f'module, got {type(mask_net).__name__}.')
        for name in ('attack', 'adapter', 'adapter_scope', 'adv_bn_momentum'):
            if name in kwargs:
                raise ValueError(f'ADIOS: {name} is not an option of ADIOS '
                                 '(no pixel attack, one set of BatchNorms).')
        super().__init__(algorithm, attack=None, **kwargs)
        simsiam = type(self.algorithm) is SimSiam
        for name, value in flags.items():
            if value is not None and not simsiam:
                raise ValueError(
                    f'ADIOS: {name} is an option of SimSiam-ADIOS only, got '
                    f'{value!r} for {type(self.algorithm).__name__}.')
        self.num_masks = num_masks
        self.alpha_sparsity = alpha_sparsity
        self.alpha_entropy = alpha_entropy
        self.use_symmetry_mask = use_symmetry_mask is not False
        self.use_no_mask = use_no_mask is not False
        self.use_both_mask = use_both_mask is not False
        #: indices of the views that are masked: x_t (view 2); SimSiam both
        self.masked_views: Tuple[int, ...] = (0, 1) if simsiam else (1, )
        if isinstance(mask_net, dict):
            mask_net = MODELS.build(mask_net)
        found = getattr(mask_net, 'num_masks', num_masks)
        if found != num_masks:
            raise ValueError(f'ADIOS: the mask_net module gives {found} '
                             f'masks, num_masks is {num_masks}.')
        self.mask_net = mask_net

    # ----------------------------------------------------------- masks
    def masks(self, views: Sequence[Tensor]) -> List[Tensor]:
        """The ``N`` masks of each masked view (:attr:`masked_views`), each
        (B, N, H, W), from one forward of the masking network (its norms
        are per sample)."""
        x = torch.cat([views[i] for i in self.masked_views])
        masks = self.mask_net(x)
        if masks.shape != (x.shape[0], self.num_masks) + x.shape[2:]:
            raise ValueError(
                f'ADIOS: mask_net gave {tuple(masks.shape)}, expected '
                f'{(x.shape[0], self.num_masks) + tuple(x.shape[2:])}.')
        return list(masks.split(views[0].shape[0]))

    # ----------------------------------------------------- SSL terms
    def ssl_terms(self, views: Sequence[Tensor],
                  masks: Sequence[Tensor]) -> List[Tensor]:
        """``L_ssl`` of each mask ``k``: the algorithm's loss of ``x_o`` and
        ``x_t (1 - m_k)`` (SimSiam: the official mean of terms).

        Args:
            views: ``[x_o, x_t]``, normalised.
            masks: The masks of each of :attr:`masked_views` (B, N, H, W).

        Returns:
            ``N`` scalar losses.
        """
        x_o, x_t = views[0], views[1]
        if type(self.algorithm) is SimSiam:
            return self._simsiam_terms(views, masks)
        if isinstance(self.ssl, ContrastiveInterface):
            # SimCLR: both views in one forward, NT-Xent over the global batch
            f, nce = self.ssl.embed, self.ssl.contrast
            return [nce(f([x_o, occlude(x_t, m)]))
                    for m in masks[0].split(1, dim=1)]
        # BYOL: the unmasked view's projection and target, shared by the N
        # pairs (BatchNorm on batch statistics: the same values as N
        # forwards)
        g, k = self.ssl.embed, self.ssl.target
        e_o = g(x_o)
        k_o = k(x_o, e_o)
        terms = []
        for m in masks[0].split(1, dim=1):
            x_m = occlude(x_t, m)
            e_m = g(x_m)
            terms.append(self.ssl.symmetric(e_o, e_m, k_o, k(x_m, e_m)))
        return terms

    def _simsiam_terms(self, views: Sequence[Tensor],
                       masks: Sequence[Tensor]) -> List[Tensor]:
        """SimSiam-ADIOS (``simsiam_adios.py``): per mask, the mean of
        ``D(p(a), sg(z(b)))`` over the selected pairs."""
        g, reg = self.ssl.embed, self.ssl.regression
        e = [g(v) for v in views[:2]]           # unmasked: shared by all k
        z = [x.detach() for x in e]
        terms = []
        for m1, m2 in zip(masks[0].split(1, dim=1), masks[1].split(1, dim=1)):
            em = [g(occlude(views[0], m1)), g(occlude(views[1], m2))]
            zm = [x.detach() for x in em]
            pairs = [(em[0], z[1]), (em[1], z[0])]  # masked p, unmasked z
            if self.use_symmetry_mask:
                pairs += [(e[1], zm[0]), (e[0], zm[1])]
            if self.use_no_mask:
                pairs += [(e[0], z[1]), (e[1], z[0])]
            if self.use_both_mask:
                pairs += [(em[0], zm[1]), (em[1], zm[0])]
            terms.append(sum(reg(p, t) for p, t in pairs) / len(pairs))
        return terms

    # ----------------------------------------------------- objectives
    def loss(self, inputs: List[Tensor],
             data_samples: list) -> Dict[str, Tensor]:
        """Step (i)'s objective: ``sum_k L_ssl(x_o, x_t (1 - m_k))`` with the
        current masking network's masks, detached (BYOL's target moves
        first, as ``BYOL.loss``). Training runs :meth:`train_step`, which
        also takes step (ii)."""
        views = self.ssl.views(inputs)
        with torch.no_grad():
            masks = self.masks(views)
        self.step_target()
        return dict(loss=sum(self.ssl_terms(views, masks)))

    def step_target(self) -> None:
        """The algorithm's once-per-iteration state change (BYOL: the EMA
        target moves; SimCLR, SimSiam: none)."""
        step = getattr(self.ssl, 'step', None)
        if step is not None:
            step()

    def mask_objective(self, views: Sequence[Tensor],
                       masks: Sequence[Tensor]) -> MaskObjective:
        """Step (ii)'s objective, which the masking network maximises.

        Args:
            views: ``[x_o, x_t]``, normalised.
            masks: :meth:`masks` of ``views`` (with their graph).
        """
        ssl = sum(self.ssl_terms(views, masks))
        # s_k: each mask's fraction of the image, (B, N) per masked view
        sizes = [m.flatten(2).mean(2) for m in masks]
        sparsity = sum((1 / (torch.sin(math.pi * s) + SPARSITY_GUARD)).mean(0)
                       .sum() for s in sizes)
        s = torch.cat(sizes, dim=1)
        p_log_p = (s.softmax(dim=1) * s.log_softmax(dim=1)).sum(dim=1)
        # the official sum over the batch, over the global batch here: the
        # processes' mean of world_size * (local sum)
        neg_entropy = get_world_size() * p_log_p.sum()
        objective = (ssl - self.alpha_sparsity * sparsity +
                     self.alpha_entropy * neg_entropy)
        log = dict(adv_mask_objective=objective, adv_mask_ssl=ssl,
                   adv_mask_sparsity=sparsity,
                   adv_mask_entropy=-p_log_p.mean(),
                   adv_mask_size_min=s.min(dim=1).values.mean(),
                   adv_mask_size_max=s.max(dim=1).values.mean())
        return MaskObjective(objective,
                             {k: v.detach() for k, v in log.items()})

    # ---------------------------------------------------- training
    def train_step(self, data: dict,
                   optim_wrapper: OptimWrapperDict) -> Dict[str, Tensor]:
        """One ADIOS iteration: step (i) with ``optim_wrapper['encoder']``,
        then step (ii) with ``optim_wrapper['mask_net']``.

        Each step's gradients are averaged over processes here (this model
        is not run through a DDP forward), so one process and several give
        the same update.

        Raises:
            TypeError, ValueError: Before any computation, for an
                ``optim_wrapper`` that is not an ``OptimWrapperDict`` of the
                two optimizers (:meth:`check_optim_wrapper`).
        """
        encoder_optim, mask_optim = self.check_optim_wrapper(optim_wrapper)
        with encoder_optim.optim_context(self):
            data = self.data_preprocessor(data, True)
        views = self.ssl.views(data['inputs'])
        # the masks of x_t, computed once: detached in (i); (ii) differentiates
        # them (the masking network does not change in between)
        with mask_optim.optim_context(self):
            masks = self.masks(views)
        # (i) encoder step: minimise sum_k L_ssl with the masks detached
        with encoder_optim.optim_context(self):
            self.step_target()
            loss = sum(self.ssl_terms(views, [m.detach() for m in masks]))
        self._update(encoder_optim, loss, self.algorithm.parameters())
        # (ii) mask step: the encoder frozen, maximise the mask objective
        with self.frozen_algorithm(), mask_optim.optim_context(self):
            mask = self.mask_objective(views, masks)
        self._update(mask_optim, -mask.objective, self.mask_net.parameters())
        _, log_vars = self.parse_losses(dict(loss=loss.detach(), **mask.log))
        return log_vars

    @staticmethod
    def _update(optim_wrapper: OptimWrapper, loss: Tensor,
                params: Iterable[nn.Parameter]) -> None:
        """Backward ``loss``, average the gradients of ``params`` over
        processes (as DDP would), step and clear."""
        optim_wrapper.backward(optim_wrapper.scale_loss(loss))
        all_reduce_params([p.grad for p in params if p.grad is not None],
                          op='mean')
        optim_wrapper.step()
        optim_wrapper.zero_grad()

    @contextmanager
    def frozen_algorithm(self) -> Iterator[None]:
        """No parameter gradients for the algorithm inside the block (the
        official ``flip_inpainter_grad(False)``); inputs still get theirs."""
        params = [p for p in self.algorithm.parameters() if p.requires_grad]
        for p in params:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in params:
                p.requires_grad_(True)

    def check_optim_wrapper(self, optim_wrapper: object
                            ) -> Tuple[OptimWrapper, OptimWrapper]:
        """The encoder's and the masking network's optimizer wrappers.

        Raises:
            TypeError: Unless ``optim_wrapper`` is an ``OptimWrapperDict`` of
                ``OptimWrapper`` s.
            ValueError: Unless its keys are exactly :data:`OPTIMIZERS`, each
                accumulates over one iteration, ``'encoder'`` holds every
                trainable parameter of the algorithm and nothing else of
                the model, and ``'mask_net'`` every parameter of the masking
                network and nothing else.
        """
        how = ("build it with optim_wrapper=dict(constructor="
               "'SubmoduleOptimWrapperConstructor', encoder=dict(..., "
               "module='algorithm'), mask_net=dict(...)) as "
               'configs/survey/adios_*.py do')
        if not isinstance(optim_wrapper, OptimWrapperDict):
            raise TypeError(
                'ADIOS: optim_wrapper must be an mmengine OptimWrapperDict '
                f'with the keys {list(OPTIMIZERS)} (one optimizer for the '
                'encoder, one for the masking network), got '
                f'{type(optim_wrapper).__name__}; {how}.')
        keys = sorted(optim_wrapper.keys())
        if keys != sorted(OPTIMIZERS):
            raise ValueError(f'ADIOS: optim_wrapper must have the keys '
                             f'{list(OPTIMIZERS)}, got {keys}; {how}.')
        wrappers = [optim_wrapper[key] for key in OPTIMIZERS]
        owners = (self.algorithm, self.mask_net)
        for key, wrapper, owner in zip(OPTIMIZERS, wrappers, owners):
            if not isinstance(wrapper, OptimWrapper) or isinstance(
                    wrapper, OptimWrapperDict):
                raise TypeError(f"ADIOS: optim_wrapper['{key}'] must be an "
                                'OptimWrapper, got '
                                f'{type(wrapper).__name__}.')
            counts = getattr(wrapper, '_accumulative_counts', 1)
            if counts != 1:
                raise ValueError(
                    f"ADIOS: optim_wrapper['{key}'].accumulative_counts must "
                    f'be 1 (two alternating steps per iteration), got '
                    f'{counts}.')
            held = {id(p) for group in wrapper.optimizer.param_groups
                    for p in group['params']}
            own = {id(p) for p in owner.parameters()}
            trainable = {id(p) for p in owner.parameters() if p.requires_grad}
            name = 'model.algorithm' if owner is self.algorithm else \
                'model.mask_net'
            if not held <= own:
                raise ValueError(
                    f"ADIOS: optim_wrapper['{key}'] holds {len(held - own)} "
                    f'parameters that are not those of {name}; {how}.')
            if not trainable <= held:
                raise ValueError(
                    f"ADIOS: optim_wrapper['{key}'] misses "
                    f'{len(trainable - held)} trainable parameters of '
                    f'{name}; {how}.')
        return wrappers[0], wrappers[1]

    # ---------------------------------------------------- visualisation
    @torch.no_grad()
    def visualize(self, inputs: List[Tensor],
                  data_samples: Optional[list] = None) -> Dict[str, Tensor]:
        """The masks of ``x_t`` (the second view), RGB in [0, 1],
        (B, 3, H, W) each: ``view``, ``mask_1..N`` (each mask in red over
        the view) and ``masked_1..N`` (the occluded views the encoder sees,
        masked pixels at the data set's mean colour). No BatchNorm runs."""
        x = self.ssl.views(inputs)[1]
        masks = self.mask_net(x)
        mean, std = self.pixel_stats(x)
        view = unit_pixels(x, mean, std).float()
        out = dict(view=view)
        for k, m in enumerate(masks.float().split(1, dim=1), 1):
            out[f'mask_{k}'] = red_overlay(view, m)
        for k, m in enumerate(masks.split(1, dim=1), 1):
            out[f'masked_{k}'] = unit_pixels(occlude(x, m), mean, std).float()
        return out
