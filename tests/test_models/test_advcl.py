"""AdvCL and A-InfoNCE (Asym-RoCL, Asym-AdvCL) on a tiny SimCLR, float64:
adversary off = the plain algorithm, one step = the formula (views, routes,
pseudo-label heads, asymmetric weights), the attack on both copies of the
weak view, the adaptive degree, the high-frequency view, bad options."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from aemim_mm.models.adapters import adapter_route, is_adversarial_key
from aemim_mm.models.adversarial_ssl import (AdversarialSSLWrapper,
                                             high_frequency, info_nce,
                                             supcon)
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from test_adversarial_ssl import grads, optimised, pair, project
from tiny_models import STD
from tiny_ssl import build, simclr_cfg, two_views

T = 0.5
KS = (2, 3)


@pytest.fixture
def captured(monkeypatch):
    found = []
    original = AdversarialSSLWrapper.craft

    def spy(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        found.append([v.detach().clone() for v in result.views])
        return result

    monkeypatch.setattr(AdversarialSSLWrapper, 'craft', spy)
    return found


def three_views(seed: int = 0):
    """t(x), t'(x) and the weak view x, float64."""
    return [v.double() for v in two_views(4, seed) + two_views(4, seed + 7)
            [:1]]


def samples(num: int = 4):
    return [DataSample(metainfo=dict(sample_idx=i)) for i in range(num)]


def with_labels(model, num: int = 10, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.stack([torch.randint(0, k, (num, ), generator=gen)
                          for k in model.ks], dim=1)
    model.set_pseudo_labels(labels, model.ks)
    return labels


# ------------------------------------------------------- high frequency
def test_high_frequency_is_the_fft_with_the_disc_zeroed():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, 8, generator=gen, dtype=torch.float64)
    spectrum = np.fft.fftshift(np.fft.fft2(x.numpy()), axes=(-2, -1))
    rows, cols = np.meshgrid(np.arange(8) - 4, np.arange(8) - 4,
                             indexing='ij')
    spectrum[..., np.sqrt(rows**2 + cols**2) < 2.5] = 0
    ref = np.real(np.fft.ifft2(np.fft.ifftshift(spectrum, axes=(-2, -1))))
    assert_close(high_frequency(x, 2.5), torch.from_numpy(ref))
    assert_close(high_frequency(x, 0), x)         # nothing removed
    flat = torch.full((1, 3, 8, 8), 3.0, dtype=torch.float64)
    assert_close(high_frequency(flat, 1), torch.zeros_like(flat))   # DC


# ------------------------------------------------------------- AdvCL
def test_advcl_without_its_adversaries_is_simclr():
    model, plain = pair('AdvCL', simclr_cfg(T), ks=(), contrast_views=(),
                        base_temperature=T)
    views = three_views()
    ours = optimised(model.loss(views, samples()))
    theirs = plain.loss(views[:2], None)['loss']
    assert_close(ours, theirs)
    g_ours, g_plain = grads(model, ours), grads(plain, theirs, 'algorithm.')
    for key in g_plain:
        assert_close(g_ours[key], g_plain[key], msg=key)


def test_advcl_step_is_its_formula(captured):
    model, _ = pair('AdvCL', simclr_cfg(T), ks=KS, radius=2)
    labels = with_labels(model)
    t1, t2, x = three_views()
    losses = model.loss([t1, t2, x], samples())
    x_cl, x_ce = captured[0]
    # both copies start from x, independently, within the budget
    std = torch.tensor(STD, dtype=x.dtype).view(1, 3, 1, 1)
    for copy_ in (x_cl, x_ce):
        assert ((copy_ - x) * std).abs().max() <= 8 + 1e-6
    assert not torch.equal(x_cl, x_ce)
    z1, z2, zh = project(model, [t1, t2, high_frequency(x, 2)], 'clean')
    za, = project(model, [x_cl], 'adv')
    with adapter_route(model, 'adv_ce'):
        feat = F.adaptive_avg_pool2d(
            model.algorithm.backbone(x_ce)[-1], 1).flatten(1)
    ce = sum(F.cross_entropy(head(feat), labels[:4, k])
             for k, head in enumerate(model.pseudo_heads)) / len(KS)
    ref = dict(loss_contrast=supcon([za, z1, z2, zh], T, 0.07),
               loss_ce=0.2 * ce)
    for key in ref:
        assert_close(losses[key], ref[key], msg=key)
    g, g_ref = grads(model, optimised(losses)), grads(model, optimised(ref))
    for key in g_ref:
        assert_close(g[key], g_ref[key], msg=key)
    # the three routes each trained: clean (t, t', HFC), adv (x_cl) and
    # adv_ce (x_ce); the heads only from x_ce
    assert any(k.endswith('adv_weight') for k in g)
    assert any(k.endswith('adv_ce_weight') for k in g)
    assert all(k.startswith('pseudo_heads.') or k.startswith('algorithm.')
               for k in g)


