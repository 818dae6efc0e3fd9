"""The survey's instance-wise adversaries (aemim_mm.models.adversarial_ssl):
RoCL, CLAE, ACL (DS, A2A, A2S) and BYORL on tiny SimCLR / BYOL / SimSiam.

* With the adversary off, each method's loss and every gradient equal the
  plain mmpretrain algorithm's (float64, same views).
* One step matches a reference computed here from the method's formula:
  the loss terms, which BatchNorms each forward takes, which view is
  attacked, the stop-gradients.
* The attack raises its objective, stays inside eps and the pixel box, and
  updates running statistics only where the original does.
* Bad options are refused before any work, naming the option.
"""
import copy
from typing import Dict, List

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from aemim_mm.models.adapters import adapter_route, is_adversarial_key
from aemim_mm.models.adversarial_ssl import AdversarialSSLWrapper, nt_xent
from aemim_mm.models.split_norm import eval_norms
from mmpretrain.registry import MODELS
from tiny_models import MEAN, STD
from tiny_ssl import (build, byol_cfg, export_and_load_strictly, perturb,
                      simclr_cfg, simsiam_cfg, two_views)

T = 0.5


# ------------------------------------------------------------ references
def ref_nt_xent(views: List[torch.Tensor], temperature: float,
                stop_grad: bool = False) -> torch.Tensor:
    """NT-Xent written out anchor by anchor: each anchor's positives are the
    other views of its sample, its denominator every other embedding; the
    per-anchor sum over positives, averaged over anchors."""
    flat = [(v, i) for v in range(len(views))
            for i in range(views[0].shape[0])]
    total = 0
    for v, i in flat:
        anchor = views[v][i]

        def sim(u, j):
            other = views[u][j].detach() if stop_grad else views[u][j]
            return anchor @ other / temperature

        denom = torch.logsumexp(torch.stack(
            [sim(u, j) for u, j in flat if (u, j) != (v, i)]), 0)
        total = total + sum(denom - sim(u, i)
                            for u in range(len(views)) if u != v)
    return total / len(flat)


def project(model, views, route='clean'):
    """The algorithm's normalised projections of ``views``, one forward."""
    algo = model.algorithm
    with adapter_route(model, route):
        z = algo.neck(algo.backbone(torch.cat(views)))[0]
    z = z / (z.norm(dim=1, keepdim=True) + 1e-10)
    return list(z.split(views[0].shape[0]))


def grads(model: torch.nn.Module, loss: torch.Tensor,
          prefix: str = '') -> Dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {prefix + n: p.grad.clone() for n, p in model.named_parameters()
            if p.grad is not None}


def optimised(losses: Dict[str, torch.Tensor]) -> torch.Tensor:
    return sum(v for k, v in losses.items() if 'loss' in k)


