"""AdversarialMIMWrapper: AEMIM around an unchanged mmpretrain MIM model.

Config::

    model = dict(
        type='AdversarialMIMWrapper',
        algorithm=dict(type='MAE', ...),      # the unchanged model dict
        attack=dict(type='FeatureDistancePGD', eps=2, steps=2),
        adapter='ln', loss_ratio=0.5, adv_ratio=1.0)

:meth:`AdversarialMIMWrapper.loss` is Algorithm 1 of the paper, line by line.
"""
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.distributed as dist
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmengine.model.weight_init import initialize
from mmengine.optim import OptimWrapper
from torch import nn
from torch.profiler import record_function

from mmpretrain.models.necks import MAEPretrainDecoder
from mmpretrain.models.selfsup import MAEViT
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from ..utils.checks import is_number
from .adapters import (ADAPTERS, adapter_route, adversarial_state_dict_keys,
                       clean_twin_key, convert_adapters, is_adversarial_key,
                       reset_adversarial_adapters)
from .algorithms import build_mim_interface, select_samples
from .attack import (AttackResult, feature_distance, normalisation_stats,
                     unit_pixels)
from .drop_path import DropPathDraws, drop_path_layers, record_drop_paths
from .optim_support import check_optim_wrapper
from .patchify import patchify_as_matmul
from .profiling import (ADVERSARIAL, ADVERSARIAL_UPDATE, ATTACK,
                        CLEAN_BACKWARD, CLEAN_FORWARD)
from .randomness import START, SampleRandomness
from .split_norm import eval_norms, frozen_running_stats
from .state_dict_prefix import add_algorithm_prefix, strip_algorithm_prefix
from .sync_batch_norm import (check_equal_adversarial_forwards,
                              one_process_batch_norms)

#: mmpretrain 1.2.0 modules whose ``init_weights`` applies a ``Pretrained``
#: ``init_cfg`` and THEN re-initialises parameters (``MAEViT``: cls_token,
#: pos_embed, the patch projection; ``MAEPretrainDecoder``: mask_token,
#: decoder_pos_embed), losing what the checkpoint gave them.
PRETRAINED_OVERWRITTEN_BY = (MAEViT, MAEPretrainDecoder)


