"""The survey's memory-based and feature-level adversaries
(aemim_mm.models.adversarial_ssl): AdCo, IFM, MoCHi and HCL on tiny MoCo v2
and SimCLR, CaCo on a tiny MoCo v3, in float64.

* With the adversary off (AdCo: memory learning rate 0 and the bank as
  MoCo's queue; IFM: eps 0; MoCHi: no synthetic negative; HCL: beta 0 and
  tau+ 0), the loss and every gradient equal the plain algorithm's, and so
  do the queue and the key encoder after the step; CaCo with a frozen bank
  holding the batch's keys is MoCo v3.
* One step equals the method's equations written out here: AdCo's
  analytic bank update (the official closed form, with momentum and weight
  decay), CaCo's cooperative-adversarial one, IFM's shifted logits,
  MoCHi's mixing, normalisation and counts, HCL's weights (which carry
  gradient).
* Bad options are refused before any work, naming the option.
"""
import copy
import math
from typing import Dict, List

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from aemim_mm.models.adversarial_ssl import hcl_loss
from aemim_mm.models.randomness import MIX, SampleRandomness
from mmpretrain.registry import MODELS
from tiny_ssl import (build, byol_cfg, export_and_load_strictly, moco_cfg,
                      mocov3_cfg, perturb, simclr_cfg, two_views)

T = 0.2
SEED = 7


# ---------------------------------------------------------------- helpers
def double_views(seed: int = 0) -> List[torch.Tensor]:
    return [v.double() for v in two_views(4, seed)]


def pair(method: str, cfg: dict, **kwargs):
    """The method (float64, distinct weights) and the plain algorithm with
    the same weights, queue and key encoder."""
    torch.manual_seed(0)
    model = build(method, cfg, **kwargs)
    perturb(model)
    plain = MODELS.build(copy.deepcopy(cfg))
    keys = plain.state_dict().keys()
    plain.load_state_dict({k: v for k, v in model.state_dict().items()
                           if k in keys})
    return model.double(), plain.double()


def optimised(losses: Dict[str, torch.Tensor]) -> torch.Tensor:
    return sum(v for k, v in losses.items() if 'loss' in k)


def grads(model: nn.Module, loss: torch.Tensor,
          prefix: str = '') -> Dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {prefix + n: p.grad.clone() for n, p in model.named_parameters()
            if p.grad is not None}


def run(model: nn.Module, views, fn) -> torch.Tensor:
    """``fn(views)`` with MoCo's batch shuffle drawn from a fixed seed."""
    torch.manual_seed(SEED)
    return fn([v.clone() for v in views])


def assert_same_step(model, plain, ours, theirs) -> None:
    """Equal losses, gradients, queues and key encoders."""
    assert_close(ours, theirs)
    g_ours = grads(model, ours)
    g_plain = grads(plain, theirs, prefix='algorithm.')
    assert sorted(g_ours) == sorted(g_plain)
    for key in g_plain:
        assert_close(g_ours[key], g_plain[key], msg=key)
    mine, theirs_state = model.algorithm.state_dict(), plain.state_dict()
    for key, value in theirs_state.items():     # queue, pointer, encoder_k
        assert_close(mine[key], value, msg=key)


def query_and_keys(model, views):
    """MoCo's normalised query of view 1 and key of view 2 (the key
    encoder as it is now), from mmpretrain's modules."""
    algo = model.algorithm
    q = F.normalize(algo.neck(algo.backbone(views[0]))[0], dim=1)
    with torch.no_grad():
        k = F.normalize(algo.encoder_k(views[1])[0], dim=1)
    return q, k


def simclr_pairs(model, views):
    """SimCLR's normalised projections of both views (one forward), as
    the HCL code's ``out_1`` and ``out_2``."""
    algo = model.algorithm
    z = algo.neck(algo.backbone(torch.cat(views)))[0]
    z = z / (z.norm(dim=1, keepdim=True) + 1e-10)
    return z.split(views[0].shape[0])


