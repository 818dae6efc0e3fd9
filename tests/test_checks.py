"""One type rule for every component's options (``aemim_mm.utils.checks``):
a bool is neither an int nor a number, numpy scalars count like Python ones,
and a number must be finite."""
import math

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope

from aemim_mm.utils.checks import is_int, is_number
from mmpretrain.registry import DATASETS, HOOKS, MODELS

from module_loader import load_tiny_models

TINY = load_tiny_models()


@pytest.mark.parametrize('value,expected', [
    (3, True), (0, True), (-2, True), (np.int64(3), True), (np.uint8(3), True),
    (True, False), (np.bool_(True), False), (3.0, False),
    (np.float32(3), False), ('3', False), (None, False),
    (torch.tensor(3), False),
])
def test_is_int(value, expected: bool) -> None:
    assert is_int(value) is expected


@pytest.mark.parametrize('value,expected', [
    (0.5, True), (2, True), (-1e-3, True), (np.float32(0.5), True),
    (np.int64(2), True), (False, False), (np.bool_(False), False),
    (math.nan, False), (math.inf, False), (np.float64('-inf'), False),
    ('1', False), (None, False), (torch.tensor(1.), False),
])
def test_is_number(value, expected: bool) -> None:
    assert is_number(value) is expected


#: (registry, type, valid config, option, a numpy value it takes).
NUMPY_OPTIONS = [
    (MODELS, 'FeatureDistancePGD', {}, 'eps', np.float32(2)),
    (MODELS, 'FeatureDistancePGD', {}, 'steps', np.int64(2)),
    (MODELS, 'FeatureDistancePGD', {}, 'step_size', np.float64(1)),
    (MODELS, 'AdversarialMIMWrapper', dict(algorithm=TINY.mae_cfg()),
     'adv_ratio', np.float64(0.5)),
    (MODELS, 'AdversarialMIMWrapper', dict(algorithm=TINY.mae_cfg()),
     'loss_ratio', np.float32(0.5)),
    (MODELS, 'TimmMAEViT', dict(arch='deit-tiny', img_size=32),
     'patch_size', np.int64(8)),
    (HOOKS, 'LossCurveHook', {}, 'interval', np.int64(5)),
    (HOOKS, 'SkipCounterHook', {}, 'max_skipped', np.int32(3)),
    (HOOKS, 'FeatureDistancePGDHook', {}, 'vis_interval', np.int64(10)),
    (DATASETS, 'SkimagePhotos', dict(names=['astronaut']), 'repeat',
     np.int64(2)),
]
IDS = [f'{row[1]}.{row[3]}' for row in NUMPY_OPTIONS]


@pytest.mark.parametrize('registry,kind,valid,option,value', NUMPY_OPTIONS,
                         ids=IDS)
def test_options_take_numpy_scalars(registry, kind, valid, option, value):
    init_default_scope('mmpretrain')
    built = registry.build(dict(type=kind, **valid, **{option: value}))
    assert built is not None


@pytest.mark.parametrize('registry,kind,valid,option,value', NUMPY_OPTIONS,
                         ids=IDS)
def test_options_refuse_a_bool_naming_the_option(registry, kind, valid,
                                                  option, value):
    init_default_scope('mmpretrain')
    with pytest.raises(ValueError, match=option):
        registry.build(dict(type=kind, **valid, **{option: True}))


def test_attack_with_numpy_budget_equals_python_budget() -> None:
    """numpy eps / steps craft the same examples as Python ones."""
    init_default_scope('mmpretrain')
    x = torch.randn(2, 3, 8, 8)
    noise = torch.rand_like(x)
    mean, std = torch.full((3, ), 127.5), torch.full((3, ), 64.)

    def adv_loss(z: torch.Tensor) -> torch.Tensor:
        return (z - x).pow(2).flatten(1).sum(1) + z.flatten(1).sum(1)

    results = []
    for eps, steps in ((2.0, 2), (np.float32(2), np.int64(2))):
        attack = MODELS.build(dict(type='FeatureDistancePGD', eps=eps,
                                   steps=steps))
        results.append(attack(x, adv_loss, mean, std, noise=noise).x_adv)
    assert results[1].dtype == x.dtype
    torch.testing.assert_close(results[1], results[0])
