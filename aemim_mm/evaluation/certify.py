"""Certified robustness of a Gaussian-smoothed classifier: Cohen, Rosenfeld
and Kolter's CERTIFY (ICML 2019), as RUSH (Pang, Liu, Zhou, 2022) evaluates
a contrastively pre-trained encoder fine-tuned with Gaussian noise.

The smoothed classifier ``g(x) = argmax_c P(f(x + d) = c)``, ``d ~ N(0,
sigma^2 I)``, is certified at ``x`` by:

1. ``n0`` noisy copies select the class ``cA`` (most votes);
2. ``n`` more estimate ``pA``: its one-sided ``1 - alpha`` Clopper-Pearson
   lower bound ``pA_low`` (``scipy.stats.binomtest``'s exact interval at
   confidence ``1 - 2 alpha``);
3. ``pA_low < 1/2``: abstain; otherwise ``g`` predicts ``cA`` with the
   certified L2 radius ``sigma * Phi^-1(pA_low)``.

Images, ``sigma`` and radii are in [0, 1] pixel units, as the randomized-
smoothing literature gives them (sigma 0.25 is 63.75 in 0-255 units); the
noise is added to the pixels before the classifier's data preprocessor
(:class:`~.adversarial.PixelSpaceClassifier`).
"""
from dataclasses import dataclass
from typing import Callable, List, Sequence

import numpy as np
import torch
from scipy.stats import binomtest, norm

from ..utils.checks import is_int, is_number

#: The prediction of an abstention.
ABSTAIN = -1


@dataclass(frozen=True)
class Certificate:
    """CERTIFY's answer for one image.

    Attributes:
        prediction: ``cA``, or :data:`ABSTAIN`.
        radius: The certified L2 radius ([0, 1] units); 0 when abstaining.
        p_lower: ``pA_low``.
        count: Votes for ``cA`` among the ``n`` estimation samples.
    """
    prediction: int
    radius: float
    p_lower: float
    count: int


def check_certify_options(sigma: float, n0: int, n: int, alpha: float,
                          batch_size: int) -> None:
    """Refuse bad options before any work.

    Raises:
        ValueError: Naming the option and what is allowed.
    """
    if not is_number(sigma) or sigma <= 0:
        raise ValueError(f'sigma must be a number > 0 ([0, 1] pixel units: '
                         f'0.25, 0.5, 1.0 in the literature), got {sigma!r}.')
    for name, value in (('n0', n0), ('n', n), ('batch_size', batch_size)):
        if not is_int(value) or value < 1:
            raise ValueError(f'{name} must be an int >= 1, got {value!r}.')
    if not is_number(alpha) or not 0 < alpha < 0.5:
        raise ValueError(f'alpha must be in (0, 0.5), got {alpha!r}.')


def lower_confidence_bound(count: int, n: int, alpha: float) -> float:
    """One-sided ``1 - alpha`` Clopper-Pearson lower bound of a binomial
    proportion from ``count`` successes in ``n`` trials."""
    return float(binomtest(count, n).proportion_ci(
        confidence_level=1 - 2 * alpha, method='exact').low)


def certified_radius(p_lower: float, sigma: float) -> float:
    """``sigma * Phi^-1(p_lower)`` (0 for ``p_lower <= 1/2``)."""
    return sigma * float(norm.ppf(p_lower)) if p_lower > 0.5 else 0.0


@torch.no_grad()
def noise_votes(model: Callable[[torch.Tensor], torch.Tensor],
                image: torch.Tensor, sigma: float, num: int,
                batch_size: int, generator: torch.Generator) -> np.ndarray:
    """Votes of ``model`` over ``num`` copies of ``image`` (C, H, W in
    [0, 1]) with Gaussian noise of std ``sigma``: (classes,) counts."""
    counts = None
    remaining = num
    while remaining:
        size = min(batch_size, remaining)
        noise = torch.randn((size, ) + tuple(image.shape),
                            generator=generator).to(image.device)
        logits = model(image.unsqueeze(0) + sigma * noise)
        if counts is None:
            counts = np.zeros(logits.shape[1], dtype=np.int64)
        counts += np.bincount(logits.argmax(1).cpu().numpy(),
                              minlength=logits.shape[1])
        remaining -= size
    return counts


def certify(model: Callable[[torch.Tensor], torch.Tensor],
            image: torch.Tensor, sigma: float, n0: int = 100,
            n: int = 100000, alpha: float = 0.001, batch_size: int = 1000,
            seed: int = 0) -> Certificate:
    """Cohen et al.'s CERTIFY for one image (see the module).

    Args:
        model: Pixels in [0, 1] (N, C, H, W) -> logits (the base
            classifier ``f``).
        image: (C, H, W) in [0, 1].
        sigma: Noise std ([0, 1] units).
        n0: Selection samples.
        n: Estimation samples.
        alpha: Failure probability of the certificate.
        batch_size: Noisy copies per forward.
        seed: Seed of the noise (the selection and estimation draws are
            independent: one generator, drawn in turn).

    Returns:
        The :class:`Certificate`.
    """
    check_certify_options(sigma, n0, n, alpha, batch_size)
    gen = torch.Generator().manual_seed(seed)
    selected = int(noise_votes(model, image, sigma, n0, batch_size,
                               gen).argmax())
    count = int(noise_votes(model, image, sigma, n, batch_size, gen)[
        selected])
    p_lower = lower_confidence_bound(count, n, alpha)
    if p_lower < 0.5:
        return Certificate(ABSTAIN, 0.0, p_lower, count)
    return Certificate(selected, certified_radius(p_lower, sigma), p_lower,
                       count)


def certified_accuracy(radii: Sequence[float], correct: Sequence[bool],
                       at: Sequence[float]) -> List[float]:
    """Certified accuracy (%) at each radius of ``at``: the share of images
    whose certificate is correct with a radius at least that large
    (abstentions and wrong predictions count as failures)."""
    radii = np.asarray(radii, dtype=float)
    correct = np.asarray(correct, dtype=bool)
    total = max(len(radii), 1)
    return [100.0 * float(np.sum(correct & (radii >= r))) / total
            for r in at]