def ce(pos: torch.Tensor, neg: torch.Tensor, temperature: float,
       label: int = 0) -> torch.Tensor:
    """Mean cross-entropy of ``[pos, neg] / T`` with ``label``, row by
    row."""
    rows = []
    for p, n in zip(pos, neg):
        logits = torch.cat([p.reshape(-1), n]) / temperature
        rows.append(torch.logsumexp(logits, 0) - logits[label])
    return torch.stack(rows).mean()


def row_ce(logits: torch.Tensor, labels: torch.Tensor,
           temperature: float) -> torch.Tensor:
    """Mean cross-entropy of ``logits / T`` with a label per row, row by
    row."""
    return torch.stack([
        torch.logsumexp(row / temperature, 0) - row[int(y)] / temperature
        for row, y in zip(logits, labels)]).mean()


# ------------------------------------------------------- adversary off
OFF = [
    ('IFM', moco_cfg(temperature=T), dict(eps=0.)),
    ('IFM', simclr_cfg(0.5), dict(eps=0.)),
    ('HCL', simclr_cfg(0.5), dict(beta=0., tau_plus=0.)),
    ('HCL', moco_cfg(temperature=T), dict(beta=0., tau_plus=0.)),
    ('MoCHi', moco_cfg(temperature=T), dict(num_hard=4, num_mixed=0,
                                            num_query_mixed=0)),
    ('AdCo', moco_cfg(temperature=T), dict(memory_lr=0., fill=False,
                                           batch_keys_as_negatives=False)),
]


@pytest.mark.parametrize('method,cfg,kwargs', OFF,
                         ids=[f'{m}-{c["type"]}' for m, c, _ in OFF])
def test_adversary_off_equals_the_plain_algorithm(method, cfg, kwargs):
    model, plain = pair(method, cfg, **kwargs)
    views = double_views()
    ours = optimised(run(model, views, lambda v: model.loss(v, None)))
    theirs = run(plain, views, lambda v: plain.loss(v, None)['loss'])
    if method == 'AdCo':        # the bank is not a queue: put the keys in
        # as MoCo did, to compare the rest of the state
        model.algorithm.queue.copy_(plain.queue)
        model.algorithm.queue_ptr.copy_(plain.queue_ptr)
    assert_same_step(model, plain, ours, theirs)


def test_adco_fill_is_mocos_training_then_resets_the_key_encoder():
    """The official ``ad_init``: while the bank fills, AdCo's step is
    MoCo's (loss, gradients, bank = MoCo's queue); when it is full, the key
    encoder becomes the query encoder; then the bank learns."""
    cfg = moco_cfg(queue_len=8, temperature=T)
    model, plain = pair('AdCo', cfg, memory_lr=3.)
    assert int(model.bank_filled) == 0
    for it in range(2):                         # 8 columns / batch 4
        views = double_views(it)
        ours = optimised(run(model, views, lambda v: model.loss(v, None)))
        theirs = run(plain, views, lambda v: plain.loss(v, None)['loss'])
        if it == 0:
            assert_same_step(model, plain, ours, theirs)
    assert int(model.bank_filled) == 8
    assert_close(model.bank, plain.queue)       # filled like a queue
    query = nn.Sequential(model.algorithm.backbone, model.algorithm.neck)
    for a, b in zip(model.algorithm.encoder_k.module.parameters(),
                    query.parameters()):
        assert torch.equal(a, b)
    bank = model.bank.clone()
    optimised(run(model, double_views(2), lambda v: model.loss(v, None)))
    assert not torch.equal(model.bank, bank)    # adversarial from now on
    assert model.bank_velocity.abs().sum() > 0


# ------------------------------------------- one step = the equations
def official_bank_update(W, v, q, l_pos, T_m, lr, momentum, wd):
    """AdCo's memory step in its official closed form
    (``training/train.py: update_network``): the ascent direction of the
    memory cross-entropy, with momentum and weight decay."""
    W_hat = W / W.norm(dim=0)
    l_neg = q @ W_hat
    logits = torch.cat([l_pos, l_neg], dim=1) / T_m
    p = torch.softmax(logits, dim=1)[:, l_pos.shape[1]:]
    g = q.t() @ p / q.shape[0] - (p * l_neg).mean(0) * W_hat
    g = -g / W.norm(dim=0) / T_m
    v = momentum * v + g + wd * W
    return W - lr * v, v


