"""AdversarialMIMWrapper: AEMIM around an unchanged MAE or SimMIM model.

Config::

    model = dict(
        type='AdversarialMIMWrapper',
        algorithm=dict(type='MAE', ...),      # the unchanged model dict
        attack=dict(type='FeatureDistancePGD', eps=2, steps=2),
        adapter='ln', loss_ratio=0.5, adv_ratio=1.0)

:meth:`AdversarialMIMWrapper.loss` is Algorithm 1 of the paper, line by line.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModel
from torch import nn

from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from .adapters import (ADAPTERS, ADV_PREFIX, adapter_route, convert_adapters,
                       is_adversarial_key, reset_adversarial_adapters)
from .algorithms import build_mim_interface
from .attack import feature_distance
from .randomness import START, SampleRandomness

_ALGO = 'algorithm.'


@MODELS.register_module()
class AdversarialMIMWrapper(BaseModel):
    """Masked image modeling with adversarial examples (AEMIM).

    Args:
        algorithm: The MIM model (config dict or module): mmpretrain ``MAE``
            (with ``MAEViT`` or :class:`~aemim_mm.models.TimmMAEViT`) or
            ``SimMIM``. Its data preprocessor becomes the wrapper's.
        attack: The attack (config dict or object), by default
            :class:`~aemim_mm.models.FeatureDistancePGD` with the paper's
            settings.
        adapter: ``'ln'`` (default), ``'cls_token'`` or ``'none'``.
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
        convert_adapters(algorithm, adapter, tuple(adapter_scope))
        # Keys as in the plain algorithm: `backbone.…`, not `algorithm.backbone.…`.
        self.register_state_dict_post_hook(_strip_algorithm_prefix)
        self.register_load_state_dict_pre_hook(_add_algorithm_prefix)

    # ------------------------------------------------------------------ #
    def loss(self, inputs: torch.Tensor,
             data_samples: List[DataSample]) -> Dict[str, torch.Tensor]:
        """One iteration of Algorithm 1 (AEMIM in pre-training).

        Args:
            inputs: Normalised images (B, C, H, W) from the data preprocessor.
            data_samples: The batch's data samples (SimMIM reads its mask).

        Returns:
            ``loss_clean`` and ``loss_adv`` (their sum is optimised) and the
            logged statistics of :meth:`_statistics`.
        """
        x = inputs
        rng = SampleRandomness(x.shape[0], x.device, self.sample_seed)
        mask = self.mim.sample_mask(x, data_samples, rng)  # one per sample
        # 11: L_c = L_mim(F(x^m; psi + phi_c), x)
        with adapter_route(self, 'clean'):
            rec_clean, feat_clean, _ = self.mim.reconstruction_loss(
                x, mask, target=x)
        # 4: randomly select alpha % of the data: x'
        idx = rng.select(self.adv_ratio)
        if idx.numel() == 0:    # alpha * B rounds to 0: clean loss only
            return self._clean_only(rec_clean, num_nonfinite=0)
        x_sel, mask_sel = x[idx], mask[idx]
        target_feat = feat_clean[idx].detach()              # sg(E(x^m))
        with adapter_route(self, 'adv'):
            # 5-10: x_a = PGD-T on L_adv, random start, parameters fixed
            attack = self.attack(
                x_sel, self._adv_loss(mask_sel, target_feat, x_sel),
                *self.pixel_stats(x), noise=rng.rand(x.shape[1:], START, idx))
            # 12: L_a = L_mim(F(x_a^m; psi + phi_a), x)   (target: CLEAN x)
            rec_adv, feat_adv, _ = self.mim.reconstruction_loss(
                attack.x_adv, mask_sel, target=x_sel)
        if not torch.isfinite(rec_adv):     # fp16 overflow: keep it away
            return self._clean_only(rec_clean, num_nonfinite=idx.numel())
        # 13: minimise lambda * L_c + (1 - lambda) * L_a
        return dict(
            loss_clean=self.loss_ratio * rec_clean,
            loss_adv=(1 - self.loss_ratio) * rec_adv,
            **self._statistics(rec_clean, rec_adv, feat_adv, target_feat,
                               attack, x_sel, x))

    # ------------------------------------------------------------------ #
    def select_adversarial(self, batch_size: int,
                           device: torch.device) -> torch.Tensor:
        """Indices of ``round(adv_ratio * batch_size)`` random samples."""
        return SampleRandomness(batch_size, device,
                                self.sample_seed).select(self.adv_ratio)

    def _clean_only(self, rec_clean: torch.Tensor,
                    num_nonfinite: int) -> Dict[str, torch.Tensor]:
        """Losses of an iteration without a usable adversarial term.

        The adversarial adapters still get a (zero) gradient, so that DDP
        sees every parameter used on every process.
        """
        zero = rec_clean.detach().new_zeros(())
        adv_params = [
            p for n, p in self.named_parameters()
            if is_adversarial_key(n) and p.requires_grad
        ]
        loss_adv = sum((p.sum() * 0 for p in adv_params), zero)
        return dict(
            loss_clean=self.loss_ratio * rec_clean, loss_adv=loss_adv,
            rec_clean=rec_clean.detach(), rec_adv=zero, adv_dist_init=zero,
            adv_dist=zero, adv_linf=zero,
            adv_nonfinite=zero + num_nonfinite)

    def _adv_loss(self, mask: torch.Tensor, target_feat: torch.Tensor,
                  target: torch.Tensor):
        """The attack's objective: per-sample loss of a candidate image."""
        distance = self.attack.distance
        if distance == 'rec':
            return lambda z: self.mim.reconstruction_loss(z, mask, target)[0]
        return lambda z: feature_distance(
            self.mim.encode(z, mask), target_feat, distance)

    def pixel_stats(self,
                    x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and std (0-255 units) that normalised ``x``."""
        prep = self.data_preprocessor
        if getattr(prep, '_enable_normalize', False):
            return prep.mean.flatten().to(x), prep.std.flatten().to(x)
        channels = x.shape[1]
        return x.new_zeros(channels), x.new_ones(channels)

    def _statistics(self, rec_clean, rec_adv, feat_adv, target_feat, attack,
                    x_sel, x) -> Dict[str, torch.Tensor]:
        """Logged, not optimised (no key contains ``loss``)."""
        with torch.no_grad():
            if self.attack.distance == 'rec':
                dist = rec_adv.detach()
            else:
                dist = feature_distance(feat_adv, target_feat,
                                        self.attack.distance).mean()
            _, std = self.pixel_stats(x)
            linf = ((attack.x_adv - x_sel) * std.reshape(1, -1, 1, 1)).abs()
            return dict(
                rec_clean=rec_clean.detach(),
                rec_adv=rec_adv.detach(),
                adv_dist_init=(dist if attack.dist_init is None else
                               attack.dist_init),
                adv_dist=dist,
                adv_linf=linf.flatten(1).amax(1).mean(),
                adv_nonfinite=dist.new_tensor(float(attack.num_fallback)))

    # ------------------------------------------------------------------ #
    def visualize(self, inputs: torch.Tensor,
                  data_samples: List[DataSample]) -> Dict[str, torch.Tensor]:
        """Images of one AEMIM step, RGB in [0, 1], (B, 3, H, W).

        Returns:
            ``clean``, ``adversarial``, ``perturbation`` (amplified: 0.5 is
            no change, 0 and 1 are -eps and +eps) and ``reconstruction`` (the
            clean pass's prediction, visible patches from the input).
        """
        x = inputs
        mean, std = self.pixel_stats(x)
        mask = self.mim.sample_mask(
            x, data_samples, SampleRandomness(x.shape[0], x.device))
        with torch.no_grad(), adapter_route(self, 'clean'):
            _, feat_clean, pred = self.mim.reconstruction_loss(x, mask, x)
            recon = self.mim.reconstruct_image(pred, x, mask)
        with torch.enable_grad(), adapter_route(self, 'adv'):
            x_adv = self.attack(x, self._adv_loss(mask, feat_clean, x), mean,
                                std).x_adv

        def to_unit(img: torch.Tensor) -> torch.Tensor:
            pixels = img * std.reshape(1, -1, 1, 1) + mean.reshape(1, -1, 1, 1)
            return (pixels / 255).clamp(0, 1).detach()

        scale = 2 * max(float(self.attack.eps), 1e-12)
        delta = (x_adv - x) * std.reshape(1, -1, 1, 1)
        return dict(
            clean=to_unit(x),
            adversarial=to_unit(x_adv),
            perturbation=(delta / scale + 0.5).clamp(0, 1).detach(),
            reconstruction=to_unit(recon))

    # ------------------------------------------------------------------ #
    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None,
                mode: str = 'tensor'):
        """``mode='loss'`` runs AEMIM; other modes go to the algorithm."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        return self.algorithm(inputs, data_samples, mode=mode)

    def init_weights(self) -> None:
        """Initialise the algorithm; start the adversarial adapters as copies
        of the clean ones, unless a ``Pretrained`` ``init_cfg`` of the
        wrapper loaded them (a plain MAE checkpoint has none: the load hook
        then copies the clean ones)."""
        super().init_weights()
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) else [
            self.init_cfg]
        if not any(
                isinstance(c, dict) and c.get('type') == 'Pretrained'
                for c in cfgs):
            reset_adversarial_adapters(self)


def check_ratio(name: str, value: float) -> None:
    """Raise unless ``value`` is a number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not 0 <= value <= 1:
        raise ValueError(f'{name} must be a number in [0, 1], got {value!r}.')


def _strip_algorithm_prefix(module, state_dict, prefix, local_metadata):
    """State-dict hook: ``algorithm.backbone.x`` -> ``backbone.x``."""
    old = prefix + _ALGO
    for key in [k for k in state_dict if k.startswith(old)]:
        state_dict[prefix + key[len(old):]] = state_dict.pop(key)


def _add_algorithm_prefix(module, state_dict, prefix, *args):
    """Load pre-hook: accept plain keys (``backbone.x``) and prefixed ones.

    A plain MAE / SimMIM checkpoint has no adversarial adapters: each missing
    ``adv_*`` entry is then filled with its clean twin, the same start that
    :func:`~aemim_mm.models.adapters.reset_adversarial_adapters` gives.
    """
    for key in list(state_dict):
        rest = key[len(prefix):]
        if key.startswith(prefix) and not rest.startswith(
                (_ALGO, 'data_preprocessor.')):
            state_dict[prefix + _ALGO + rest] = state_dict.pop(key)
    for name, _ in module.named_parameters():
        head, _, leaf = name.rpartition('.')
        if leaf.startswith(ADV_PREFIX) and prefix + name not in state_dict:
            clean = f'{prefix}{head}.{leaf[len(ADV_PREFIX):]}'
            if clean in state_dict:
                state_dict[prefix + name] = state_dict[clean]