@pytest.fixture
def captured(monkeypatch) -> List:
    """The adversarial views every ``craft`` call returns, in order."""
    found = []
    original = AdversarialSSLWrapper.craft

    def spy(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        found.append([v.detach().clone() for v in result.views])
        return result

    monkeypatch.setattr(AdversarialSSLWrapper, 'craft', spy)
    return found


def double_views(seed: int = 0) -> List[torch.Tensor]:
    return [v.double() for v in two_views(4, seed)]


def pair(method: str, cfg: dict, **kwargs):
    """The method (float64, distinct weights) and the plain algorithm with
    the same weights."""
    torch.manual_seed(0)
    model = build(method, cfg, **kwargs)
    perturb(model)
    plain = MODELS.build(copy.deepcopy(cfg))
    keys = plain.state_dict().keys()      # (a method's heads are its own)
    plain.load_state_dict({k: v for k, v in model.state_dict().items()
                           if k in keys and not is_adversarial_key(k)})
    return model.double(), plain.double()


# --------------------------------------------------------- nt_xent itself
@pytest.mark.parametrize('num_views', [2, 3])
@pytest.mark.parametrize('stop_grad', [False, True])
def test_nt_xent_matches_the_written_out_formula(num_views, stop_grad):
    gen = torch.Generator().manual_seed(0)
    views = [F.normalize(torch.randn(4, 8, generator=gen, dtype=torch.float64)
                         .requires_grad_(), dim=1) for _ in range(num_views)]
    ours = nt_xent(views, T, stop_grad)
    ref = ref_nt_xent(views, T, stop_grad)
    assert_close(ours, ref)
    leaves = [v for v in views]
    g_ours = torch.autograd.grad(ours, leaves, retain_graph=True)
    g_ref = torch.autograd.grad(ref, leaves)
    for a, b in zip(g_ours, g_ref):
        assert_close(a, b)


def test_two_view_nt_xent_is_mmpretrains_simclr_loss():
    model, plain = pair('RoCL', simclr_cfg(T), adversarial_contrast=False,
                        lamda=None, stop_grad_others=False)
    views = double_views()
    z1, z2 = model.ssl.embed(views)
    assert_close(model.ssl.contrast([z1, z2]),
                 plain.loss(views, None)['loss'])


# ------------------------------------------------------- adversary off
OFF = [
    ('RoCL', simclr_cfg(T), dict(adversarial_contrast=False, lamda=None,
                                 stop_grad_others=False)),
    ('CLAE', simclr_cfg(T), dict(alpha=0.)),
    ('ACL', simclr_cfg(T), dict(adv_weight=0.)),
    ('BYORL', byol_cfg(), dict(attack=dict(type='PixelPGD', eps=0,
                                           steps=2))),
    ('BYORL', simsiam_cfg(), dict(attack=dict(type='PixelPGD', eps=0,
                                              steps=2))),
]


@pytest.mark.parametrize('method,cfg,kwargs', OFF,
                         ids=[f'{m}-{c["type"]}' for m, c, _ in OFF])
def test_adversary_off_equals_the_plain_algorithm(method, cfg, kwargs):
    model, plain = pair(method, cfg, **kwargs)
    views = double_views()
    ours = optimised(model.loss(views, None))
    theirs = plain.loss([v.clone() for v in views], None)['loss']
    assert_close(ours, theirs)
    g_ours = grads(model, ours)
    g_plain = grads(plain, theirs, prefix='algorithm.')
    clean = {k: v for k, v in g_ours.items() if not is_adversarial_key(k)}
    assert sorted(clean) == sorted(g_plain)
    for key in g_plain:
        assert_close(clean[key], g_plain[key], msg=key)
    for key, value in g_ours.items():       # the twins learn nothing
        if is_adversarial_key(key):
            assert_close(value, torch.zeros_like(value), msg=key)


# ------------------------------------------------- one step = the formula
def test_rocl_step_is_its_formula(captured):
    model, _ = pair('RoCL', simclr_cfg(T), lamda=4.)
    t1, t2 = double_views()
    losses = model.loss([t1, t2], None)
    x_adv, = captured[0]
    z1, z2, za = project(model, [t1, t2, x_adv])
    r_adv, r2 = project(model, [x_adv, t2])
    ref = dict(loss_contrast=ref_nt_xent([z1, z2, za], T, stop_grad=True),
               loss_reg=ref_nt_xent([r_adv, r2], T, stop_grad=True) / 4.)
    for key in ref:
        assert_close(losses[key], ref[key], msg=key)
    g = grads(model, optimised(losses))
    g_ref = grads(model, optimised(ref))
    for key in g_ref:
        assert_close(g[key], g_ref[key], msg=key)
    # view 1 was attacked, towards view 2, in eval-mode BatchNorm
    with eval_norms(model.algorithm):
        def objective(x):
            return ref_nt_xent(project(model, [x, t2]), T, True)
        assert objective(x_adv) > objective(t1)


def test_clae_step_is_its_formula(captured):
    model, _ = pair('CLAE', simclr_cfg(T), alpha=0.7)
    t1, t2 = double_views()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    losses = model.loss([t1, t2], None)
    x_adv, = captured[0]
    # one step of eps from t(x) (no random start); exact FGSM: below
    delta = (x_adv - t1) * torch.tensor(STD, dtype=t1.dtype).view(1, 3, 1, 1)
    assert_close(delta.abs().max(), torch.tensor(3.825, dtype=t1.dtype))
    z1, z2 = project(model, [t1, t2], 'clean')
    za, = project(model, [x_adv], 'adv')
    ref = dict(loss_clean=ref_nt_xent([z1, z2], T),
               loss_adv=0.7 * ref_nt_xent([z1, za], T))
    for key in ref:
        assert_close(losses[key], ref[key], msg=key)
    g = grads(model, optimised(losses))
    g_ref = grads(model, optimised(ref))
    for key in g_ref:
        assert_close(g[key], g_ref[key], msg=key)
    # the adversarial term trains the auxiliary BatchNorms, the clean term
    # the main ones; the attack ran in training mode through the auxiliary
    # BatchNorms: their running statistics moved with momentum 0.01, the
    # main ones' with their own
    assert any(is_adversarial_key(k) for k in g)
    state = model.state_dict()
    key = 'backbone.bn1.adv_running_mean'
    assert not torch.equal(state[key], before[key])


def test_clae_step_is_fgsm_of_its_objective():
    model, _ = pair('CLAE', simclr_cfg(T))
    t1, _ = double_views()
    mean = torch.tensor(MEAN, dtype=t1.dtype).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=t1.dtype).view(1, 3, 1, 1)
    ref_model = copy.deepcopy(model)
    adv = model.craft([t1], lambda v: model.ssl.contrast(
        [model.ssl.embed([t1])[0], model.ssl.embed(v)[0]]), route='adv')
    x = t1.clone().requires_grad_()
    with ref_model.route('adv'):
        obj = ref_model.ssl.contrast([ref_model.ssl.embed([t1])[0],
                                      ref_model.ssl.embed([x])[0]])
    grad, = torch.autograd.grad(obj, x)
    ref = t1 + 3.825 / std * grad.sign()
    ref = torch.maximum(torch.minimum(ref, (255 - mean) / std),
                        (0 - mean) / std)
    assert_close(adv.views[0], ref)