def test_advcl_attack_trains_mode_statistics_and_looks_labels_up(captured):
    torch.manual_seed(0)
    model = build('AdvCL', simclr_cfg(T), ks=KS)
    with_labels(model, seed=3)
    before = {k: v.clone() for k, v in model.state_dict().items()
              if 'running' in k}
    model.loss([v.float() for v in three_views()], samples())
    after = model.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    # training-mode attack: both adversarial routes' statistics moved
    assert any('adv_ce_running_mean' in k for k in moved)
    assert any('.adv_running_mean' in k for k in moved)
    targets = model.pseudo_targets(samples(2)[::-1])     # by sample_idx
    assert_close(targets, model.pseudo_labels[[1, 0]].t())


def test_advcl_refuses_missing_or_mismatched_labels_and_bad_options():
    model = build('AdvCL', simclr_cfg(), ks=KS)
    with pytest.raises(RuntimeError, match='add PseudoLabelHook'):
        model.loss(three_views(), samples())
    with pytest.raises(ValueError, match=r'pseudo-label heads for ks=\(2, 3\)'):
        model.set_pseudo_labels(torch.zeros(4, 3, dtype=torch.long), (2, 3,
                                                                      4))
    for kwargs, match in [
            (dict(ks=(1, )), r'AdvCL: ks must be ints >= 2'),
            (dict(ce_weight=-1), r'AdvCL: ce_weight must be a number >= 0'),
            (dict(contrast_views=('x', )), r'contrast_views must be a subset'),
            (dict(adapter='none'), r"AdvCL: adapter must be 'bn'"),
            (dict(base_temperature=0), r'base_temperature must be a number')]:
        with pytest.raises(ValueError, match=match):
            MODELS.build(dict(type='AdvCL', algorithm=simclr_cfg(),
                              **kwargs))


# ---------------------------------------------------------- Asym-RoCL
def test_arocl_without_ip_and_hn_is_rocl():
    torch.manual_seed(0)
    arocl = build('ARoCL', simclr_cfg(T), inferior_positive=False, lamda=4.)
    rocl = MODELS.build(dict(type='RoCL', algorithm=simclr_cfg(T), lamda=4.))
    rocl.load_state_dict(arocl.state_dict())
    views = [v.double() for v in two_views()]
    arocl.double(), rocl.double()
    torch.manual_seed(1)
    a = optimised(arocl.loss(views, None))
    torch.manual_seed(1)
    b = optimised(rocl.loss(views, None))
    assert_close(a, b)


@pytest.mark.parametrize('hn', [None, dict(beta=1.0, tau_plus=0.12)])
def test_arocl_step_is_its_formula(hn, captured):
    model, _ = pair('ARoCL', simclr_cfg(T), lamda=4., stop_grad_degree=0.3,
                    adv_weight=1.5, hard_negatives=hn)
    t1, t2 = [v.double() for v in two_views()]
    losses = model.loss([t1, t2], None)
    x_adv, = captured[0]
    z = project(model, [t1, t2, x_adv])
    w, d = 1.5, 0.3
    weights = [[1, 1, w * d], [1, 1, w * d], [w * (1 - d), w * (1 - d), 1]]
    main = info_nce(z, T, stop_grad=True, pair_weights=weights,
                    hard_negatives=model.hard_negatives)
    if hn is not None:
        assert model.hard_negatives.weight_mean == 'candidate'
        assert model.hard_negatives.denominator == 'anchor'
    assert_close(losses['loss_contrast'], main)


# --------------------------------------------------------- Asym-AdvCL
def _aadvcl_weights(w, d, ip, n=4):
    weights = [[1.] * n for _ in range(n)]
    stop = [[False] * n for _ in range(n)]
    dd = d if ip else 0.
    for c in range(1, n):
        weights[0][c], weights[c][0] = 2 * w * (1 - dd), 2 * w * dd
        stop[0][c] = stop[c][0] = ip
    return weights, stop


@pytest.mark.parametrize('ip,hn', [(True, None), (False, dict(
    beta=1.0, tau_plus=0.12)), (True, dict(beta=1.0, tau_plus=0.1))])