@pytest.mark.parametrize('batch_keys', [True, False])
def test_adco_step_is_its_equations(batch_keys):
    opts = dict(memory_lr=3., memory_temperature=0.05, memory_momentum=0.9,
                memory_weight_decay=1e-2, fill=False,
                batch_keys_as_negatives=batch_keys)
    model, _ = pair('AdCo', moco_cfg(temperature=T), **opts)
    v = torch.zeros_like(model.bank)
    for it in range(2):                     # the second step has momentum
        views = double_views(it)
        W = model.bank.clone()
        losses = run(model, views, lambda x: model.loss(x, None))
        q, k = query_and_keys(model, views)  # as in the step (no update)
        if batch_keys:
            l_pos, label = q @ k.t(), torch.arange(4)
        else:
            l_pos, label = (q * k).sum(1, keepdim=True), torch.zeros(4).long()
        logits = torch.cat([l_pos, q @ (W / W.norm(dim=0))], dim=1)
        assert_close(losses['loss'], F.cross_entropy(logits / T, label))
        l_neg = q @ (W / W.norm(dim=0))
        assert_close(losses['loss'], torch.stack([   # row by row
            ce(l_pos[i:i + 1], l_neg[i:i + 1], T, label=int(label[i]))
            for i in range(4)]).mean())
        want, v = official_bank_update(
            W, v, q.detach(), l_pos.detach(), opts['memory_temperature'],
            opts['memory_lr'], opts['memory_momentum'],
            opts['memory_weight_decay'])
        assert_close(model.bank, want)
        assert_close(model.bank_velocity, v)
        assert_close(losses['adv_memory_objective'], F.cross_entropy(
            logits.detach() / opts['memory_temperature'], label))


def test_adco_bank_state_survives_a_reload():
    model = build('AdCo', moco_cfg(queue_len=8), memory_lr=1.)
    for it in range(3):
        model.loss(two_views(4, it), None)
    state = model.state_dict()
    assert {'bank_velocity', 'bank_filled'} <= set(state)
    fresh = build('AdCo', moco_cfg(queue_len=8), memory_lr=1.)
    assert fresh.filled == 0
    fresh.load_state_dict(state)
    assert fresh.filled == 8                   # read again after the load
    assert torch.equal(fresh.bank, model.bank)
    assert torch.equal(fresh.bank_velocity, model.bank_velocity)


@pytest.mark.parametrize('algo', ['MoCo', 'SimCLR'])
def test_ifm_step_is_its_shifted_logits(algo):
    eps, alpha = 0.1, 0.5
    cfg = moco_cfg(temperature=T) if algo == 'MoCo' else simclr_cfg(T)
    model, _ = pair('IFM', cfg, eps=eps, alpha=alpha)
    views = double_views()
    if algo == 'MoCo':
        queue = model.algorithm.queue.clone()
        losses = run(model, views, lambda v: model.loss(v, None))
        q, k = query_and_keys(model, views)
        pos, neg = (q * k).sum(1, keepdim=True), q @ queue
    else:
        losses = model.loss(views, None)
        z1, z2 = simclr_pairs(model, views)
        z = torch.cat([z1, z2])
        pos = torch.cat([(z1 * z2).sum(1), (z1 * z2).sum(1)])[:, None]
        neg = torch.stack([
            torch.cat([z[i] @ z[j][None].t() for j in range(8)
                       if j not in (i, (i + 4) % 8)]) for i in range(8)])
    clean = ce(pos, neg, T)
    adv = ce(pos - eps, neg + eps, T)
    assert_close(losses['loss_clean'], clean / (1 + alpha))
    assert_close(losses['loss_adv'], alpha * adv / (1 + alpha))
    assert adv > clean                          # the shift is adversarial


def official_hcl(pos_sim, neg_sim, temperature, beta, tau_plus):
    """HCL's estimator written row by row (``image/main.py: criterion``):
    weights w_j = neg_j^beta / mean(neg^beta), the debiased Ng, the clamp."""
    losses = []
    for p, n in zip(pos_sim, neg_sim):
        pos = torch.exp(p.reshape(()) / temperature)
        neg = torch.exp(n / temperature)
        num = neg.numel()
        w = neg ** beta / (neg ** beta).mean()
        ng = (-tau_plus * num * pos + (w * neg).sum()) / (1 - tau_plus)
        ng = torch.maximum(ng, ng.new_tensor(num * math.exp(-1 / temperature)))
        losses.append(-torch.log(pos / (pos + ng)))
    return torch.stack(losses).mean()