@pytest.mark.parametrize('variant', ['DS', 'A2A', 'A2S'])
def test_acl_step_is_its_formula(variant, captured):
    kwargs = dict(variant=variant)
    if variant != 'DS':
        kwargs['adapter'] = 'none'
    model, _ = pair('ACL', simclr_cfg(T), **kwargs)
    t1, t2 = double_views()
    losses = model.loss([t1, t2], None)
    attacked = captured[0]
    if variant == 'A2S':
        x2, = attacked
        z1, za2 = project(model, [t1, x2])
        ref = dict(loss=ref_nt_xent([z1, za2], T))
    else:
        x1, x2 = attacked
        route = 'adv' if variant == 'DS' else 'clean'
        a1, a2 = project(model, [x1, x2], route)
        if variant == 'A2A':
            ref = dict(loss=ref_nt_xent([a1, a2], T))
        else:
            z1, z2 = project(model, [t1, t2], 'clean')
            ref = dict(loss_clean=0.5 * ref_nt_xent([z1, z2], T),
                       loss_adv=0.5 * ref_nt_xent([a1, a2], T))
    for key in ref:
        assert_close(losses[key], ref[key], msg=key)
    g = grads(model, optimised(losses))
    g_ref = grads(model, optimised(ref))
    for key in g_ref:
        assert_close(g[key], g_ref[key], msg=key)


@pytest.mark.parametrize('cfg', [byol_cfg(), simsiam_cfg()],
                         ids=['BYOL', 'SimSiam'])
def test_byorl_step_is_its_formula(cfg, captured):
    model, _ = pair('BYORL', cfg)
    algo = model.algorithm
    t1, t2 = double_views()
    reference = copy.deepcopy(model)
    losses = model.loss([t1, t2], None)
    x_adv, = captured[0]
    # the reference: the algorithm's loss with t(x) -> x_adv
    ralgo = reference.algorithm
    if cfg['type'] == 'BYOL':
        with torch.no_grad():
            ralgo.target_net.update_parameters(
                torch.nn.Sequential(ralgo.backbone, ralgo.neck))
        p_adv = ralgo.neck(ralgo.backbone(x_adv))[0]
        p2 = ralgo.neck(ralgo.backbone(t2))[0]
        with torch.no_grad():
            k_adv = ralgo.target_net(x_adv)[0]
            k2 = ralgo.target_net(t2)[0]
        ref = 2 * (ralgo.head.loss(p_adv, k2) + ralgo.head.loss(p2, k_adv))
    else:
        z_adv = ralgo.neck(ralgo.backbone(x_adv))[0]
        z2 = ralgo.neck(ralgo.backbone(t2))[0]
        ref = 0.5 * (ralgo.head.loss(z_adv, z2) + ralgo.head.loss(z2, z_adv))
    assert_close(losses['loss'], ref)
    g = grads(model, losses['loss'])
    g_ref = grads(reference, ref)
    for key in g_ref:
        assert_close(g[key], g_ref[key], msg=key)
    assert algo is model.algorithm


# ----------------------------------------------------- attack properties
ATTACKS = [
    ('RoCL', simclr_cfg(T), {}, 'eval'),
    ('CLAE', simclr_cfg(T), {}, 'train'),
    ('ACL', simclr_cfg(T), {}, 'eval'),
    ('BYORL', byol_cfg(), {}, 'frozen'),
    ('BYORL', simsiam_cfg(), {}, 'frozen'),
]


@pytest.mark.parametrize('method,cfg,kwargs,norms', ATTACKS,
                         ids=[f'{a[0]}-{a[1]["type"]}' for a in ATTACKS])