def test_aadvcl_step_is_its_formula(ip, hn, captured):
    model, _ = pair('AAdvCL', simclr_cfg(T), ks=KS, radius=2,
                    inferior_positive=ip, stop_grad_degree=0.2,
                    adv_weight=0.7, adaptive=None, hard_negatives=hn)
    with_labels(model)
    t1, t2, x = three_views()
    losses = model.loss([t1, t2, x], samples())
    x_cl, _ = captured[0]
    z1, z2, zh = project(model, [t1, t2, high_frequency(x, 2)], 'clean')
    za, = project(model, [x_cl], 'adv')
    weights, stop = _aadvcl_weights(0.7, 0.2, ip)
    ref = supcon([za, z1, z2, zh], T, 0.07, stop_grad=stop,
                 pair_weights=weights, hard_negatives=model.hard_negatives)
    assert_close(losses['loss_contrast'], ref)
    g = grads(model, losses['loss_contrast'])
    g_ref = grads(model, ref)
    for key in g_ref:
        assert_close(g[key], g_ref[key], msg=key)
    if hn is not None:      # the official SupCon's broadcasting
        assert model.hard_negatives.row_shift
        assert model.hard_negatives.denominator == 'candidate'


def test_aadvcl_adaptive_degree(monkeypatch):
    from mmengine.logging import MessageHub
    torch.manual_seed(0)
    model = build('AAdvCL', simclr_cfg(T), ks=KS,
                  adaptive=dict(from_epoch=1, d_min=0.0))
    with_labels(model)
    hub = MessageHub.get_current_instance()
    views = [v.float() for v in three_views()]
    hub.update_info('epoch', 0)             # accumulating the average
    out = model.loss(views, samples())
    assert float(out['stop_grad_degree']) == pytest.approx(0.2)
    assert float(model.distance_count) == 4
    average = float(model.distance_sum / model.distance_count)
    assert average > 0
    hub.update_info('epoch', 1)             # annealing
    distances = []
    original = model._adaptive_degree

    def spy(x, x_cl):
        with torch.no_grad():
            feats = [F.adaptive_avg_pool2d(
                model.algorithm.backbone(v)[-1], 1).flatten(1)
                for v in (x, x_cl)]
        distances.append(float(F.pairwise_distance(*feats).mean()))
        return original(x, x_cl)

    monkeypatch.setattr(model, '_adaptive_degree', spy)
    out = model.loss(views, samples())
    mean, d = distances[0], float(out['stop_grad_degree'])
    want = 0.2 if mean > average else (average - mean) / average * 0.3 + 0.2
    assert d == pytest.approx(want, rel=1e-3)
    assert float(model.distance_count) == 4     # no more accumulation
    hub.update_info('epoch', 0)


def test_a_infonce_bad_options():
    for method, kwargs, match in [
            ('ARoCL', dict(stop_grad_degree=2), r'stop_grad_degree must be a '
             r'number in \[0, 1\]'),
            ('ARoCL', dict(hard_negatives=dict(beta=1, tau=0.1)),
             r"hard_negatives must be None or a dict of 'beta', 'tau_plus'"),
            ('ARoCL', dict(hard_negatives=dict(beta=1, tau_plus=1)),
             r'tau_plus must be in \[0, 1\)'),
            ('ARoCL', dict(adversarial_contrast=False),
             r'adversarial_contrast must be True'),
            ('AAdvCL', dict(adaptive=dict(from_epoch=-1, d_min=0.4)),
             r'adaptive must be None or dict'),
            ('AAdvCL', dict(inferior_positive=False),
             r'adaptive anneals the inferior-positive degree'),
            ('AAdvCL', dict(contrast_views=('high_frequency', )),
             r"contrast_views must hold 'adversarial'")]:
        with pytest.raises(ValueError, match=match):
            MODELS.build(dict(type=method, algorithm=simclr_cfg(), **kwargs))


def test_exports_drop_the_heads_and_every_adversarial_route(tmp_path):
    from aemim_mm.apis import export_encoder
    model = build('AAdvCL', simclr_cfg(), ks=KS)
    state = model.state_dict()
    assert any(k.startswith('pseudo_heads.') for k in state)
    assert 'distance_sum' in state
    torch.save(dict(meta=dict(epoch=1), state_dict=state),
               tmp_path / 'epoch_1.pth')
    result = export_encoder(tmp_path / 'epoch_1.pth', tmp_path / 'out',
                            formats=['mmpretrain'])
    exported = torch.load(result.paths['mmpretrain'],
                          weights_only=True)['state_dict']
    backbone = MODELS.build(copy.deepcopy(simclr_cfg()['backbone']))
    backbone.load_state_dict({k[len('backbone.'):]: v
                              for k, v in exported.items()}, strict=True)
    assert not any(is_adversarial_key(k) for k in exported)
    # and the wrapper's checkpoint loads back (heads, routes, buffers)
    again = build('AAdvCL', simclr_cfg(), ks=KS)
    again.load_state_dict(state, strict=True)
