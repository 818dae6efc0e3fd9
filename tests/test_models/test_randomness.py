"""SampleRandomness: draws keyed by sample, invariant to the process split."""
import pytest
import torch
from torch.testing import assert_close

import aemim_mm.models.randomness as randomness
from aemim_mm.models.randomness import (MASK, START, SampleRandomness,
                                        round_half_up)
from tiny_models import build_wrapper, valid_images


def as_rank(monkeypatch, rank: int, world: int):
    monkeypatch.setattr(randomness, 'get_dist_info', lambda: (rank, world))


@pytest.mark.parametrize('world', [2, 4])
def test_keyed_draws_do_not_depend_on_the_split(monkeypatch, world):
    batch = 8
    as_rank(monkeypatch, 0, 1)
    single = SampleRandomness(batch, torch.device('cpu'), seed=3)
    noise = single.rand((5, ), MASK)
    start = single.rand((3, 2, 2), START, torch.tensor([1, 6]))
    chosen = set(single.select(0.5).tolist())
    per_rank = batch // world
    union = set()
    for rank in range(world):
        as_rank(monkeypatch, rank, world)
        local = SampleRandomness(per_rank, torch.device('cpu'), seed=3)
        # DefaultSampler layout: rank r's k-th sample is global k*world + r
        assert_close(local.rand((5, ), MASK), noise[rank::world])
        union |= {k * world + rank for k in local.select(0.5).tolist()}
    assert union == chosen and len(chosen) == 4
    # random starts of global samples 1 and 6: rank 1's 0th, rank 0's 3rd
    for rank, k, row in ((1, 0, 0), (0, 3, 1)):
        as_rank(monkeypatch, rank, 2)
        local = SampleRandomness(4, torch.device('cpu'), seed=3)
        assert_close(local.rand((3, 2, 2), START, torch.tensor([k]))[0],
                     start[row])


def test_keyed_draws_change_with_seed_and_stream():
    a = SampleRandomness(4, torch.device('cpu'), seed=0)
    b = SampleRandomness(4, torch.device('cpu'), seed=1)
    assert not torch.equal(a.rand((6, ), MASK), b.rand((6, ), MASK))
    assert not torch.equal(a.rand((6, ), MASK), a.rand((6, ), START))
    assert_close(a.rand((6, ), MASK), a.rand((6, ), MASK))


def test_unkeyed_draws_follow_the_global_generator():
    torch.manual_seed(5)
    first = SampleRandomness(3, torch.device('cpu')).rand((4, ), MASK)
    torch.manual_seed(5)
    assert_close(SampleRandomness(3, torch.device('cpu')).rand((4, ), MASK),
                 first)


@pytest.mark.parametrize('value,expected', [(0.5, 1), (1.5, 2), (2.5, 3),
                                            (2.49, 2), (0, 0)])
def test_round_half_up(value, expected):
    assert round_half_up(value) == expected


@pytest.mark.parametrize('adv_ratio', [1.0, 0.5, 0.25])
def test_wrapper_loss_is_split_invariant(monkeypatch, adv_ratio):
    """Batch 4 on one process == mean over two processes of batch 2 (what
    DDP averages), also when the processes hold unequal shares of the
    adversarial subset."""
    wrapper = build_wrapper(attack=dict(type='FeatureDistancePGD', eps=4,
                                        steps=2), adv_ratio=adv_ratio)
    wrapper.sample_seed = 11
    x = valid_images(4)
    as_rank(monkeypatch, 0, 1)
    whole = wrapper.loss(x, None)
    halves = []
    for rank in range(2):
        as_rank(monkeypatch, rank, 2)
        halves.append(wrapper.loss(x[rank::2], None))
    for key in ('loss_clean', 'loss_adv', 'rec_clean'):
        assert_close(whole[key], (halves[0][key] + halves[1][key]) / 2,
                     rtol=1e-5, atol=1e-6, msg=key)


def test_wrapper_keyed_loss_ignores_the_global_generator():
    wrapper = build_wrapper(adv_ratio=0.5)
    wrapper.sample_seed = 2
    x = valid_images(4)
    torch.manual_seed(0)
    first = wrapper.loss(x, None)['loss_adv']
    torch.manual_seed(1)
    assert_close(wrapper.loss(x, None)['loss_adv'], first)
