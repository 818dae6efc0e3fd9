"""HueWrapColorJitter (aemim_mm/datasets/color_jitter.py): mmpretrain's
ColorJitter, whose negative hue shifts fail under numpy 2 with mmcv 2.1."""
import cv2
import mmcv
import numpy as np
import pytest

import aemim_mm  # noqa: F401  (registers the transform)
from aemim_mm.datasets.color_jitter import HueWrapColorJitter, rotate_hue
from mmpretrain.datasets.transforms import ColorJitter


def _image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)


def _hue(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_BGR2HSV_FULL)[..., 0].astype(int)


def test_the_upstream_defect_under_numpy_2():
    """What the transform exists for (if this starts passing, mmcv fixed
    it and the subclass can go)."""
    if np.lib.NumpyVersion(np.__version__) < '2.0.0':
        pytest.skip('numpy 1 wraps the negative shift')
    with pytest.raises(OverflowError, match='out of bounds for uint8'):
        mmcv.adjust_hue(_image(), -0.1, backend='cv2')


@pytest.mark.parametrize('hue', [-0.5, -0.3, -0.1, -0.01])
def test_a_negative_hue_rotates_the_hue_circle_back(hue):
    img = _image()
    out = rotate_hue(img, hue, 'cv2')
    shift = (_hue(out) - _hue(img)) % 256
    # saturated pixels carry their hue; grey ones have none
    sat = cv2.cvtColor(img, cv2.COLOR_BGR2HSV_FULL)[..., 1] > 100
    expected = (256 + int(hue * 255)) % 256
    error = np.minimum(np.abs(shift - expected), 256 - np.abs(shift - expected))
    assert np.median(error[sat]) <= 3


def test_a_positive_hue_is_mmcvs():
    img = _image()
    np.testing.assert_array_equal(rotate_hue(img, 0.2, 'pillow'),
                                  mmcv.adjust_hue(img, 0.2, backend='pillow'))


def test_same_draws_and_operations_as_color_jitter(monkeypatch):
    """With the hue jitter off, the two transforms are the same."""
    kwargs = dict(brightness=0.4, contrast=0.4, saturation=0.4)
    ours, theirs = HueWrapColorJitter(**kwargs), ColorJitter(**kwargs)
    for seed in range(5):
        np.random.seed(seed)
        a = ours.transform(dict(img=_image(seed)))['img']
        np.random.seed(seed)
        b = theirs.transform(dict(img=_image(seed)))['img']
        np.testing.assert_array_equal(a, b)


def test_every_draw_of_a_hue_jitter_works():
    jitter = HueWrapColorJitter(brightness=0.8, contrast=0.8,
                                saturation=0.8, hue=0.2)
    np.random.seed(0)
    for _ in range(50):
        assert jitter.transform(dict(img=_image()))['img'].shape == (16, 16,
                                                                      3)
