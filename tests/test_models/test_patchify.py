"""patchify_as_matmul: the same function as the patch convolution."""
import pytest
import torch
from torch import nn
from torch.testing import assert_close

from aemim_mm.models.patchify import (is_patchify_conv, patchify_as_matmul,
                                      patchify_linear)
from tiny_models import build_wrapper, valid_images


@pytest.mark.parametrize('size,patch,chans,bias', [
    ((32, 32), 8, 3, True), ((32, 32), 4, 3, False), ((30, 34), 8, 1, True),
    ((16, 48), (4, 8), 3, True)])
def test_values_and_input_gradients_equal_the_convolution(size, patch, chans,
                                                           bias):
    torch.manual_seed(0)
    conv = nn.Conv2d(chans, 12, patch, stride=patch, bias=bias).double()
    x = torch.randn(3, chans, *size, dtype=torch.double, requires_grad=True)
    expected = conv(x)
    got = patchify_linear(x, conv)
    assert_close(got, expected)
    weights = torch.randn_like(expected)
    grads = [torch.autograd.grad((y * weights).sum(), [x, conv.weight])
             for y in (expected, got)]
    assert_close(grads[1][0], grads[0][0])      # the attack's gradient
    assert_close(grads[1][1], grads[0][1])


@pytest.mark.parametrize('conv,expected', [
    (nn.Conv2d(3, 8, 4, stride=4), True),
    (nn.Conv2d(3, 8, 4, stride=2), False),                   # overlapping
    (nn.Conv2d(3, 8, 4, stride=4, padding=1), False),
    (nn.Conv2d(3, 8, 4, stride=4, dilation=2), False),
    (nn.Conv2d(4, 8, 4, stride=4, groups=2), False),
    (nn.Conv2d(3, 8, 4, stride=4, padding_mode='reflect'), False),
    (nn.Conv1d(3, 8, 4, stride=4), False),
    (nn.Linear(3, 8), False)])
def test_only_non_overlapping_plain_convolutions_qualify(conv, expected):
    assert is_patchify_conv(conv) is expected


def test_swaps_inside_the_block_only_and_restores():
    wrapper = build_wrapper()
    conv = wrapper.algorithm.backbone.patch_embed.projection
    x = valid_images(2)
    before = conv(x)
    with patchify_as_matmul(wrapper.algorithm) as names:
        assert names == ['backbone.patch_embed.projection']
        assert 'forward' in conv.__dict__
        assert_close(conv(x), before)
    assert 'forward' not in conv.__dict__       # the class's method again
    assert_close(conv(x), before)


def test_restores_after_an_error():
    conv = nn.Conv2d(3, 8, 4, stride=4)
    with pytest.raises(RuntimeError, match='boom'):
        with patchify_as_matmul(conv):
            raise RuntimeError('boom')
    assert 'forward' not in conv.__dict__


def test_attack_gives_the_same_adversarial_examples_with_and_without():
    """The wrapper's attack under the swap equals the plain-conv attack."""
    from aemim_mm.models.adapters import adapter_route
    from aemim_mm.models.randomness import SampleRandomness
    wrapper = build_wrapper(
        attack=dict(type='FeatureDistancePGD', eps=4, steps=2)).double()
    x = valid_images(4).double()
    rng = SampleRandomness(4, x.device, None)
    mask = wrapper.mim.sample_mask(x, None, rng)
    target = wrapper.mim.encode(x, mask).detach()
    noise = torch.rand_like(x)
    results = []
    for swap in (False, True):
        with adapter_route(wrapper, 'adv'):
            ctx = (patchify_as_matmul(wrapper.algorithm) if swap else
                   torch.enable_grad())
            with ctx:
                results.append(wrapper.attack(
                    x, wrapper._adv_loss(mask, target, x),
                    *wrapper.pixel_stats(x), noise=noise).x_adv)
    assert_close(results[1], results[0])
