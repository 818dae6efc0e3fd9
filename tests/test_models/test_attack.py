"""FeatureDistancePGD: budgets, projection, objective and gradients."""
import pytest
import torch
from torch.testing import assert_close

from aemim_mm.models.adapters import adapter_route
from aemim_mm.models.attack import (DISTANCES, FeatureDistancePGD,
                                    feature_distance)
from aemim_mm.models.randomness import SampleRandomness
from mmpretrain.registry import MODELS
from tiny_models import MEAN, STD, build_wrapper, valid_images

MEAN_T, STD_T = torch.tensor(MEAN), torch.tensor(STD)


def to_pixels(x):
    return x * STD_T.view(1, 3, 1, 1) + MEAN_T.view(1, 3, 1, 1)


class TinyEncoder(torch.nn.Module):
    """A conv 'encoder' producing (B, N, C) tokens."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 16, 4, stride=4)

    def forward(self, x):
        return torch.tanh(self.conv(x)).flatten(2).transpose(1, 2)


@pytest.mark.parametrize('eps,steps,step_size', [(0, 0, None), (1, 1, None),
                                                 (2, 2, None), (4, 3, 2.5),
                                                 (8, 5, None), (16, 2, 10)])
@pytest.mark.parametrize('seed', [0, 1])
def test_perturbation_stays_in_budget_and_valid_pixels(eps, steps, step_size,
                                                       seed):
    x = valid_images(6, seed=seed)
    # push some pixels to the range's edges so the pixel clamp matters
    x[:, :, :4] = ((torch.tensor([0., 255., 0.]).view(1, 3, 1, 1) - MEAN_T.view(
        1, 3, 1, 1)) / STD_T.view(1, 3, 1, 1))
    enc = TinyEncoder()
    target = enc(x).detach()
    attack = FeatureDistancePGD(eps=eps, steps=steps, step_size=step_size)
    result = attack(x, lambda z: feature_distance(enc(z), target, 'l2'),
                    MEAN_T, STD_T)
    delta = to_pixels(result.x_adv) - to_pixels(x)
    assert delta.abs().max() <= eps + 1e-3
    pixels = to_pixels(result.x_adv)
    assert pixels.min() >= -1e-3 and pixels.max() <= 255 + 1e-3
    if eps > 0 and steps > 0:
        assert delta.abs().max() > 0.5 * eps     # the budget is used


@pytest.mark.parametrize('distance', ['l2', 'kl', 'cos'])
def test_attack_raises_distance_over_random_start(distance):
    wrapper = build_wrapper(attack=dict(type='FeatureDistancePGD', eps=8,
                                        steps=4, distance=distance))
    x = valid_images(8)
    torch.manual_seed(0)
    out = wrapper.loss(x, None)
    assert out['adv_dist'] > out['adv_dist_init'] > 0


def test_attack_raises_distance_per_sample_on_average():
    enc = TinyEncoder()
    x = valid_images(16, seed=3)
    target = enc(x).detach()
    torch.manual_seed(0)
    result = FeatureDistancePGD(eps=4, steps=3)(
        x, lambda z: feature_distance(enc(z), target, 'l2'), MEAN_T, STD_T)
    final = feature_distance(enc(result.x_adv), target, 'l2').mean()
    assert final > result.dist_init


def test_attack_leaves_parameter_grads_untouched():
    wrapper = build_wrapper()
    for p in wrapper.parameters():
        p.grad = torch.randn_like(p)
    before = {n: p.grad.clone() for n, p in wrapper.named_parameters()}
    x = valid_images(4)
    mask = wrapper.mim.sample_mask(x, None, SampleRandomness(4, x.device))
    with torch.no_grad(), adapter_route(wrapper, 'clean'):
        feat = wrapper.mim.encode(x, mask)
    with adapter_route(wrapper, 'adv'):
        wrapper.attack(x, wrapper._adv_loss(mask, feat, x),
                       *wrapper.pixel_stats(x))
    for n, p in wrapper.named_parameters():
        assert_close(p.grad, before[n], msg=n)


def test_attack_under_autocast_bf16():
    wrapper = build_wrapper(attack=dict(type='FeatureDistancePGD', eps=4,
                                        steps=2))
    x = valid_images(4)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = wrapper.loss(x, None)
    assert torch.isfinite(out['loss_adv'])
    assert 0 < out['adv_linf'] <= 4 + 0.05


@pytest.mark.parametrize('amp_dtype,expected', [
    (None, None), ('bfloat16', torch.bfloat16), ('float16', torch.float16)])
def test_amp_dtype_runs_the_forward_passes_under_autocast(amp_dtype,
                                                          expected):
    enc = TinyEncoder()
    x = valid_images(4, seed=1)
    target = enc(x).detach()
    seen = []

    def adv_loss(z):
        seen.append(torch.get_autocast_dtype('cpu')
                    if torch.is_autocast_enabled('cpu') else None)
        feat = enc(z)
        seen.append(feat.dtype)
        return feature_distance(feat, target, 'l2')

    attack = FeatureDistancePGD(eps=4, steps=2, amp_dtype=amp_dtype)
    result = attack(x, adv_loss, MEAN_T, STD_T)
    assert seen == [expected, expected or torch.float32] * 2
    assert not torch.is_autocast_enabled('cpu')     # and nothing leaks
    assert result.x_adv.dtype == torch.float32      # fp32 in, fp32 out
    delta = to_pixels(result.x_adv) - to_pixels(x)
    assert 2 < delta.abs().max() <= 4 + 1e-3


@pytest.mark.parametrize('amp_dtype', ['bfloat16', 'float16'])
@pytest.mark.parametrize('steps', [1, 2])
def test_mixed_precision_attack_is_about_as_strong(amp_dtype, steps):
    """Same start, same mask: the attack in mixed precision takes nearly
    the fp32 attack's gradient signs and reaches nearly its distance."""
    wrapper = build_wrapper(attack=dict(type='FeatureDistancePGD', eps=4,
                                        steps=steps))
    x = valid_images(16, seed=2)
    mask = wrapper.mim.sample_mask(x, None,
                                   SampleRandomness(16, x.device, seed=0))
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(0))
    with adapter_route(wrapper, 'adv'):
        with torch.no_grad():
            target = wrapper.mim.encode(x, mask)
        adv_loss = wrapper._adv_loss(mask, target, x)
        final = {}
        for dtype in (None, amp_dtype):
            wrapper.attack.amp_dtype = dtype
            x_adv = wrapper.attack(x, adv_loss, *wrapper.pixel_stats(x),
                                   noise=noise).x_adv
            with torch.no_grad():
                final[dtype] = adv_loss(x_adv)      # measured in fp32
            moved = (x_adv - x).abs().flatten(1).amax(1) > 0
            assert moved.all()
        start = adv_loss(x + (noise * 2 - 1) * 4 / STD_T.view(1, 3, 1, 1))
    gain_fp32 = (final[None] - start).mean()
    gain_amp = (final[amp_dtype] - start).mean()
    assert gain_fp32 > 0
    assert gain_amp > 0.9 * gain_fp32


