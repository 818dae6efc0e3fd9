"""GaussianNoiseClsDataPreprocessor: randomized smoothing's noise
augmentation (Cohen et al., 2019), for fine-tuning the base classifier of a
smoothed classifier (RUSH: a contrastive encoder fine-tuned with Gaussian
noise, then certified with :mod:`aemim_mm.evaluation.certify`).

Config::

    data_preprocessor = dict(type='GaussianNoiseClsDataPreprocessor',
                             sigma=0.25, num_classes=10, mean=..., std=...,
                             to_rgb=True)
"""
import torch
from mmpretrain.models import ClsDataPreprocessor
from mmpretrain.registry import MODELS

from ..utils.checks import is_number

__all__ = ['GaussianNoiseClsDataPreprocessor']


@MODELS.register_module()
class GaussianNoiseClsDataPreprocessor(ClsDataPreprocessor):
    """mmpretrain's ``ClsDataPreprocessor`` that adds ``N(0, sigma^2)``
    noise to every pixel of a training batch (evaluation batches are left
    clean: the smoothed classifier adds its own noise).

    ``sigma`` is in [0, 1] pixel units, as the randomized-smoothing
    literature gives it (0.25 is 63.75 on 0-255 pixels); the noise is that
    of the 0-255 pixels, applied after the normalisation as
    ``255 sigma / std`` per channel, which is the same thing. Noisy pixels
    are not clipped (as Cohen et al.'s training).

    Args:
        sigma: The noise std, > 0.
        **kwargs: ``ClsDataPreprocessor``'s arguments.

    Raises:
        ValueError: If ``sigma`` is not a number > 0.
    """

    def __init__(self, sigma: float, **kwargs) -> None:
        if not is_number(sigma) or sigma <= 0:
            raise ValueError('GaussianNoiseClsDataPreprocessor: sigma must be '
                             'a number > 0 ([0, 1] pixel units), got '
                             f'{sigma!r}.')
        super().__init__(**kwargs)
        self.sigma = float(sigma)

    def forward(self, data: dict, training: bool = False) -> dict:
        """``ClsDataPreprocessor.forward``, then the noise when training."""
        data = super().forward(data, training)
        if training:
            inputs = data['inputs']
            scale = 255.0 * self.sigma
            if self._enable_normalize:
                scale = scale / self.std
            data['inputs'] = inputs + torch.randn_like(inputs) * scale
        return data
