"""PixelPGD, the L-inf attack on normalised images, and FeatureDistancePGD,
the label-free attack of AEMIM built on it.

Maximises the distance between the encoder's features of the masked
adversarial image and (stop-gradient) those of the masked clean image::

    L_adv(x, x_a) = d(E(x_a^m; psi_e, phi_a_e), sg(E(x^m; psi_e, phi_c_e)))
    x_a^0     = x + U(-eps, eps)                                  # random start
    x_a^{t+1} = Proj_{|x_a - x|_inf <= eps, valid pixels}(x_a^t + mu * sign(grad L_adv))

Budgets are in 0-255 pixel units (``eps=2`` is 2/255 of the range). Inputs
arrive normalised by the data preprocessor (``(pixel - mean) / std``), so the
budget, the step size and the valid-pixel box are converted per channel.

Only the perturbation gets a gradient (``torch.autograd.grad`` with respect
to it): parameter ``.grad`` and DDP's state are never touched.

``amp_dtype`` runs the attack's forward passes under ``torch.autocast``
(mixed precision in the attack only, whatever the training precision): PGD
uses only the sign of the input gradient, and on hardware with fast bf16 /
fp16 matrix products the attack then costs a fraction of its fp32 time.
"""
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F

from mmpretrain.registry import MODELS
from ..utils.checks import is_int, is_number

#: Distances of the adversarial loss. ``rec`` is the paper's ablation that
#: attacks the MIM reconstruction loss itself.
DISTANCES = ('l2', 'kl', 'cos', 'rec')
#: Values of ``amp_dtype``: autocast dtypes of the attack's forward passes.
AMP_DTYPES = ('bfloat16', 'float16')


@dataclass
class AttackResult:
    """What the attack returns.

    Attributes:
        x_adv: The adversarial images, normalised like the input.
        dist_init: The adversarial loss at the random start (a scalar, the
            mean over samples), or ``None`` when ``steps == 0`` (no forward
            was run; the caller measures it on its own adversarial pass).
        num_fallback: Samples whose adversarial loss or gradient was not
            finite (fp16 overflow, say); they were put back to their random
            start and not attacked further.
    """
    x_adv: torch.Tensor
    dist_init: Optional[torch.Tensor]
    num_fallback: int = 0


def feature_distance(feat_adv: torch.Tensor, feat_clean: torch.Tensor,
                     distance: str) -> torch.Tensor:
    """Per-sample distance between token features of shape (B, N, C).

    Args:
        feat_adv: Features of the adversarial input.
        feat_clean: Features of the clean input (treated as the target).
        distance: ``'l2'`` squared L2 distance between token features
            (sum over channels, mean over tokens; squaring keeps the gradient
            finite at zero distance and leaves its sign, all PGD uses, as
            for the L2 norm), ``'kl'`` KL(softmax(clean) || softmax(adv))
            over channels, mean over tokens, ``'cos'`` one minus the cosine
            similarity, mean over tokens.

    Returns:
        A tensor of shape (B,).
    """
    feat_adv = feat_adv.float()
    feat_clean = feat_clean.float()
    if distance == 'l2':
        return (feat_adv - feat_clean).pow(2).sum(-1).flatten(1).mean(1)
    if distance == 'kl':
        kl = F.kl_div(
            F.log_softmax(feat_adv, dim=-1),
            F.log_softmax(feat_clean, dim=-1),
            reduction='none',
            log_target=True).sum(-1)
        return kl.flatten(1).mean(1)
    if distance == 'cos':
        cos = F.cosine_similarity(feat_adv, feat_clean, dim=-1)
        return (1 - cos).flatten(1).mean(1)
    raise ValueError(f'distance must be one of {DISTANCES[:3]} for feature '
                     f'distances, got {distance!r}.')


