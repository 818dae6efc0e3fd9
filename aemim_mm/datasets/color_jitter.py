"""mmpretrain's ColorJitter with hue shifts that work under numpy 2.

mmcv 2.1.0's ``adjust_hue`` adds ``np.uint8(hue_factor * 255)`` to the hue
channel, relying on numpy 1 wrapping a negative value around; numpy 2
refuses it (``OverflowError: Python integer -25 out of bounds for uint8``).
mmpretrain's ``ColorJitter`` draws the hue factor from ``[-hue, hue]``, so
every pipeline with a hue jitter (SimCLR, BYOL, MoCo v2, SimSiam and the
survey's CIFAR-10 configs) fails on about half of its colour-jittered images
with the numpy this project pins. :class:`HueWrapColorJitter` is the same
transform (same parameters, same draws, same order of the four operations)
that applies a negative hue factor ``h`` as two rotations mmcv accepts,
``+0.5`` then ``h + 0.5``: the same rotation of the hue circle, within 2 of
its 256 steps of what numpy 1's wrap-around gave.
"""
from typing import Dict

import mmcv
import numpy as np

from mmpretrain.datasets.transforms import ColorJitter
from mmpretrain.registry import TRANSFORMS

__all__ = ['HueWrapColorJitter', 'rotate_hue']


def rotate_hue(img: np.ndarray, hue: float, backend: str) -> np.ndarray:
    """``mmcv.adjust_hue(img, hue)`` for any ``hue`` in [-0.5, 0.5], also
    a negative one under numpy 2."""
    if hue >= 0:
        return mmcv.adjust_hue(img, hue, backend=backend)
    half = mmcv.adjust_hue(img, 0.5, backend=backend)
    return mmcv.adjust_hue(half, hue + 0.5, backend=backend)


@TRANSFORMS.register_module()
class HueWrapColorJitter(ColorJitter):
    """``ColorJitter`` (mmpretrain), its hue step through :func:`rotate_hue`.

    Takes ``ColorJitter``'s arguments (brightness, contrast, saturation,
    hue, backend).
    """

    def transform(self, results: Dict) -> Dict:
        """Jitter ``results['img']`` as ``ColorJitter`` does."""
        img = results['img']
        order, brightness, contrast, saturation, hue = self._rand_params()
        for index in order:
            if index == 0 and brightness is not None:
                img = mmcv.adjust_brightness(img, brightness,
                                             backend=self.backend)
            elif index == 1 and contrast is not None:
                img = mmcv.adjust_contrast(img, contrast,
                                           backend=self.backend)
            elif index == 2 and saturation is not None:
                img = mmcv.adjust_color(img, alpha=saturation,
                                        backend=self.backend)
            elif index == 3 and hue is not None:
                img = rotate_hue(img, hue, self.backend)
        results['img'] = img
        return results