@MODELS.register_module()
class AdversarialMIMWrapper(BaseModel):
    """Masked image modeling with adversarial examples (AEMIM).

    Args:
        algorithm: The MIM model (config dict or module): an mmpretrain
            algorithm with an interface for its exact class
            (``aemim_mm.models.supported_algorithms()``; see
            ``docs/algorithms.md``). Its data preprocessor becomes the
            wrapper's.
        attack: The attack (config dict or object), by default
            :class:`~aemim_mm.models.FeatureDistancePGD` with the paper's
            settings.
        adapter: ``'ln'`` (default), ``'bn'`` (split BatchNorms: affine
            parameters and running statistics), ``'norm'`` (both),
            ``'cls_token'`` or ``'none'`` (see
            :mod:`~aemim_mm.models.adapters`).
        adapter_scope: Children of ``algorithm`` that get adapters (encoder
            and decoder by default).
        loss_ratio: lambda, the weight of the clean loss, in [0, 1].
        adv_ratio: alpha, the fraction of each batch that gets an
            adversarial example, in [0, 1]; ``round(alpha * B)`` samples
            (half up) are drawn at random each iteration.
        data_preprocessor: mmengine's Runner passes a config's top-level
            ``data_preprocessor`` (mmpretrain's MAE configs have one) to the
            model; it is handed on to ``algorithm`` when that is a config
            dict without one of its own. ``None`` keeps the algorithm's.
        init_cfg: mmengine initialisation config of the wrapper.
    """

    def __init__(self,
                 algorithm: Union[dict, nn.Module],
                 attack: Union[dict, object] = dict(type='FeatureDistancePGD'),
                 adapter: str = 'ln',
                 adapter_scope: Sequence[str] = ('backbone', 'neck'),
                 loss_ratio: float = 0.5,
                 adv_ratio: float = 1.0,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        check_ratio('loss_ratio', loss_ratio)
        check_ratio('adv_ratio', adv_ratio)
        if adapter not in ADAPTERS:
            raise ValueError(
                f'adapter must be one of {ADAPTERS}, got {adapter!r}.')
        if isinstance(adapter_scope, str) or not all(
                isinstance(s, str) for s in adapter_scope):
            raise ValueError('adapter_scope must be a list of sub-module '
                             f'names, got {adapter_scope!r}.')
        if not isinstance(attack, dict) and not callable(attack):
            raise ValueError(
                f'attack must be a config dict or a callable attack, got '
                f'{attack!r}.')
        if data_preprocessor is not None and not isinstance(
                data_preprocessor, dict):
            raise ValueError('data_preprocessor must be None or a config '
                             f'dict, got {data_preprocessor!r}.')
        if isinstance(algorithm, dict):
            algorithm = dict(algorithm)
            if data_preprocessor is not None:
                algorithm.setdefault('data_preprocessor', data_preprocessor)
            algorithm = MODELS.build(algorithm)
        elif data_preprocessor is not None:
            raise ValueError(
                'data_preprocessor is given to AdversarialMIMWrapper, but '
                'algorithm is a built module with its own; set it there.')
        mim = build_mim_interface(algorithm)
        attack = MODELS.build(attack) if isinstance(attack, dict) else attack

        super().__init__(
            data_preprocessor=algorithm.data_preprocessor, init_cfg=init_cfg)
        self.algorithm = algorithm
        self.mim = mim
        self.attack = attack
        self.adapter = adapter
        self.loss_ratio = loss_ratio
        self.adv_ratio = adv_ratio
        #: ``None``: draws from torch's global generator. An int (set each
        #: iteration by ``ReproducibleRandomnessHook``): draws keyed by
        #: sample, the same for any split of the batch over processes.
        self.sample_seed: Optional[int] = None
        if not (dist.is_available() and dist.is_initialized()):
            one_process_batch_norms(algorithm)     # see sync_batch_norm
        convert_adapters(algorithm, adapter,
                         mim.adapter_scope(tuple(adapter_scope)))
        #: drop-path layers: one draw per sample for every pass (drop_path)
        self._drop_paths = drop_path_layers(algorithm)
        self._adversarial_keys = adversarial_state_dict_keys(
            algorithm.state_dict())
        # Keys as in the plain algorithm: `backbone.…`, not `algorithm.backbone.…`.
        self.register_state_dict_post_hook(strip_algorithm_prefix)
        self.register_load_state_dict_pre_hook(add_algorithm_prefix)

    # ------------------------------------------------------------------ #
    def loss(self, inputs: torch.Tensor,
             data_samples: List[DataSample]) -> Dict[str, torch.Tensor]:
        """One iteration of Algorithm 1 (AEMIM in pre-training).

        Args:
            inputs: Normalised images (B, C, H, W) from the data preprocessor
                (or the algorithm's views of them).
            data_samples: The batch's data samples (SimMIM reads its mask).

        Returns:
            ``loss_clean`` and ``loss_adv`` (their sum is optimised) and the
            logged statistics of :meth:`_statistics`.
        """
        # 11: L_c = L_mim(F(x^m; psi + phi_c), x)    (one mask per sample and
        #     the target of the clean x, computed once for every pass)
        clean = self.clean_step(inputs, data_samples)
        # 4:    randomly select alpha % of the data: x'
        # 5-10: x_a^0 = x' + delta_x; T times x_a^{t+1} = Proj_{B(x, eps)}(
        #       x_a^t + mu * sign(grad_x L_adv(x, x_a, theta^e))); x_a = x_a^T
        # 12:   L_a = L_mim(F(x_a^m; psi + phi_a), x)   (target: the CLEAN x')
        adv = self.adversarial_step(clean)
        # 13: minimise lambda * L_c + (1 - lambda) * L_a w.r.t. theta
        return self.weighted_losses(clean, adv)

    def clean_step(self, inputs: torch.Tensor,
                   data_samples: List[DataSample]) -> 'CleanPass':
        """Line 11: ``L_c = L_mim(F(x^m; psi + phi_c), x)``.

        Also computes, once, what every later pass uses: the reconstruction
        target of the CLEAN batch (without gradient), one mask and one
        drop-path draw per sample.
        """
        x = self.mim.model_input(inputs)    # the view that is attacked
        rng = SampleRandomness(x.shape[0], x.device, self.sample_seed)
        target, mask = self.mim.prepare(inputs, data_samples, rng)
        with adapter_route(self, 'clean'), record_drop_paths(
                self._drop_paths) as drop_paths:
            rec_clean, feat_clean, _ = self.mim.reconstruction_loss(
                x, mask, target)
        return CleanPass(x, mask, rng, rec_clean, feat_clean.detach(),
                         target=target, drop_paths=drop_paths)

    def adversarial_step(self, clean: 'CleanPass') -> 'AdversarialPass':
        """Lines 4-10 and 12: select ``x'``, craft ``x_a``, compute ``L_a``."""
        # 4: randomly select alpha % of the data: x'
        idx = self.mim.select_adversarial(clean.rng, self.adv_ratio)
        if idx.numel() == 0:    # alpha * B rounds to 0 on this process
            return AdversarialPass(idx)
        x_sel, mask, target, target_feat = clean.select(idx)
        with adapter_route(self, 'adv'), clean.drop_paths.replay(idx):
            # 5-10: x_a = PGD-T(x') on L_adv from x' + delta_x, theta fixed
            attack = self.craft(x_sel, mask, target_feat, target,
                                clean.rng, idx)
            # 12: L_a = L_mim(F(x_a^m; psi + phi_a), x)   (target: CLEAN x')
            rec_adv, feat_adv, _ = self.mim.reconstruction_loss(
                attack.x_adv, mask, target)
        return AdversarialPass(idx, x_sel, target_feat, attack, rec_adv,
                               feat_adv)

    def weighted_losses(self,
                        clean: 'CleanPass',
                        adv: Optional['AdversarialPass'] = None
                        ) -> Dict[str, torch.Tensor]:
        """Line 13: the terms of ``lambda * L_c + (1 - lambda) * L_a``.

        The one place where lambda weighs the losses: :meth:`loss` gives it
        both passes; :func:`clean_first_train_step` asks for the clean term
        alone (``adv=None``) to backpropagate it first, then for both.

        ``(1 - lambda) * L_a`` is weighted by this process's share of the
        global subset (1 unless keyed draws split it unequally over
        processes), so that DDP's average is the mean over the subset. With
        no adversarial sample on this process, or a non-finite ``L_a`` (fp16
        overflow: kept away), ``loss_adv`` is a zero linked to the
        parameters (:meth:`_without_adversarial`).

        Returns:
            ``loss_clean``; with ``adv``, also ``loss_adv`` and the logged
            statistics.
        """
        losses = dict(loss_clean=self.loss_ratio * clean.rec_clean)
        if adv is None:
            return losses
        if adv.rec_adv is None:
            return dict(losses, **self._without_adversarial(clean, 0))
        if not torch.isfinite(adv.rec_adv):
            return dict(losses, **self._without_adversarial(
                clean, adv.index.numel()))
        share = clean.rng.share(adv.index.numel())
        return dict(losses,
                    loss_adv=(1 - self.loss_ratio) * adv.rec_adv * share,
                    **self._statistics(clean, adv))

    def craft(self, x: torch.Tensor, mask: torch.Tensor,
              target_feat: torch.Tensor, target: Any, rng: SampleRandomness,
              idx: torch.Tensor) -> AttackResult:
        """Lines 5-10: the attack on ``x'`` (``x``: the samples ``idx`` of
        the batch, their masks, ``sg(E(x'^m))`` and the clean target).

        Its random start is drawn per sample (``rng``); its forwards update
        no BatchNorm running statistics (they normalise with the batch's);
        on a CPU the patch embeddings run as reshape + matmul
        (:func:`~aemim_mm.models.patchify.patchify_as_matmul`); the attack is
        the profiler range ``aemim.attack``.
        """
        with patchify_as_matmul(self.algorithm), frozen_running_stats(
                self.algorithm), record_function(ATTACK):
            return self.attack(
                x, self._adv_loss(mask, target_feat, target),
                *self.pixel_stats(x),
                noise=rng.rand(x.shape[1:], START, idx))

    # ------------------------------------------------------------------ #
    def train_step(self, data: dict,
                   optim_wrapper: OptimWrapper) -> Dict[str, torch.Tensor]:
        """mmengine's training step, with the clean loss backpropagated
        before the adversarial graph is built (same gradients, lower peak
        memory); see :func:`clean_first_train_step`."""
        return clean_first_train_step(self, self, data, optim_wrapper)

    def clean_adapter_parameters(self) -> List[nn.Parameter]:
        """The clean twins of the adversarial adapter parameters."""
        params = dict(self.named_parameters())
        twins = [clean_twin_key(n) for n in params if is_adversarial_key(n)]
        # AdPE's adversarial positions (``adv_coord``) have no clean twin
        return [params[n] for n in twins
                if n in params and params[n].requires_grad]

    def select_adversarial(self, batch_size: int,
                           device: torch.device) -> torch.Tensor:
        """Indices of ``round(adv_ratio * batch_size)`` random samples."""
        return self.mim.select_adversarial(
            SampleRandomness(batch_size, device, self.sample_seed),
            self.adv_ratio)

    def _without_adversarial(self, clean: 'CleanPass',
                             num_nonfinite: int) -> Dict[str, torch.Tensor]:
        """The adversarial half of an iteration that has none to use.

        Every trainable parameter still gets a (zero) gradient from
        ``loss_adv``, so that DDP sees all of them used on every process and
        the optimizer updates the same parameters (weight decay, momentum)
        with or without DDP. Without DDP, after the clean backward
        (``clean.sole_process``), only the parameters that have no gradient
        yet are linked: adding zero to the others would cost a pass over
        every parameter and change nothing.
        """
        zero = clean.rec_clean.detach().new_zeros(())
        params = [p for p in self.parameters() if p.requires_grad]
        if clean.sole_process:
            params = [p for p in params if p.grad is None]
        loss_adv = sum((p.sum() * 0 for p in params), zero)
        if not loss_adv.requires_grad:      # nothing left to link
            loss_adv.requires_grad_()
        return dict(
            loss_adv=loss_adv,
            rec_clean=clean.rec_clean.detach(), rec_adv=zero,
            adv_dist_init=zero, adv_dist=zero, adv_linf=zero,
            adv_nonfinite=zero + num_nonfinite)

    def _adv_loss(self, mask: torch.Tensor, target_feat: torch.Tensor,
                  target: Any):
        """The attack's objective: per-sample loss of a candidate image."""
        distance = self.attack.distance
        if distance == 'rec':
            return lambda z: self.mim.reconstruction_loss(z, mask, target)[0]
        return lambda z: feature_distance(
            self.mim.encode(z, mask), target_feat, distance)

    def pixel_stats(self,
                    x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and std (0-255 units) that normalised ``x``."""
        return normalisation_stats(self.data_preprocessor, x)

    def _statistics(self, clean: 'CleanPass',
                    adv: 'AdversarialPass') -> Dict[str, torch.Tensor]:
        """Logged, not optimised (no key contains ``loss``)."""
        attack, x_sel = adv.attack, adv.inputs
        with torch.no_grad():
            if self.attack.distance == 'rec':
                dist = adv.rec_adv.detach()
            else:
                dist = feature_distance(adv.feat_adv, adv.target_feat,
                                        self.attack.distance).mean()
            _, std = self.pixel_stats(x_sel)
            linf = ((attack.x_adv - x_sel) * std.reshape(1, -1, 1, 1)).abs()
            return dict(
                rec_clean=clean.rec_clean.detach(),
                rec_adv=adv.rec_adv.detach(),
                adv_dist_init=(dist if attack.dist_init is None else
                               attack.dist_init),
                adv_dist=dist,
                adv_linf=linf.flatten(1).amax(1).mean(),
                adv_nonfinite=dist.new_tensor(float(attack.num_fallback)))

    # ------------------------------------------------------------------ #
    def visualize(self, inputs: torch.Tensor,
                  data_samples: List[DataSample]) -> Dict[str, torch.Tensor]:
        """Images of one AEMIM step, RGB in [0, 1], (B, 3, H, W).

        Its BatchNorms run in eval mode (each route's running statistics; no
        update, no synchronisation: rank 0 alone may call it).

        Returns:
            ``clean``, ``adversarial``, ``perturbation`` (amplified: 0.5 is
            no change, 0 and 1 are -eps and +eps) and ``reconstruction`` (the
            clean pass's prediction, visible patches from the input).
        """
        x = self.mim.model_input(inputs)
        mean, std = self.pixel_stats(x)
        target, mask = self.mim.prepare(
            inputs, data_samples, SampleRandomness(x.shape[0], x.device),
            update_state=False)
        with eval_norms(self.algorithm):
            with torch.no_grad(), adapter_route(self, 'clean'), \
                    record_drop_paths(self._drop_paths) as drop_paths:
                _, feat_clean, pred = self.mim.reconstruction_loss(
                    x, mask, target)
                recon = self.mim.reconstruct_image(pred, x, mask)
            with torch.enable_grad(), adapter_route(self, 'adv'), \
                    drop_paths.replay():
                x_adv = self.attack(
                    x, self._adv_loss(mask, feat_clean, target), mean,
                    std).x_adv

        def to_unit(img: torch.Tensor) -> torch.Tensor:
            return unit_pixels(img, mean, std).detach()

        scale = 2 * max(float(self.attack.eps), 1e-12)
        delta = (x_adv - x) * std.reshape(1, -1, 1, 1)
        return dict(
            clean=to_unit(x),
            adversarial=to_unit(x_adv),
            perturbation=(delta / scale + 0.5).clamp(0, 1).detach(),
            reconstruction=to_unit(recon))

    # ------------------------------------------------------------------ #
    def forward(self,
                inputs: Union[torch.Tensor, 'CleanPass'],
                data_samples: Optional[List[DataSample]] = None,
                mode: str = 'tensor'):
        """``mode='loss'`` runs AEMIM; ``'clean'`` / ``'adversarial'`` its
        two halves (for :func:`clean_first_train_step`, through DDP's
        forward: ``'clean'`` gives the :class:`CleanPass`, ``'adversarial'``
        takes it and gives the losses of line 13); other modes go to the
        algorithm."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'clean':
            return self.clean_step(inputs, data_samples)
        if mode == 'adversarial':
            return self.weighted_losses(inputs, self.adversarial_step(inputs))
        return self.algorithm(inputs, data_samples, mode=mode)

    def init_weights(self) -> None:
        """Initialise the algorithm; start the adversarial adapters as copies
        of the clean ones, unless a ``Pretrained`` ``init_cfg`` of the
        wrapper loaded them (a plain MAE checkpoint has none: the load hook
        then copies the clean ones).

        A ``Pretrained`` ``init_cfg`` of an ``MAEViT`` or
        ``MAEPretrainDecoder`` inside the algorithm is applied once more
        after their ``init_weights``, which re-initialises some of what it
        loaded (mmpretrain 1.2.0; see :data:`PRETRAINED_OVERWRITTEN_BY`).
        """
        self.check_adapters()
        super().init_weights()
        if not _pretrained_cfgs(self.init_cfg):
            reapply_overwritten_pretrained(self.algorithm)
            reset_adversarial_adapters(self)

    def check_adapters(self) -> None:
        """Raise if adversarial adapters the wrapper made are gone.

        Raises:
            RuntimeError: Naming the missing ``adv_`` entries, when something
                replaced adapted layers after the wrapper was built.
        """
        present = set(adversarial_state_dict_keys(self.algorithm.state_dict()))
        missing = [k for k in self._adversarial_keys if k not in present]
        if missing:
            raise RuntimeError(
                f'{len(missing)} adversarial adapter entries of '
                f'AdversarialMIMWrapper are gone (e.g. {missing[:3]}): a '
                'layer was replaced after the wrapper was built (such as '
                "mmengine's revert_sync_batchnorm on a model built under a "
                "process group, or the Runner's sync_bn conversion). Build the "
                'model in the process that trains it, and choose its norm '
                'layers in the algorithm config.')


@dataclass
class CleanPass:
    """What the adversarial step takes from the clean step.

    Attributes:
        inputs: The normalised batch (the view the model masks and the
            attack perturbs).
        mask: One mask per sample, for every pass.
        rng: The iteration's random draws.
        rec_clean: ``L_c``, with its graph.
        feat_clean: ``sg(E(x^m))``, the attack's target (detached).
        target: The reconstruction target of the clean batch (no gradient),
            for both passes.
        drop_paths: The clean pass's drop-path draws, replayed by the
            attack and the adversarial pass.
        sole_process: Set by :func:`clean_first_train_step` when ``L_c`` is
            already backpropagated and no DDP synchronises the next
            backward (see :meth:`AdversarialMIMWrapper._without_adversarial`).
    """
    inputs: torch.Tensor
    mask: torch.Tensor
    rng: SampleRandomness
    rec_clean: torch.Tensor
    feat_clean: torch.Tensor
    target: Any = None
    drop_paths: Optional[DropPathDraws] = None
    sole_process: bool = False

    def select(self, idx: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor,
                                                 Any, torch.Tensor]:
        """``x'``, its masks, the reconstruction target of the CLEAN ``x'``
        and ``sg(E(x'^m))``: the samples ``idx`` of the batch. The masks
        are data to the adversarial pass: a learned mask's gradient is the
        clean pass's alone (whose graph the clean-first step has freed)."""
        return (self.inputs[idx], self.mask[idx].detach(),
                select_samples(self.target, idx), self.feat_clean[idx])


@dataclass
class AdversarialPass:
    """What the adversarial step (lines 4-10 and 12) gives line 13.

    Attributes:
        index: Local indices of ``x'`` in the batch (line 4); empty when
            ``alpha * B`` rounds to 0 on this process (then nothing else is
            set).
        inputs: ``x'``, normalised.
        target_feat: ``sg(E(x'^m))``, the attack's target.
        attack: The attack's result (lines 5-10): ``x_a`` and its logged
            statistics.
        rec_adv: ``L_a`` (line 12), with its graph.
        feat_adv: ``E(x_a^m)`` of the adversarial pass.
    """
    index: torch.Tensor
    inputs: Optional[torch.Tensor] = None
    target_feat: Optional[torch.Tensor] = None
    attack: Optional[AttackResult] = None
    rec_adv: Optional[torch.Tensor] = None
    feat_adv: Optional[torch.Tensor] = None


def clean_first_train_step(model: nn.Module, module: AdversarialMIMWrapper,
                           data: dict, optim_wrapper: OptimWrapper
                           ) -> Dict[str, torch.Tensor]:
    """A training step whose clean and adversarial graphs never coexist.

    ``lambda * L_c`` is backpropagated right after the clean pass, then the
    adversarial half is built and backpropagated, and the optimizer steps
    once: the gradients are those of ``lambda * L_c + (1 - lambda) * L_a``,
    at the peak memory of one graph. Under DDP, the first backward runs
    without gradient synchronisation and the second synchronises the sum.
    The phases are named ranges in a torch profile
    (:mod:`aemim_mm.models.profiling`).

    Args:
        model: What the Runner trains: ``module`` or its DDP wrapper.
        module: The :class:`AdversarialMIMWrapper`.
        data: A batch from the dataloader.
        optim_wrapper: The optimizer wrapper (AMP and accumulation aware).

    Returns:
        The log variables, as mmengine's ``train_step`` gives them.

    Raises:
        TypeError: If ``optim_wrapper`` is not one this step can drive
            (:func:`~aemim_mm.models.optim_support.check_optim_wrapper`).
        RuntimeError: If processes could run different forwards through a
            SyncBatchNorm (:func:`~aemim_mm.models.sync_batch_norm.
            check_equal_adversarial_forwards`).
        Both are raised before the step computes anything.
    """
    check_optim_wrapper(optim_wrapper)
    check_equal_adversarial_forwards(module, module.sample_seed,
                                     module.adv_ratio)
    distributed = model is not module
    with optim_wrapper.optim_context(model):
        data = module.data_preprocessor(data, True)
    with (model.no_sync() if distributed else nullcontext()):
        with optim_wrapper.optim_context(model), record_function(
                CLEAN_FORWARD):
            clean = model(**data, mode='clean')
        loss_clean = module.weighted_losses(clean)['loss_clean']
        scaled = optim_wrapper.scale_loss(loss_clean)
        scaler = getattr(optim_wrapper, 'loss_scaler', None)    # AMP
        # not optim_wrapper.backward: that counts an accumulation step
        with record_function(CLEAN_BACKWARD):
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
    clean.rec_clean = clean.rec_clean.detach()       # its graph is freed
    clean.sole_process = not distributed
    with optim_wrapper.optim_context(model), record_function(ADVERSARIAL):
        losses = model(clean, mode='adversarial')   # loss_clean: detached
    loss_adv = losses['loss_adv']
    if distributed:     # DDP wants every parameter in the synced graph: add
        # the clean adapters', which only the clean graph used (an empty
        # adversarial subset already gives every parameter a zero term)
        loss_adv = loss_adv + sum(
            p.sum() * 0 for p in module.clean_adapter_parameters())
    with record_function(ADVERSARIAL_UPDATE):
        optim_wrapper.update_params(loss_adv)
    _, log_vars = module.parse_losses(losses)
    return log_vars


def _pretrained_cfgs(init_cfg) -> list:
    """The ``Pretrained`` entries of an ``init_cfg`` (dict, list or None)."""
    cfgs = init_cfg if isinstance(init_cfg, list) else [init_cfg]
    return [c for c in cfgs
            if isinstance(c, dict) and c.get('type') == 'Pretrained']


def reapply_overwritten_pretrained(module: nn.Module,
                                   name: str = 'algorithm') -> List[str]:
    """Apply again the ``Pretrained`` ``init_cfg`` of modules whose
    ``init_weights`` overwrote part of it (:data:`PRETRAINED_OVERWRITTEN_BY`).

    mmengine applies a module's ``Pretrained`` after initialising everything
    inside it; so below a module with its own ``Pretrained`` nothing was
    overwritten after loading, and the search stops there.

    Args:
        module: The initialised algorithm (or a part of it).
        name: ``module``'s name, for the log.

    Returns:
        The names of the modules loaded again.
    """
    cfgs = _pretrained_cfgs(getattr(module, 'init_cfg', None))
    if cfgs:
        if not isinstance(module, PRETRAINED_OVERWRITTEN_BY):
            return []
        initialize(module, cfgs)
        print_log(
            f'AdversarialMIMWrapper: applied the Pretrained init_cfg of '
            f'{name} ({type(module).__name__}) again: its init_weights '
            're-initialised part of what it loaded.', logger='current')
        return [name]
    return [loaded for child_name, child in module.named_children()
            for loaded in reapply_overwritten_pretrained(
                child, f'{name}.{child_name}')]


def check_ratio(name: str, value: float) -> None:
    """Raise unless ``value`` is a number in [0, 1]."""
    if not is_number(value) or not 0 <= value <= 1:
        raise ValueError(f'{name} must be a number in [0, 1], got {value!r}.')