@pytest.mark.parametrize('beta,tau_plus', [(1.0, 0.1), (0.5, 0.0),
                                           (2.0, 0.3)])
def test_hcl_loss_is_its_estimator_and_weights_carry_gradient(beta,
                                                              tau_plus):
    gen = torch.Generator().manual_seed(0)
    pos = (torch.rand(6, 1, generator=gen, dtype=torch.float64) * 2 - 1
           ).requires_grad_()
    neg = (torch.rand(6, 10, generator=gen, dtype=torch.float64) * 2 - 1
           ).requires_grad_()
    ours = hcl_loss(pos, neg, 0.5, beta, tau_plus)
    ref = official_hcl(pos, neg, 0.5, beta, tau_plus)
    assert_close(ours, ref)
    for a, b in zip(torch.autograd.grad(ours, [pos, neg]),
                    torch.autograd.grad(ref, [pos, neg])):
        assert_close(a, b)
    # the weights are not constants: detaching them changes the gradient
    def detached(p, n):
        e = torch.exp(n / 0.5)
        w = (e ** beta / (e ** beta).mean(1, keepdim=True)).detach()
        ng = (-tau_plus * n.shape[1] * torch.exp(p[:, 0] / 0.5)
              + (w * e).sum(1)) / (1 - tau_plus)
        ng = ng.clamp(min=n.shape[1] * math.exp(-1 / 0.5))
        pe = torch.exp(p[:, 0] / 0.5)
        return (-torch.log(pe / (pe + ng))).mean()
    g_det = torch.autograd.grad(detached(pos, neg), neg)[0]
    g_ours = torch.autograd.grad(hcl_loss(pos, neg, 0.5, beta, tau_plus),
                                 neg)[0]
    assert not torch.allclose(g_det, g_ours)


def test_hcl_on_simclr_is_the_official_criterion():
    model, _ = pair('HCL', simclr_cfg(0.5), beta=1.0, tau_plus=0.1)
    views = double_views()
    loss = model.loss(views, None)['loss']
    out_1, out_2 = simclr_pairs(model, views)
    # the official criterion: both views as anchors, negatives all but the
    # anchor and its positive (get_negative_mask)
    out = torch.cat([out_1, out_2])
    sim = out @ out.t()
    n = out_1.shape[0]
    neg = torch.stack([sim[i][[j for j in range(2 * n)
                               if j not in (i % n, i % n + n)]]
                       for i in range(2 * n)])
    pos = (out_1 * out_2).sum(1).repeat(2)[:, None]
    assert_close(loss, official_hcl(pos, neg, 0.5, 1.0, 0.1))