def test_attack_stays_in_budget_and_box_and_keeps_statistics(
        method, cfg, kwargs, norms, captured):
    torch.manual_seed(0)
    model = build(method, cfg, **kwargs)
    assert model.ATTACK_NORMS == norms
    views = two_views(4)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    stats = {k: v.clone() for k, v in model.state_dict().items()
             if 'running' in k}

    def objective(v):      # view 1 against view 2, as the methods attack
        if hasattr(model.ssl, 'contrast'):
            return model.ssl.contrast(model.ssl.embed([v[0], views[1]]))
        return model.ssl.regression(model.ssl.embed(v[0]),
                                    model.ssl.embed(views[1]).detach())

    adv = model.craft(views[:1], objective)
    after = {k: v for k, v in model.state_dict().items() if 'running' in k}
    changed = [k for k in stats if not torch.equal(stats[k], after[k])]
    # RoCL / ACL (eval) and BYORL (frozen) update none; CLAE's attack runs
    # in training mode, as the original's
    assert bool(changed) is (norms == 'train'), changed
    pixels = adv.views[0] * std + mean
    assert pixels.min() >= -1e-3 and pixels.max() <= 255 + 1e-3
    linf = ((adv.views[0] - views[0]) * std).abs().flatten(1).amax(1)
    assert linf.max() <= model.attack.eps + 1e-3
    assert_close(adv.log['adv_linf'], linf.mean())
    with model._attack_norms():         # the objective rose
        assert objective(adv.views) > objective(views[:1])


# ---------------------------------------------------------- bad options
@pytest.mark.parametrize('method,cfg,kwargs,error,match', [
    ('RoCL', byol_cfg(), {}, TypeError,
     r"RoCL is defined for the algorithms \['SimCLR'\] \(exact type\), got "
     r"BYOL"),
    ('BYORL', simclr_cfg(), {}, TypeError,
     r"BYORL is defined for the algorithms \['BYOL', 'SimSiam'\]"),
    ('RoCL', simclr_cfg(), dict(attack=dict(type='PixelPGD', eps=-1)),
     ValueError, r'eps must be a number in \[0, 255\]'),
    ('RoCL', simclr_cfg(), dict(lamda=0), ValueError,
     r'RoCL: lamda must be None or a number > 0'),
    ('CLAE', simclr_cfg(), dict(alpha=-1), ValueError,
     r'CLAE: alpha must be a number >= 0'),
    ('ACL', simclr_cfg(), dict(variant='X'), ValueError,
     r"ACL: variant must be one of \('DS', 'A2A', 'A2S'\)"),
    ('ACL', simclr_cfg(), dict(adapter='none'), ValueError,
     r"ACL: variant 'DS' needs adapter='bn'"),
    ('ACL', simclr_cfg(), dict(adv_weight=2), ValueError,
     r'ACL: adv_weight must be a number in \[0, 1\]'),
    ('RoCL', simclr_cfg(), dict(adapter='ln'), ValueError,
     r"RoCL: adapter must be one of \('none', 'bn'\)"),
    ('RoCL', simclr_cfg(), dict(adv_bn_momentum=0.01), ValueError,
     r"adv_bn_momentum needs split BatchNorms"),
])
def test_bad_options_are_refused_naming_them(method, cfg, kwargs, error,
                                             match):
    with pytest.raises(error, match=match):
        MODELS.build(dict(type=method, algorithm=cfg, **kwargs))


def test_feature_distance_attack_is_a_pixel_pgd_too():
    """AEMIM's attack subclasses the shared one (any PixelPGD is taken)."""
    model = MODELS.build(dict(type='RoCL', algorithm=simclr_cfg(),
                              attack=dict(type='FeatureDistancePGD')))
    assert model.attack.eps == 2


def test_views_must_be_a_list_of_views():
    model = build('RoCL', simclr_cfg())
    with pytest.raises(ValueError, match=r'takes a list of views of one '
                       r'shape \(a MultiView pipeline\)'):
        model.loss(two_views()[0], None)


# --------------------------------------------------------------- export
@pytest.mark.parametrize('method,cfg,kwargs', [
    ('RoCL', simclr_cfg(), {}), ('CLAE', simclr_cfg(), {}),
    ('ACL', simclr_cfg(), {}), ('BYORL', byol_cfg(), {}),
    ('BYORL', simsiam_cfg(), {})],
    ids=['RoCL', 'CLAE', 'ACL', 'BYORL-BYOL', 'BYORL-SimSiam'])
def test_encoder_exports_and_loads_strictly_into_resnet_cifar(
        method, cfg, kwargs, tmp_path):
    result = export_and_load_strictly(method, cfg, kwargs, tmp_path)
    state = result.state
    dropped = {r: len(k) for r, k in result.dropped.items()}
    assert dropped.get('adversarial adapters (adv_*)', 0) == sum(
        is_adversarial_key(k) for k in state)
    if cfg['type'] == 'BYOL':
        assert 'momentum / target network (target_net.*, encoder_k.*, ' \
            'momentum_encoder.*)' in dropped
