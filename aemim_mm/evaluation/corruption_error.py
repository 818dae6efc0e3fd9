"""Mean corruption error (mCE) of ImageNet-C and the paper's OOD score.

ImageNet-C (Hendrycks & Dietterich, 2019) normalises a model's error on each
corruption by AlexNet's::

    CE_c = sum_s err(model, c, s) / sum_s err(AlexNet, c, s)   (s = 1..5)
    mCE  = mean_c CE_c                                         (15 corruptions)

The AlexNet errors below are AlexNet's top-1 errors averaged over the five
severities (so a ratio of means equals the ratio of sums). They are the
published values of hendrycks/robustness, as used e.g. by
google-research/augmix ``imagenet.py`` (``ALEXNET_ERR``, "Raw AlexNet errors
taken from https://github.com/hendrycks/robustness") and by the
``get_ce_alexnet()`` helpers of several ImageNet-C evaluation scripts.
"""
from typing import Dict, Mapping, Optional, Sequence

# The 15 standard ImageNet-C corruptions (noise, blur, weather, digital).
IMAGENET_C_CORRUPTIONS = (
    'gaussian_noise', 'shot_noise', 'impulse_noise', 'defocus_blur',
    'glass_blur', 'motion_blur', 'zoom_blur', 'snow', 'frost', 'fog',
    'brightness', 'contrast', 'elastic_transform', 'pixelate',
    'jpeg_compression')

IMAGENET_C_SEVERITIES = (1, 2, 3, 4, 5)

# AlexNet top-1 error (fraction), mean over the 5 severities.
ALEXNET_ERR: Dict[str, float] = {
    'gaussian_noise': 0.886428,
    'shot_noise': 0.894468,
    'impulse_noise': 0.922640,
    'defocus_blur': 0.819880,
    'glass_blur': 0.826268,
    'motion_blur': 0.785948,
    'zoom_blur': 0.798360,
    'snow': 0.866816,
    'frost': 0.826572,
    'fog': 0.819324,
    'brightness': 0.564592,
    'contrast': 0.853204,
    'elastic_transform': 0.646056,
    'pixelate': 0.717840,
    'jpeg_compression': 0.606500,
}


def corruption_errors(
    top1: Mapping[str, Mapping[int, float]],
    alexnet_err: Optional[Mapping[str, float]] = None,
) -> Dict[str, float]:
    """Corruption error CE_c (in %) of each corruption.

    Args:
        top1: ``top1[corruption][severity]`` = top-1 accuracy in % of the
            model; every corruption needs the 5 severities 1..5.
        alexnet_err: AlexNet's mean error (fraction) per corruption; defaults
            to :data:`ALEXNET_ERR`.

    Returns:
        ``{corruption: CE_c}`` in % (100 = as bad as AlexNet).

    Raises:
        ValueError: On a corruption without an AlexNet reference, or missing
            severities.
    """
    alexnet_err = ALEXNET_ERR if alexnet_err is None else alexnet_err
    result = {}
    for corruption, by_severity in top1.items():
        if corruption not in alexnet_err:
            raise ValueError(
                f'no AlexNet error for corruption {corruption!r}; known: '
                f'{sorted(alexnet_err)}')
        missing = set(IMAGENET_C_SEVERITIES) - {int(s) for s in by_severity}
        if missing:
            raise ValueError(f'corruption {corruption!r} misses severities '
                             f'{sorted(missing)} (all of 1..5 are needed)')
        errors = [100.0 - by_severity[s] for s in IMAGENET_C_SEVERITIES]
        alex_sum = 100.0 * alexnet_err[corruption] * len(errors)
        result[corruption] = 100.0 * sum(errors) / alex_sum
    return result


def mean_corruption_error(
    top1: Mapping[str, Mapping[int, float]],
    corruptions: Sequence[str] = IMAGENET_C_CORRUPTIONS,
    alexnet_err: Optional[Mapping[str, float]] = None,
) -> float:
    """mCE in %: the mean of :func:`corruption_errors` over ``corruptions``.

    Raises:
        ValueError: If one of ``corruptions`` is missing from ``top1``.
    """
    missing = [c for c in corruptions if c not in top1]
    if missing:
        raise ValueError(f'mCE needs all of {list(corruptions)}; missing '
                         f'{missing}')
    ces = corruption_errors({c: top1[c] for c in corruptions}, alexnet_err)
    return sum(ces.values()) / len(ces)


def ood_score(top1_a: float, top1_r: float, top1_sketch: float,
              mce: float) -> float:
    """The paper's OOD "Score": mean of A, R, Sketch top-1 and 100 - mCE.

    All four inputs and the result are in %.
    """
    return (top1_a + top1_r + top1_sketch + (100.0 - mce)) / 4.0