def test_mochi_synthesizes_its_mixtures_and_appends_them():
    """N hardest queue entries per query; s mixtures of two of them, s'
    of the query and one (query weight <= 0.5); unit norm; constants; not
    enqueued."""
    H, s, s2 = 6, 5, 3
    model, _ = pair('MoCHi', moco_cfg(temperature=T), num_hard=H,
                    num_mixed=s, num_query_mixed=s2)
    model.sample_seed = 11
    views = double_views()
    queue = model.algorithm.queue.clone()
    ptr = int(model.algorithm.queue_ptr)
    losses = run(model, views, lambda v: model.loss(v, None))
    q, k = query_and_keys(model, views)
    draws = SampleRandomness(4, q.device, 11).rand((3, s + s2), MIX)
    row_syn = []
    for n in range(4):
        order = (q[n].detach() @ queue).argsort(descending=True)[:H]
        hard = queue.t()[order]
        first = (draws[n, 0] * H).long()
        second = (draws[n, 1] * H).long()
        synthetic = []
        for j in range(s):
            a = draws[n, 2, j]
            synthetic.append(F.normalize(
                a * hard[first[j]] + (1 - a) * hard[second[j]], dim=0))
        for j in range(s, s + s2):
            b = draws[n, 2, j] * 0.5
            assert b <= 0.5
            synthetic.append(F.normalize(
                b * q[n].detach() + (1 - b) * hard[second[j]], dim=0))
        synthetic = torch.stack(synthetic)
        assert_close(synthetic.norm(dim=1), torch.ones(s + s2,
                                                       dtype=q.dtype))
        row_syn.append(synthetic)
    syn = torch.stack(row_syn)                              # (N, s+s', D)
    neg = torch.cat([q @ queue, torch.einsum('nd,nsd->ns', q, syn)], dim=1)
    pos = (q * k).sum(1, keepdim=True)
    ref = ce(pos, neg, T)
    assert_close(losses['loss'], ref)
    # the synthetic negatives are constants: the gradient is the one of
    # the written-out loss with detached mixtures
    params = [p for p in model.parameters() if p.requires_grad]
    for a, b in zip(torch.autograd.grad(losses['loss'], params,
                                        retain_graph=True),
                    torch.autograd.grad(ref, params)):
        assert_close(a, b)
    # and never enqueued
    after = model.algorithm.queue
    assert int(model.algorithm.queue_ptr) == (ptr + 4) % 32
    assert_close(after[:, ptr:ptr + 4].t(), k)


# ---------------------------------------------------------- bad options
@pytest.mark.parametrize('method,cfg,kwargs,error,match', [
    ('AdCo', simclr_cfg(), {}, TypeError,
     r"AdCo is defined for the algorithms \['MoCo'\] \(exact type\), got "
     r"SimCLR"),
    ('MoCHi', simclr_cfg(), {}, TypeError,
     r"MoCHi is defined for the algorithms \['MoCo'\]"),
    ('IFM', byol_cfg(), {}, TypeError,
     r"IFM is defined for the algorithms \['MoCo', 'SimCLR'\]"),
    ('HCL', byol_cfg(), {}, TypeError,
     r"HCL is defined for the algorithms \['SimCLR', 'MoCo'\]"),
    ('IFM', moco_cfg(), dict(eps=-0.1), ValueError,
     r'IFM: eps must be a number >= 0, got -0.1'),
    ('IFM', moco_cfg(), dict(alpha=-1), ValueError,
     r'IFM: alpha must be a number >= 0'),
    ('HCL', simclr_cfg(), dict(beta=-1), ValueError,
     r'HCL: beta must be a number >= 0'),
    ('HCL', simclr_cfg(), dict(tau_plus=1.0), ValueError,
     r'HCL: tau_plus must be a number in \[0, 1\)'),
    ('MoCHi', moco_cfg(queue_len=32), dict(num_hard=64), ValueError,
     r'MoCHi: num_hard must be an int in \[2, 32\] \(the queue length\)'),
    ('MoCHi', moco_cfg(), dict(num_mixed=-1), ValueError,
     r'MoCHi: num_mixed must be an int >= 0'),
    ('MoCHi', moco_cfg(), dict(max_query_weight=1.5), ValueError,
     r'MoCHi: max_query_weight must be in \[0, 1\]'),
    ('AdCo', moco_cfg(), dict(memory_temperature=0), ValueError,
     r'AdCo: memory_temperature must be a number > 0, got 0'),
    ('AdCo', moco_cfg(), dict(memory_lr=-1), ValueError,
     r'AdCo: memory_lr must be a number >= 0'),
    ('AdCo', moco_cfg(), dict(memory_momentum=1.5), ValueError,
     r'AdCo: memory_momentum must be a number >= 0 and <= 1'),
    ('AdCo', moco_cfg(), dict(fill=1), ValueError,
     r'AdCo: fill must be a bool'),
    ('IFM', moco_cfg(temperature=-0.2), {}, ValueError,
     r'IFM: the head\'s temperature \(algorithm.head.temperature\) must be '
     r'a number > 0, got -0.2'),
    ('HCL', simclr_cfg(temperature=0), {}, ValueError,
     r'HCL: the head\'s temperature'),
])
def test_bad_options_are_refused_naming_them(method, cfg, kwargs, error,
                                             match):
    with pytest.raises(error, match=match):
        MODELS.build(dict(type=method, algorithm=cfg, **kwargs))