def test_amp_dtype_leaves_the_training_passes_in_fp32(monkeypatch):
    wrapper = build_wrapper(attack=dict(type='FeatureDistancePGD', eps=2,
                                        steps=1, amp_dtype='bfloat16'))
    states = []
    original = wrapper.mim.reconstruction_loss

    def spy(inputs, mask, target):
        states.append(torch.is_autocast_enabled('cpu'))
        return original(inputs, mask, target)

    monkeypatch.setattr(wrapper.mim, 'reconstruction_loss', spy)
    out = wrapper.loss(valid_images(4), None)
    assert states == [False, False]     # the clean and adversarial passes
    assert out['loss_adv'].dtype == torch.float32
    out['loss_adv'].backward()
    grads = [p.grad for p in wrapper.parameters() if p.grad is not None]
    assert grads and all(g.dtype == torch.float32 for g in grads)
    assert all(torch.isfinite(g).all() for g in grads)


def test_same_mask_for_every_pass(monkeypatch):
    """One noise tensor drives the clean pass, each attack step and the
    adversarial pass."""
    wrapper = build_wrapper(attack=dict(type='FeatureDistancePGD', eps=2,
                                        steps=3))
    seen = []
    original = wrapper.mim._fixed_mask

    def spy(noise):
        seen.append(noise.clone())
        return original(noise)

    monkeypatch.setattr(wrapper.mim, '_fixed_mask', spy)
    wrapper.loss(valid_images(4), None)
    assert len(seen) == 1 + 3 + 1
    for noise in seen[1:]:
        assert_close(noise, seen[0])


@pytest.mark.parametrize('kwargs,match', [
    (dict(eps=-1), 'eps must be a number in'),
    (dict(eps=float('nan')), 'eps must be a number in'),
    (dict(eps='2'), 'eps must be a number in'),
    (dict(eps=300), 'eps must be a number in'),
    (dict(steps=-1), 'steps must be an int >= 0'),
    (dict(steps=1.5), 'steps must be an int >= 0'),
    (dict(steps=True), 'steps must be an int >= 0'),
    (dict(step_size=-0.1), 'step_size must be a number in'),
    (dict(distance='l1'), 'distance must be one of'),
    (dict(random_start=1), 'random_start must be a bool'),
    (dict(amp_dtype='bf16'), 'amp_dtype must be None or one of'),
    (dict(amp_dtype=torch.bfloat16), 'amp_dtype must be None or one of'),
])
def test_bad_options_raise_at_build(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(dict(type='FeatureDistancePGD', **kwargs))


def test_registered_and_distances():
    attack = MODELS.build(dict(type='FeatureDistancePGD'))
    assert (attack.eps, attack.steps, attack.distance) == (2.0, 2, 'l2')
    assert set(DISTANCES) == {'l2', 'kl', 'cos', 'rec'}
    a = torch.randn(2, 5, 8)
    for distance in ('l2', 'kl', 'cos'):
        assert_close(feature_distance(a, a, distance), torch.zeros(2),
                     atol=1e-6, rtol=0)
        assert (feature_distance(a, torch.randn(2, 5, 8), distance) > 0).all()
