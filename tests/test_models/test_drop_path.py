"""Stochastic depth under AEMIM: the clean pass draws, the attack and the
adversarial pass replay its per-sample draws (aemim_mm.models.drop_path)."""
import pytest
import torch
from torch import nn
from torch.testing import assert_close

from aemim_mm.models import drop_path as dp
from tiny_algorithms import CASES, case_cfg
from tiny_models import build_wrapper
from tiny_spark import spark_cfg

#: the attack leaves the image as it is (eps 0): every pass sees the clean
#: image, so with one draw per sample the features of all passes are equal
NO_PERTURBATION = dict(type='FeatureDistancePGD', eps=0, steps=2)
RATE = 0.5
#: a feature distance that is zero up to float32 rounding
TOL = 1e-6


def _with_drop_path(cfg: dict) -> dict:
    """``cfg`` with drop path ``RATE`` in its backbone."""
    cfg['backbone']['drop_path_rate'] = RATE
    return cfg


#: every supported algorithm; each backbone takes drop_path_rate
DROP_PATH_CASES = [pytest.param(case, id=case.name) for case in CASES]


@pytest.fixture(scope='module')
def clip_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp('clip'))


def _losses(wrapper, case, batch: int = 4):
    torch.manual_seed(0)
    return wrapper.loss(case.inputs(batch), case.samples(batch))


@pytest.mark.parametrize('case', DROP_PATH_CASES)
@pytest.mark.parametrize('adv_ratio', [1.0, 0.5])
def test_every_pass_sees_the_clean_pass_sub_network(case, adv_ratio,
                                                    clip_dir):
    cfg = _with_drop_path(case_cfg(case, clip_dir))
    wrapper = build_wrapper(cfg, attack=NO_PERTURBATION, adapter='none',
                            adv_ratio=adv_ratio)
    assert any(m.drop_prob > 0 for m in wrapper._drop_paths)
    out = _losses(wrapper, case)
    # 0 up to rounding (the attack's patch embedding runs as a matmul)
    assert out['adv_dist_init'] < TOL
    assert out['adv_dist'] < TOL
    if adv_ratio == 1.0:        # the same samples, network and draws
        assert_close(out['rec_adv'], out['rec_clean'])


@pytest.mark.parametrize('case', DROP_PATH_CASES[:1])
def test_without_the_replay_the_distances_compare_other_networks(
        case, clip_dir, monkeypatch):
    """The test above fails when the attack draws anew (as before)."""
    import contextlib
    monkeypatch.setattr(dp.DropPathDraws, 'replay',
                        lambda self, index=None: contextlib.nullcontext())
    wrapper = build_wrapper(_with_drop_path(case_cfg(case, clip_dir)),
                            attack=NO_PERTURBATION, adapter='none')
    out = _losses(wrapper, case)
    assert out['adv_dist_init'] > 1e3 * TOL and out['adv_dist'] > 1e3 * TOL


def test_spark_convnext_replays_too():
    wrapper = build_wrapper(spark_cfg('convnext', drop_path_rate=RATE),
                            attack=NO_PERTURBATION, adapter='none')
    assert any(m.drop_prob > 0 for m in wrapper._drop_paths)
    torch.manual_seed(0)
    images = torch.rand(4, 3, 64, 64) * 2 - 1
    out = wrapper.loss(images, None)
    assert out['adv_dist_init'] < TOL and out['adv_dist'] < TOL


@pytest.mark.parametrize('layer', [
    dp.MMCVDropPath(RATE), dp.TimmDropPath(RATE),
    dp.TimmDropPath(RATE, scale_by_keep=False)], ids=['mmcv', 'timm',
                                                      'timm-no-scale'])
def test_record_draws_as_the_layer_and_replay_selects_samples(layer):
    """Recorded: the layer's distribution (keep 1 - p, scaled by 1 / (1 - p)
    unless timm's scale_by_keep=False); replay: the same draws, by sample."""
    x = torch.randn(4000, 3) + 5
    with dp.record_drop_paths([layer]) as draws:
        y = layer(x)
    kept = (y != 0).all(1)
    assert 0.45 < kept.float().mean() < 0.55
    scale = 1 / (1 - RATE) if getattr(layer, 'scale_by_keep', True) else 1.
    assert_close(y[kept], x[kept] * scale)
    index = torch.tensor([3, 0, 7])
    with draws.replay(index):
        assert_close(layer(x[index]), y[index])
        assert_close(layer(x[index]), y[index])     # every call replays
    with draws.replay():
        assert_close(layer(x), y)
    assert 'forward' not in layer.__dict__          # the class's again
    assert not torch.equal(layer(x), y)             # fresh draws outside


def test_eval_mode_records_the_identity():
    layer = dp.MMCVDropPath(RATE).eval()
    x = torch.randn(8, 3)
    with dp.record_drop_paths([layer]) as draws:
        assert_close(layer(x), x)
    with draws.replay(torch.tensor([1])):
        assert_close(layer(x[1:2]), x[1:2])


def test_a_layer_the_recorded_pass_never_ran_is_refused():
    first, second = dp.MMCVDropPath(RATE), dp.MMCVDropPath(RATE)
    with dp.record_drop_paths([first, second]) as draws:
        first(torch.randn(2, 3))
    with draws.replay(), pytest.raises(RuntimeError,
                                       match='has no draw to replay'):
        second(torch.randn(2, 3))


class OtherDropPath(nn.Module):
    drop_prob = 0.1

    def forward(self, x):
        return x


def test_unknown_drop_path_class_is_refused():
    model = nn.Sequential(nn.Linear(2, 2), OtherDropPath())
    with pytest.raises(ValueError, match=r'1 is a OtherDropPath: .*replays'):
        dp.drop_path_layers(model)


def test_activation_checkpointing_with_drop_path_is_refused():
    block = nn.Sequential(dp.MMCVDropPath(RATE))
    block.with_cp = True
    with pytest.raises(ValueError, match=r'with_cp=True.*drop_path_rate=0'):
        dp.drop_path_layers(nn.Sequential(block))
    block[0].drop_prob = 0.
    assert dp.drop_path_layers(nn.Sequential(block)) == [block[0]]