@MODELS.register_module()
class PixelPGD:
    """L-inf PGD on normalised images, against any objective.

    Maximises ``objective(x_a)`` over ``|x_a - x|_inf <= eps`` and the valid
    pixel box, by ``steps`` signed-gradient steps from ``x + U(-eps, eps)``
    (or from ``x``); ``steps=1`` with ``step_size=eps`` and no random start
    is FGSM. Budgets are in 0-255 pixel units and converted per channel.

    Args:
        eps: L-inf budget in 0-255 pixel units. ``>= 0``.
        steps: Attack steps. ``>= 0``; 0 keeps the random start.
        step_size: Step size in 0-255 pixel units. ``None`` (default) means
            ``eps / steps``.
        random_start: Start from ``x + U(-eps, eps)`` (default) or ``x``.
        amp_dtype: ``None`` (default): the attack runs in the precision of
            the surrounding step. ``'bfloat16'`` or ``'float16'``: its
            forward passes run under ``torch.autocast`` with that dtype.

    The values are plain attributes (a hook may change ``eps``, ``steps``
    and ``step_size`` during training).
    """

    def __init__(self,
                 eps: float = 2.0,
                 steps: int = 2,
                 step_size: Optional[float] = None,
                 random_start: bool = True,
                 amp_dtype: Optional[str] = None) -> None:
        self.eps = eps
        self.steps = steps
        self.step_size = step_size
        self.random_start = random_start
        self.amp_dtype = amp_dtype
        self.validate()

    def validate(self) -> None:
        """Check every option; raise naming the option and what is allowed."""
        check_budget('eps', self.eps)
        if not is_int(self.steps) or self.steps < 0:
            raise ValueError(
                f'steps must be an int >= 0, got {self.steps!r}.')
        if self.step_size is not None:
            check_budget('step_size', self.step_size)
        if not isinstance(self.random_start, bool):
            raise ValueError(
                f'random_start must be a bool, got {self.random_start!r}.')
        if self.amp_dtype is not None and self.amp_dtype not in AMP_DTYPES:
            raise ValueError(f'amp_dtype must be None or one of {AMP_DTYPES},'
                             f' got {self.amp_dtype!r}.')

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(eps={self.eps}, steps={self.steps}, '
                f'step_size={self.step_size}, '
                f'random_start={self.random_start}, '
                f'amp_dtype={self.amp_dtype!r})')

    def autocast(self, device: torch.device):
        """The context of the attack's forward passes on ``device``."""
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device.type, dtype=getattr(torch,
                                                         self.amp_dtype))

    def __call__(self,
                 x: torch.Tensor,
                 adv_loss: Callable[[torch.Tensor], torch.Tensor],
                 mean: torch.Tensor,
                 std: torch.Tensor,
                 noise: Optional[torch.Tensor] = None) -> AttackResult:
        """Craft adversarial examples for ``x``.

        Args:
            x: Normalised clean images (B, C, H, W).
            adv_loss: Maps normalised images to the loss to maximise: per
                sample (B,) or a scalar (a batch objective such as a
                contrastive loss); the caller runs it with the route and
                masks it needs.
            mean: Per-channel mean of the normalisation, 0-255 units, (C,).
            std: Per-channel std of the normalisation, 0-255 units, (C,).
            noise: Uniform [0, 1) draws shaped like ``x`` for the random
                start; ``None`` draws them from torch's global generator.

        Returns:
            The adversarial images, the loss at the random start and how
            many samples fell back to their random start.

        A sample whose loss or input gradient is not finite (fp16 overflow)
        falls back to its random start and is not attacked further, so no
        non-finite value reaches the adversarial example.
        """
        self.validate()
        x = x.detach()
        shape = (1, -1) + (1, ) * (x.dim() - 2)
        mean = mean.to(x).reshape(shape)
        std = std.to(x).reshape(shape)
        eps = self.eps / std                        # budget, normalised units
        step = (self.eps / max(self.steps, 1)
                if self.step_size is None else self.step_size) / std
        low, high = (0 - mean) / std, (255 - mean) / std   # valid pixels

        delta = torch.zeros_like(x)
        if self.random_start and self.eps > 0:
            if noise is None:
                noise = torch.rand_like(x)
            delta = (noise.to(x) * 2 - 1) * eps
        start = delta = project(x, delta, eps, low, high)

        dist_init = None
        failed = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        for t in range(self.steps):
            delta.requires_grad_(True)
            with self.autocast(x.device):
                loss = adv_loss(x + delta)
            grad, = torch.autograd.grad(loss.sum(), delta)
            finite = torch.isfinite(grad).flatten(1).all(1)
            if loss.dim() == 1:
                finite &= torch.isfinite(loss.detach())
            if t == 0:
                dist_init = _finite_mean(loss.detach(), finite)
            failed |= ~finite
            delta = project(x, delta.detach() + step * grad.sign(), eps, low,
                            high)
            delta = torch.where(_per_sample(failed, x), start, delta)
        return AttackResult(
            x_adv=(x + delta).detach(),
            dist_init=dist_init,
            num_fallback=int(failed.sum()))