@pytest.mark.parametrize('method,kwargs', [
    ('IFM', {}), ('HCL', {}), ('MoCHi', dict(num_hard=4))])
def test_queue_not_a_multiple_of_the_batch_is_refused_before_any_work(
        method, kwargs):
    model = build(method, moco_cfg(queue_len=30), **kwargs)
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match=r'MoCo: queue_len \(30\) must be a '
                       r'multiple of the global batch \(4 x 1 processes = '
                       r'4\)'):
        model.loss(two_views(4), None)
    for key, value in model.state_dict().items():    # nothing moved
        assert torch.equal(value, before[key]), key


# --------------------------------------------------------------- export
@pytest.mark.parametrize('method,cfg,kwargs', [
    ('AdCo', moco_cfg(), {}), ('IFM', moco_cfg(), {}),
    ('MoCHi', moco_cfg(), dict(num_hard=4)), ('HCL', simclr_cfg(), {}),
    ('CaCo', mocov3_cfg(), dict(bank_size=8))],
    ids=['AdCo', 'IFM', 'MoCHi', 'HCL', 'CaCo'])
def test_encoder_exports_and_loads_strictly_into_resnet_cifar(
        method, cfg, kwargs, tmp_path):
    result = export_and_load_strictly(method, cfg, kwargs, tmp_path)
    dropped = {r for r in result.dropped}
    if cfg['type'] == 'MoCo':
        assert 'negative queue (queue, queue_ptr)' in dropped
        assert any('momentum / target network' in r for r in dropped)


# ------------------------------------------------------------------ CaCo
def official_caco_update(W, v, pairs, T_m, lr, momentum):
    """CaCo's memory step in its official closed form
    (``training/train_caco.py: update_sym_network``): per view, the
    softmax at T_m with 1 - p at the positive, the tangential direction,
    summed over the views; momentum, no weight decay."""
    W_hat = W / W.norm(dim=0)
    g = 0
    for q, pos in pairs:
        logits = q @ W_hat
        p = torch.softmax(logits / T_m, dim=1)
        rows = torch.arange(q.shape[0])
        p[rows, pos] = 1 - p[rows, pos]
        g1 = q.t() @ p / q.shape[0] - (p * logits).mean(0) * W_hat
        g = g - g1 / W.norm(dim=0)
    g = g / T_m
    v = momentum * v + g
    return W - lr * v, v


def online_and_keys(model, views, predictor=False):
    """CaCo's normalised online embeddings and momentum keys of both
    views (the momentum encoder as it is now)."""
    algo = model.algorithm
    qs = []
    for v in views:
        z = algo.neck(algo.backbone(v))[0]
        if predictor:
            z = algo.head.predictor([z])[0]
        qs.append(F.normalize(z, dim=1))
    with torch.no_grad():
        ks = [F.normalize(algo.momentum_encoder(v)[0], dim=1) for v in views]
    return qs, ks


def caco(**kwargs):
    opts = dict(bank_size=12, memory_lr=3., memory_lr_final=3.,
                memory_warmup_epochs=0, memory_temperature=0.1,
                memory_momentum=0.9, fill=False)
    opts.update(kwargs)
    torch.manual_seed(0)
    model = build('CaCo', mocov3_cfg(T), **opts)
    perturb(model)
    return model.double()


def test_caco_with_the_bank_as_the_keys_is_mocov3():
    """Identical views, memory_lr 0 and a bank holding the momentum keys
    of the batch: each query's positive is its own key and CaCo's loss is
    MoCo v3's (with the predictor), value and every gradient; the bank does
    not move."""
    model = caco(memory_lr=0., memory_lr_final=0., predictor=True,
                 bank_size=4)
    plain = MODELS.build(mocov3_cfg(T)).double()
    plain.load_state_dict({k: v for k, v in model.state_dict().items()
                           if k in plain.state_dict()})
    t = double_views()[0]
    ahead = copy.deepcopy(plain)                  # the stepped key encoder
    ahead.momentum_encoder.update_parameters(
        nn.Sequential(ahead.backbone, ahead.neck))
    with torch.no_grad():
        keys = F.normalize(ahead.momentum_encoder(t)[0], dim=1)
    model.bank.copy_(keys.t() * 3)                # any column length
    bank = model.bank.clone()
    ours = model.loss([t, t.clone()], None)['loss']
    theirs = plain.loss([t, t.clone()], None)['loss']
    assert_close(ours, theirs)
    g_ours, g_plain = grads(model, ours), grads(plain, theirs, 'algorithm.')
    assert sorted(g_ours) == sorted(g_plain)
    for key in g_plain:
        assert_close(g_ours[key], g_plain[key], msg=key)
    assert torch.equal(model.bank, bank)


