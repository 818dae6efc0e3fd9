"""White-box FGSM / PGD robustness of a classifier, with the ART library.

The attacks come from the Adversarial Robustness Toolbox (ART,
``adversarial-robustness-toolbox``): ``FastGradientMethod`` and
``ProjectedGradientDescentPyTorch`` on a ``PyTorchClassifier``. They attack
pixels in ``[0, pixel_range]``; the model's own data preprocessor
(normalisation, channel order) runs inside the attacked function
(:class:`PixelSpaceClassifier`), so eps is a budget on real pixels. Why
ART and not another attack library: docs/downstream.md, "Attack library".
"""
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch
from torch import nn

from .inference import make_loader
from .progress import Progress


class PixelSpaceClassifier(nn.Module):
    """pixels in ``[0, pixel_range]`` -> data preprocessor -> logits.

    Args:
        classifier: An mmpretrain classifier (``ImageClassifier``) whose
            ``data_preprocessor`` expects 0-255 pixels.
        pixel_range: 1.0 (pixels in [0, 1]) or 255.0.
    """

    def __init__(self, classifier: nn.Module, pixel_range: float = 1.0):
        super().__init__()
        if pixel_range not in (1.0, 255.0):
            raise ValueError(f'pixel_range must be 1 or 255, got '
                             f'{pixel_range!r}')
        self.classifier = classifier
        self.pixel_range = float(pixel_range)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Logits of a (N, C, H, W) float pixel batch."""
        scaled = pixels * (255.0 / self.pixel_range)
        inputs = self.classifier.data_preprocessor(
            dict(inputs=scaled, data_samples=None), training=False)['inputs']
        return self.classifier(inputs, mode='tensor')


@contextmanager
def frozen_parameters(model: nn.Module) -> Iterator[None]:
    """No gradient flows to the parameters inside the block (restored after)."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _predict(model: nn.Module, x: np.ndarray, device) -> np.ndarray:
    with torch.no_grad():
        logits = model(torch.from_numpy(x).to(device))
    return logits.argmax(1).cpu().numpy()


def evaluate_attacks(classifier: nn.Module, dataset,
                     fgsm_eps: Sequence[float] = (0, 1, 2, 4, 8),
                     pgd_eps: Sequence[float] = (0, 1, 2, 4, 8),
                     pgd_steps: int = 20,
                     pgd_step_size: Optional[float] = None,
                     pgd_random_start: bool = True, pixel_range: float = 1.0,
                     batch_size: int = 32, num_workers: int = 2,
                     device: Optional[str] = None, seed: int = 0,
                     log_interval_s: float = 10.0) -> dict:
    """Clean, FGSM and PGD top-1 accuracy (%) of a classifier.

    Args:
        classifier: An mmpretrain classifier (eval mode is enforced).
        dataset: A built data set with the test pipeline (uint8 images).
        fgsm_eps: FGSM budgets in 0-255 pixel units (2 = 2/255).
        pgd_eps: PGD budgets in 0-255 pixel units.
        pgd_steps: PGD iterations.
        pgd_step_size: PGD step in 0-255 units; ``None``: ``2.5 * eps /
            steps`` (Madry et al.).
        pgd_random_start: Start PGD from a uniform random point in the ball.
        pixel_range: Attack space ``[0, 1]`` (1.0) or ``[0, 255]`` (255.0).
        batch_size: Images per attack batch.
        num_workers: Data loading processes.
        device: ``'cpu'``/``'cuda'``; default: where the model is.
        seed: Seed of the PGD random start.
        log_interval_s: Least seconds between two progress lines.

    Returns:
        ``{'clean': acc, 'fgsm': {eps: acc}, 'pgd': {eps: acc},
        'num_samples': N}``. Budget 0 gives the clean accuracy (FGSM runs at
        eps 0; PGD, whose step must be positive, is not run).

    Raises:
        ValueError: On negative eps, steps < 1 or a non-positive step size.
    """
    from art.attacks.evasion import (FastGradientMethod,
                                     ProjectedGradientDescentPyTorch)
    from art.estimators.classification import PyTorchClassifier

    if any(e < 0 for e in list(fgsm_eps) + list(pgd_eps)):
        raise ValueError('eps values must be >= 0 (0-255 pixel units)')
    if pgd_steps < 1:
        raise ValueError(f'pgd_steps must be >= 1, got {pgd_steps}')
    if pgd_step_size is not None and pgd_step_size <= 0:
        raise ValueError(f'pgd_step_size must be > 0, got {pgd_step_size}')
    device = device or next(classifier.parameters()).device.type
    classifier.eval()
    model = PixelSpaceClassifier(classifier, pixel_range).to(device).eval()
    unit = pixel_range / 255.0
    correct: Dict[str, Dict[float, int]] = {'fgsm': {}, 'pgd': {}}
    clean_correct, total = 0, 0
    progress = Progress(len(dataset), 'adversarial evaluation (images)',
                        log_interval_s)
    torch.manual_seed(seed)
    np.random.seed(seed)
    with frozen_parameters(model):
        art_model = None
        for batch in make_loader(dataset, batch_size, num_workers):
            x = torch.stack([img.float() for img in batch['inputs']]) * unit
            x = x.numpy().astype(np.float32)
            y = np.array([int(s.gt_label[0]) for s in batch['data_samples']])
            if art_model is None:
                art_model = PyTorchClassifier(
                    model=model, loss=nn.CrossEntropyLoss(),
                    input_shape=tuple(x.shape[1:]),
                    nb_classes=int(model(torch.from_numpy(x[:1]).to(
                        device)).shape[1]),
                    clip_values=(0.0, float(pixel_range)),
                    device_type='gpu' if device.startswith('cuda') else 'cpu')
            clean_pred = _predict(model, x, device)
            clean_correct += int((clean_pred == y).sum())
            for eps in fgsm_eps:
                attack = FastGradientMethod(art_model, eps=eps * unit,
                                            batch_size=len(x))
                pred = _predict(model, attack.generate(x, y=y), device)
                correct['fgsm'][eps] = correct['fgsm'].get(eps, 0) + int(
                    (pred == y).sum())
            for eps in pgd_eps:
                if eps == 0:
                    pred = clean_pred
                else:
                    step = (pgd_step_size if pgd_step_size is not None else
                            2.5 * eps / pgd_steps)
                    attack = ProjectedGradientDescentPyTorch(
                        art_model, eps=eps * unit, eps_step=step * unit,
                        max_iter=pgd_steps,
                        num_random_init=1 if pgd_random_start else 0,
                        batch_size=len(x), verbose=False)
                    pred = _predict(model, attack.generate(x, y=y), device)
                correct['pgd'][eps] = correct['pgd'].get(eps, 0) + int(
                    (pred == y).sum())
            total += len(y)
            progress.step(len(y))
    to_pct = lambda n: 100.0 * n / max(total, 1)  # noqa: E731
    return dict(clean=to_pct(clean_correct),
                fgsm={e: to_pct(n) for e, n in correct['fgsm'].items()},
                pgd={e: to_pct(n) for e, n in correct['pgd'].items()},
                num_samples=total)


def subset_indices(n: int, num_samples: Optional[int],
                   seed: int = 0) -> List[int]:
    """A seeded random subset of ``range(n)`` (sorted); all if ``None``."""
    if num_samples is None or num_samples >= n:
        return list(range(n))
    if num_samples < 1:
        raise ValueError(f'num_samples must be >= 1, got {num_samples}')
    rng = np.random.default_rng(seed)
    return sorted(rng.permutation(n)[:num_samples].tolist())