@MODELS.register_module()
class FeatureDistancePGD(PixelPGD):
    """Label-free PGD on the encoder's feature distance (AEMIM's attack).

    Args:
        eps: L-inf budget in 0-255 pixel units (paper: 2). ``>= 0``.
        steps: Attack steps T (AEMIM: 2; Fast AEMIM: 1, i.e. FGSM with a
            random start). ``>= 0``; 0 keeps the random start.
        step_size: Step size mu in 0-255 pixel units. ``None`` (default)
            means ``eps / steps`` (not in the paper).
        distance: One of ``'l2'`` (default, best in the paper's ablation),
            ``'kl'``, ``'cos'``, ``'rec'`` (the MIM reconstruction loss as
            adversarial loss, the paper's ablation).
        random_start: Start from ``x + U(-eps, eps)`` (paper: yes).
        amp_dtype: ``None`` (default): the attack runs in the precision of
            the surrounding training step (fp32, or the autocast of
            ``AmpOptimWrapper``). ``'bfloat16'`` or ``'float16'``: its
            forward passes run under ``torch.autocast`` with that dtype on
            the input's device, also in fp32 training (not in the paper;
            what it saves on a CPU with native bf16: the README's
            Performance section). The adversarial example and the model's
            training passes keep their own precision.

    The values are plain attributes: :class:`FeatureDistancePGDHook` changes
    ``eps``, ``steps`` and ``step_size`` during training.
    """

    def __init__(self,
                 eps: float = 2.0,
                 steps: int = 2,
                 step_size: Optional[float] = None,
                 distance: str = 'l2',
                 random_start: bool = True,
                 amp_dtype: Optional[str] = None) -> None:
        self.distance = distance
        super().__init__(eps, steps, step_size, random_start, amp_dtype)

    def validate(self) -> None:
        """Check every option; raise naming the option and what is allowed."""
        super().validate()
        if self.distance not in DISTANCES:
            raise ValueError(f'distance must be one of {DISTANCES}, '
                             f'got {self.distance!r}.')

    @property
    def needs_decoder(self) -> bool:
        """Whether the adversarial loss runs the decoder (``'rec'`` only)."""
        return self.distance == 'rec'

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(eps={self.eps}, steps={self.steps}, '
                f'step_size={self.step_size}, distance={self.distance!r}, '
                f'random_start={self.random_start}, '
                f'amp_dtype={self.amp_dtype!r})')


def _finite_mean(loss: torch.Tensor, finite: torch.Tensor) -> torch.Tensor:
    """Mean of the finite per-sample losses (0 if none; a scalar as is)."""
    if loss.dim() == 0:
        return loss.float()
    return loss[finite].float().mean() if finite.any() else loss.new_zeros(
        (), dtype=torch.float)


def _per_sample(flags: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Broadcast per-sample flags (B,) to the shape of ``x``."""
    return flags.reshape((-1, ) + (1, ) * (x.dim() - 1))


def project(x: torch.Tensor, delta: torch.Tensor, eps: torch.Tensor,
            low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Project ``delta`` onto the eps-ball and ``x + delta`` onto valid pixels."""
    delta = torch.maximum(torch.minimum(delta, eps), -eps)
    return torch.maximum(torch.minimum(x + delta, high), low) - x


def normalisation_stats(data_preprocessor, x: torch.Tensor
                        ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std (0-255 units) with which
    ``data_preprocessor`` normalised ``x`` (0 and 1 if it does not
    normalise), on ``x``'s device and dtype."""
    if getattr(data_preprocessor, '_enable_normalize', False):
        return (data_preprocessor.mean.flatten().to(x),
                data_preprocessor.std.flatten().to(x))
    return x.new_zeros(x.shape[1]), x.new_ones(x.shape[1])


def unit_pixels(x: torch.Tensor, mean: torch.Tensor,
                std: torch.Tensor) -> torch.Tensor:
    """Normalised images (B, C, H, W) back to pixels in [0, 1], with the
    per-channel ``mean`` and ``std`` (0-255 units) of
    :func:`normalisation_stats`."""
    pixels = x * std.reshape(1, -1, 1, 1) + mean.reshape(1, -1, 1, 1)
    return (pixels / 255).clamp(0, 1)


def check_budget(name: str, value: float) -> None:
    """Raise unless ``value`` is a number in [0, 255] (0-255 pixel units)."""
    if not is_number(value) or not 0 <= value <= 255:
        raise ValueError(f'{name} must be a number in [0, 255] (0-255 pixel '
                         f'units, e.g. 2 for 2/255), got {value!r}.')
