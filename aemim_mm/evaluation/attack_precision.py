"""How close a mixed-precision attack stays to the fp32 attack.

``FeatureDistancePGD(amp_dtype=...)`` runs the attack's forward passes under
``torch.autocast``. PGD uses only the sign of the input gradient, so the
question is whether the signs, and the feature distance the attack reaches,
stay those of the fp32 attack. :func:`compare_attack_precision` answers it
for one model and one batch: both attacks start from the same random point
with the same masks, and everything is measured in fp32.
"""
import time
from contextlib import contextmanager
from typing import Dict, Iterator, List, Sequence

import torch

from ..models.adapters import adapter_route
from ..models.attack import AMP_DTYPES
from ..models.randomness import START, SampleRandomness
from ..models.split_norm import frozen_running_stats
from ..utils.checks import is_int


@contextmanager
def _attack_settings(attack, **values) -> Iterator[None]:
    """Set attributes of the attack for a block, then restore them."""
    old = {k: getattr(attack, k) for k in values}
    for k, v in values.items():
        setattr(attack, k, v)
    try:
        yield
    finally:
        for k, v in old.items():
            setattr(attack, k, v)


def compare_attack_precision(wrapper, inputs: torch.Tensor, data_samples,
                             amp_dtype: str, steps: Sequence[int] = (1, 2),
                             seed: int = 0) -> List[Dict[str, float]]:
    """Run the wrapper's attack in fp32 and in ``amp_dtype``; compare them.

    BatchNorms normalise as in the wrapper's mode and update no running
    statistics.

    Args:
        wrapper: An :class:`~aemim_mm.models.AdversarialMIMWrapper` with a
            feature-distance attack (not ``'rec'``).
        inputs: Normalised images (B, C, H, W), as the data preprocessor
            gives them.
        data_samples: The batch's data samples (SimMIM reads its mask).
        amp_dtype: ``'bfloat16'`` or ``'float16'``.
        steps: Attack steps T to compare at (each >= 1).
        seed: Seed of the masks and the random start.

    Returns:
        One dict per ``steps`` entry: ``steps``; ``dist_start`` (the feature
        distance at the random start), ``dist_fp32`` and ``dist_amp`` (after
        each attack; all measured in fp32, mean over the batch);
        ``gain_ratio`` = (dist_amp - dist_start) / (dist_fp32 - dist_start);
        ``sign_agreement``: the share of pixels whose first-step gradient
        sign is the same, over the pixels where the fp32 gradient is not
        zero (an MAE gradient is zero on masked patches); ``time_fp32_s``
        and ``time_amp_s``: one attack's wall time.

    Raises:
        ValueError: For an ``amp_dtype`` other than those of
            :data:`~aemim_mm.models.attack.AMP_DTYPES`, a step count < 1 or
            the ``'rec'`` distance.
    """
    if amp_dtype not in AMP_DTYPES:
        raise ValueError(f'amp_dtype must be one of {AMP_DTYPES}, got '
                         f'{amp_dtype!r}.')
    bad = [t for t in steps if not is_int(t) or t < 1]
    if bad or not steps:
        raise ValueError(f'steps must be ints >= 1, got {list(steps)!r}.')
    attack = wrapper.attack
    if attack.distance == 'rec':
        raise ValueError("compare_attack_precision needs a feature distance "
                         "('l2', 'kl', 'cos'), got distance='rec'.")
    x = inputs.detach().float()
    rng = SampleRandomness(x.shape[0], x.device, seed)
    mask = wrapper.mim.sample_mask(x, data_samples, rng)
    noise = rng.rand(x.shape[1:], START)
    with frozen_running_stats(wrapper):
        return _compare(wrapper, x, mask, noise, amp_dtype, steps)


def _compare(wrapper, x: torch.Tensor, mask: torch.Tensor,
             noise: torch.Tensor, amp_dtype: str,
             steps: Sequence[int]) -> List[Dict[str, float]]:
    """The rows of :func:`compare_attack_precision`."""
    attack = wrapper.attack
    mean, std = wrapper.pixel_stats(x)
    rows = []
    with torch.no_grad(), adapter_route(wrapper, 'clean'):
        target = wrapper.mim.encode(x, mask)
    with adapter_route(wrapper, 'adv'):
        adv_loss = wrapper._adv_loss(mask, target, x)
        with _attack_settings(attack, steps=0, amp_dtype=None):
            start = attack(x, adv_loss, mean, std, noise=noise).x_adv
        grads = {}
        for dtype in (None, amp_dtype):
            z = start.clone().requires_grad_(True)
            with _attack_settings(attack, amp_dtype=dtype), \
                    attack.autocast(x.device):
                loss = adv_loss(z)
            grads[dtype], = torch.autograd.grad(loss.sum(), z)
        nonzero = grads[None] != 0
        agree = (grads[None].sign() == grads[amp_dtype].sign())[nonzero]
        sign_agreement = (agree.float().mean().item()
                          if agree.numel() else float('nan'))
        with torch.no_grad():
            dist_start = adv_loss(start).mean().item()
        for t in steps:
            row = dict(steps=t, dist_start=dist_start,
                       sign_agreement=sign_agreement)
            for key, dtype in (('fp32', None), ('amp', amp_dtype)):
                with _attack_settings(attack, steps=t, amp_dtype=dtype):
                    begin = time.perf_counter()
                    x_adv = attack(x, adv_loss, mean, std, noise=noise).x_adv
                    row[f'time_{key}_s'] = time.perf_counter() - begin
                with torch.no_grad():
                    row[f'dist_{key}'] = adv_loss(x_adv).mean().item()
            row['gain_ratio'] = ((row['dist_amp'] - dist_start) /
                                 (row['dist_fp32'] - dist_start))
            rows.append(row)
    return rows