@pytest.mark.parametrize('predictor', [False, True])
def test_caco_step_is_its_equations(predictor):
    model = caco(predictor=predictor)
    if not predictor:           # replaced: no parameter left unused
        assert isinstance(model.algorithm.head.predictor, nn.Identity)
    v = torch.zeros_like(model.bank)
    for it in range(2):                   # the second step has momentum
        views = double_views(it)
        W = model.bank.clone()
        losses = model.loss(views, None)
        (q1, q2), (k1, k2) = online_and_keys(model, views, predictor)
        W_hat = W / W.norm(dim=0)
        pos1, pos2 = (k2 @ W_hat).argmax(1), (k1 @ W_hat).argmax(1)
        want = sum(row_ce(q @ W_hat, pos, T)
                   for q, pos in ((q1, pos1), (q2, pos2)))
        assert_close(losses['loss'], 2 * T * want)   # the head's weight 2T
        W_new, v = official_caco_update(
            W, v, [(q1.detach(), pos1), (q2.detach(), pos2)], 0.1, 3., 0.9)
        assert_close(model.bank, W_new)
        assert_close(model.bank_velocity, v)


def test_caco_fill_then_key_copy():
    model = caco(fill=True, bank_size=8)
    views = double_views()
    W = model.bank.clone()
    losses = model.loss(views, None)
    (q1, _), (_, k2) = online_and_keys(model, views)
    logits = torch.cat([(q1 * k2).sum(1, keepdim=True),
                        q1 @ (W / W.norm(dim=0))], dim=1)
    assert_close(losses['loss'], F.cross_entropy(
        logits / 0.2, torch.zeros(4, dtype=torch.long)))
    assert_close(model.bank[:, :4], k2.t())       # written like a queue
    assert model.filled == 4
    model.loss(double_views(1), None)
    assert model.bank_full
    online = nn.Sequential(model.algorithm.backbone, model.algorithm.neck)
    for a, b in zip(model.algorithm.momentum_encoder.module.parameters(),
                    online.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize('epoch,want', [(0, 0.3), (4, 1.5), (9, 3.0),
                                        (10, 3.0), (55, 1.5), (100, 0.0)])
def test_caco_memory_lr_warms_up_then_follows_a_cosine(epoch, want):
    from mmengine.logging import MessageHub
    model = caco(memory_lr=3., memory_lr_final=0., memory_warmup_epochs=10)
    hub = MessageHub.get_current_instance()
    hub.update_info('epoch', epoch)
    hub.update_info('max_epochs', 100)
    try:
        assert model.current_memory_lr() == pytest.approx(want, abs=1e-12)
    finally:
        hub.update_info('epoch', 0)


@pytest.mark.parametrize('kwargs,match', [
    (dict(bank_size=0), r'CaCo: bank_size must be an int >= 1'),
    (dict(memory_temperature=-1), r'CaCo: memory_temperature must be a '
     r'number > 0'),
    (dict(memory_lr_final=-1), r'CaCo: memory_lr_final must be a number'),
    (dict(memory_warmup_epochs=1.5), r'CaCo: memory_warmup_epochs must be '
     r'an int'),
    (dict(predictor='no'), r'CaCo: predictor must be a bool'),
])
def test_caco_bad_options_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(dict(type='CaCo', algorithm=mocov3_cfg(), **kwargs))


def test_caco_is_defined_for_mocov3_only_and_exports():
    with pytest.raises(TypeError, match=r"CaCo is defined for the "
                       r"algorithms \['MoCoV3'\]"):
        MODELS.build(dict(type='CaCo', algorithm=moco_cfg()))
