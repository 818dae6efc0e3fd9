"""ADIOS (aemim_mm.models.adversarial_ssl.adios) on tiny SimCLR / BYOL /
SimSiam.

* With fixed masks (all visible, or a fixed random soft mask) and no
  masking-net step, the encoder's loss and every gradient equal the plain
  mmpretrain algorithm's on the masked views (float64).
* One ADIOS step: the encoder's step lowers ``sum_k L_ssl`` at the step's
  masks, the masking net's step raises its objective, and each optimiser
  changes its own network's parameters and nothing else.
* The masking U-Net: masks summing to one over the slots, its options.
* Bad options and a wrong ``optim_wrapper`` are refused, naming them,
  before anything is computed.
* One process equals two over gloo (AEMIMDistributedDataParallel) with the
  same global batch.
* The exported encoder loads strictly into the classification backbone; the
  masking net is dropped, with its reason.
* ``visualize`` and ``MaskGridHook`` draw the masks.
"""
import copy
import math
import os
from types import SimpleNamespace
from typing import Dict, List

import numpy as np
import pytest
import torch
from mmengine.model import BaseDataPreprocessor
from mmengine.optim import OptimWrapper, OptimWrapperDict, build_optim_wrapper
from torch import nn
from torch.testing import assert_close

from mmpretrain.registry import MODELS
from tiny_models import MEAN, STD
from tiny_ssl import (IMG, build, byol_cfg, export_and_load_strictly,
                      moco_cfg, perturb, set_max_iters, simclr_cfg,
                      simsiam_cfg, two_views)

CFGS = {'SimCLR': simclr_cfg, 'BYOL': byol_cfg, 'SimSiam': simsiam_cfg}
#: a tiny masking U-Net at 16 px (3 blocks, 4x4 bottleneck)
MASK_NET = dict(type='MaskingUNet', img_size=IMG, mask_fbase=8,
                norm='group', mlp_channels=16)
N = 2


def adios(algo: str, **kwargs) -> nn.Module:
    """A tiny, perturbed ADIOS around ``algo`` (N = 2 masks)."""
    kwargs = dict(dict(mask_net=MASK_NET, num_masks=N, alpha_sparsity=0.5,
                       alpha_entropy=0.5), **kwargs)
    torch.manual_seed(0)
    model = build('ADIOS', CFGS[algo](), **kwargs)
    perturb(model)
    return model.train()


def optim_wrapper(model: nn.Module, lr: float = 0.05, mask_lr: float = 0.05,
                  momentum: float = 0.) -> OptimWrapperDict:
    """The configs' two SGD optimisers through the constructor."""
    return build_optim_wrapper(model, dict(
        constructor='SubmoduleOptimWrapperConstructor',
        encoder=dict(type='OptimWrapper', module='algorithm',
                     optimizer=dict(type='SGD', lr=lr, momentum=momentum)),
        mask_net=dict(type='OptimWrapper',
                      optimizer=dict(type='SGD', lr=mask_lr,
                                     momentum=momentum))))


def uint8_batch(batch: int = 4, seed: int = 0) -> dict:
    """A collated two-view batch as the data loader gives it."""
    from mmpretrain.structures import DataSample
    gen = torch.Generator().manual_seed(seed)
    return dict(inputs=[torch.randint(0, 256, (batch, 3, IMG, IMG),
                                      generator=gen, dtype=torch.uint8)
                        for _ in range(2)],
                data_samples=[DataSample() for _ in range(batch)])


def snapshot(model: nn.Module) -> Dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def fixed_masks(kind: str, views: List[torch.Tensor],
                count: int) -> List[torch.Tensor]:
    """``count`` views' masks (B, N, H, W): all zero (every pixel visible)
    or a fixed random soft assignment to the N slots."""
    b, _, h, w = views[0].shape
    if kind == 'visible':
        return [views[0].new_zeros(b, N, h, w) for _ in range(count)]
    gen = torch.Generator().manual_seed(7)
    return [torch.randn(b, N, h, w, generator=gen, dtype=views[0].dtype)
            .mul(3).softmax(dim=1) for _ in range(count)]


# ------------------------------------------------- adversary off (a)
@pytest.mark.parametrize('kind', ['visible', 'random'])
@pytest.mark.parametrize('algo', sorted(CFGS))
def test_fixed_masks_give_the_plain_algorithms_loss_and_gradients(
        algo, kind, monkeypatch):
    """``loss()`` with fixed masks and no masking-net step is the plain
    algorithm's loss of the masked pairs, summed over the masks (SimSiam:
    the mean over its four pairs of masked / unmasked views), with the same
    gradients (float64)."""
    model = adios(algo).double()
    plain = copy.deepcopy(model.algorithm)
    views = [v.double() for v in two_views()]
    masks = fixed_masks(kind, views, len(model.masked_views))
    monkeypatch.setattr(model, 'masks', lambda v: masks)
    got = model.loss(views, None)['loss']
    if algo == 'SimSiam':
        m1, m2 = (views[0] * (1 - masks[0][:, k:k + 1])
                  for k in range(N)), (views[1] * (1 - masks[1][:, k:k + 1])
                                       for k in range(N))
        pairs = [[(a, views[1]), (views[0], b), (views[0], views[1]), (a, b)]
                 for a, b in zip(m1, m2)]
    else:
        pairs = [[(views[0], views[1] * (1 - masks[0][:, k:k + 1]))]
                 for k in range(N)]
    want = 0
    for k, group in enumerate(pairs):
        if k == 1 and algo == 'BYOL':   # BYOL's EMA moves once per iteration
            monkeypatch.setattr(plain.target_net, 'update_parameters',
                                lambda *a: None)
        want = want + sum(plain.loss([a, b], None)['loss']
                          for a, b in group) / len(group)
    assert_close(got, want, rtol=1e-10, atol=1e-12)
    model.zero_grad()
    got.backward()
    want.backward()
    for name, p in plain.named_parameters():
        twin = model.algorithm.get_parameter(name)
        if p.grad is None:
            assert twin.grad is None, name
            continue
        assert_close(twin.grad, p.grad, rtol=1e-9, atol=1e-12, msg=name)
    assert all(p.grad is None for p in model.mask_net.parameters())
    if kind == 'random':      # the masks did change the views
        assert not torch.equal(
            model.ssl_terms(views, masks)[0],
            model.ssl_terms(views, fixed_masks('visible', views,
                                               len(masks)))[0])


# -------------------------------------------------- one step (b)
@pytest.mark.parametrize('algo', sorted(CFGS))
def test_one_step_encoder_descends_masking_net_ascends(algo):
    """Step (i) lowers ``sum_k L_ssl`` at the iteration's masks, step (ii)
    raises the masking net's objective at the new encoder, and each
    optimiser changes only its own network's parameters."""
    model = adios(algo)
    optim = optim_wrapper(model, lr=0.01, mask_lr=0.01)
    data = uint8_batch()
    views = model.data_preprocessor(copy.deepcopy(data), True)['inputs']
    with torch.no_grad():
        masks0 = [m.clone() for m in model.masks(views)]
    changed = {}
    for key in ('encoder', 'mask_net'):
        wrapper = optim[key]
        step = wrapper.step

        def recording_step(key=key, step=step, **kwargs):
            before = snapshot(model)
            with_grad = {n for n, p in model.named_parameters()
                         if p.grad is not None}
            step(**kwargs)
            after = snapshot(model)
            changed[key] = ({n for n in before
                             if not torch.equal(before[n], after[n])},
                            with_grad)

        wrapper.step = recording_step
    before = snapshot(model)
    log = model.train_step(data, optim)

    enc_changed, enc_grads = changed['encoder']
    mask_changed, mask_grads = changed['mask_net']
    assert enc_changed and all(n.startswith('algorithm.')
                               for n in enc_changed | enc_grads)
    assert any(n.startswith('algorithm.backbone.') for n in enc_changed)
    assert mask_changed and all(n.startswith('mask_net.')
                                for n in mask_changed | mask_grads)
    assert mask_changed == {n for n, _ in model.mask_net.named_parameters(
        prefix='mask_net')}
    after = snapshot(model)
    moved = {n for n in before if not torch.equal(before[n], after[n])}
    ema = {n for n in moved if n.startswith('algorithm.target_net.')}
    assert moved == enc_changed | mask_changed | ema
    assert all(p.requires_grad for n, p in model.named_parameters()
               if not n.startswith('algorithm.target_net.'))
    with torch.no_grad():
        # (i) the encoder's sum_k L_ssl at the iteration's masks went down
        after_encoder = sum(model.ssl_terms(views, masks0))
        assert after_encoder < log['loss'], (after_encoder, log['loss'])
        # (ii) the masking net's objective at the new encoder went up
        ascended = model.mask_objective(views, model.masks(views)).objective
    assert ascended > log['adv_mask_objective'], (
        ascended, log['adv_mask_objective'])
    for key in ('adv_mask_ssl', 'adv_mask_sparsity', 'adv_mask_entropy',
                'adv_mask_size_min', 'adv_mask_size_max'):
        assert math.isfinite(float(log[key])), key
    assert 0 < log['adv_mask_size_min'] <= log['adv_mask_size_max'] < 1


def test_mask_objective_is_the_official_formula():
    """``sum_k [L_k - alpha_s mean_b 1/(sin(pi s_k) + 1e-10)] + alpha_e
    sum_b sum_k p log p`` with p the softmax of the mask sizes."""
    model = adios('SimCLR', alpha_sparsity=0.3, alpha_entropy=0.7).double()
    views = [v.double() for v in two_views()]
    masks = fixed_masks('random', views, 1)
    result = model.mask_objective(views, masks)
    s = masks[0].mean(dim=(2, 3))
    terms = model.ssl_terms(views, masks)
    want = sum(terms[k] - 0.3 * (1 / (torch.sin(math.pi * s[:, k]) + 1e-10))
               .mean() for k in range(N))
    p = torch.softmax(s, dim=1)
    want = want + 0.7 * (p * p.log()).sum()
    assert_close(result.objective, want, rtol=1e-12, atol=1e-12)
    assert_close(result.log['adv_mask_entropy'],
                 -(p * p.log()).sum(1).mean())
    assert_close(result.log['adv_mask_size_min'], s.min(1).values.mean())


# --------------------------------------------------- masking net
def test_masking_unet_gives_soft_masks_summing_to_one():
    net = MODELS.build(dict(MASK_NET, num_masks=3))
    masks = net(two_views()[0])
    assert masks.shape == (4, 3, IMG, IMG)
    assert_close(masks.sum(1), torch.ones(4, IMG, IMG))
    assert net.num_blocks == 3 and (masks > 0).all()
    assert MODELS.build(dict(type='MaskingUNet', img_size=96)).num_blocks == 5


@pytest.mark.parametrize('kwargs, match', [
    (dict(norm='batch'), 'norm must be one of'),
    (dict(num_masks=0), 'num_masks must be an int >= 1'),
    (dict(mask_fbase=4, norm='group'), 'mask_fbase must be a multiple of 8'),
    (dict(img_size=36, num_blocks=4), r'img_size \(36\) must be divisible'),
    (dict(num_blocks=2), 'num_blocks must be an int >= 3'),
    (dict(img_size=8.0), 'img_size must be an int'),
])
def test_masking_unet_refuses_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(dict(MASK_NET, **kwargs))


def test_masking_unet_refuses_another_image_size():
    net = MODELS.build(MASK_NET)
    with pytest.raises(ValueError, match='set mask_net.img_size'):
        net(torch.zeros(1, 3, 32, 32))


# --------------------------------------------------- options (c)
@pytest.mark.parametrize('algo, kwargs, match', [
    ('SimCLR', dict(num_masks=0), 'num_masks must be an int >= 1'),
    ('SimCLR', dict(num_masks=2.5), 'num_masks must be an int >= 1'),
    ('SimCLR', dict(num_masks=True), 'num_masks must be an int >= 1'),
    ('SimCLR', dict(alpha_sparsity=-1.), 'alpha_sparsity must be a number'),
    ('SimCLR', dict(alpha_sparsity=float('nan')), 'alpha_sparsity'),
    ('BYOL', dict(alpha_entropy=-0.1), 'alpha_entropy must be a number'),
    ('BYOL', dict(alpha_entropy='0.5'), 'alpha_entropy'),
    ('SimCLR', dict(use_no_mask=False),
     'use_no_mask is an option of SimSiam-ADIOS only'),
    ('SimSiam', dict(use_both_mask='yes'), 'use_both_mask must be a bool'),
    ('SimCLR', dict(mask_net=dict(MASK_NET, num_masks=3)),
     r'mask_net.num_masks \(3\) differs from num_masks \(2\)'),
    ('SimCLR', dict(mask_net='unet'), 'mask_net must be a config dict'),
    ('SimCLR', dict(attack=dict(type='PixelPGD')),
     'attack is not an option of ADIOS'),
    ('SimCLR', dict(adapter='bn'), 'adapter is not an option of ADIOS'),
])
def test_bad_options_are_refused(algo, kwargs, match):
    with pytest.raises(ValueError, match=match):
        adios(algo, **kwargs)


def test_other_algorithms_are_refused():
    with pytest.raises(TypeError, match=r"ADIOS is defined for the "
                       r"algorithms \['SimCLR', 'BYOL', 'SimSiam'\]"):
        MODELS.build(dict(type='ADIOS', algorithm=moco_cfg(),
                          mask_net=MASK_NET))


def _single(model: nn.Module) -> OptimWrapper:
    return build_optim_wrapper(model, dict(
        type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1)))


def _pair(model, encoder_module='algorithm', mask_module='mask_net',
          keys=('encoder', 'mask_net'), counts=1) -> OptimWrapperDict:
    modules = dict(zip(keys, (encoder_module, mask_module)))
    return OptimWrapperDict(**{
        key: build_optim_wrapper(
            model.get_submodule(path) if path else model,
            dict(type='OptimWrapper', accumulative_counts=counts,
                 optimizer=dict(type='SGD', lr=0.1)))
        for key, path in modules.items()})


@pytest.mark.parametrize('make, error, match', [
    (_single, TypeError, 'optim_wrapper must be an mmengine '
     r"OptimWrapperDict with the keys \['encoder', 'mask_net'\].*got "
     'OptimWrapper'),
    (lambda m: _pair(m, keys=('algorithm', 'mask_net')), ValueError,
     r"must have the keys \['encoder', 'mask_net'\], got \['algorithm', "
     r"'mask_net'\]"),
    (lambda m: _pair(m, encoder_module=''), ValueError,
     r"optim_wrapper\['encoder'\] holds \d+ parameters that are not those "
     'of model.algorithm'),
    (lambda m: _pair(m, encoder_module='algorithm.backbone'), ValueError,
     r"optim_wrapper\['encoder'\] misses \d+ trainable parameters of "
     'model.algorithm'),
    (lambda m: _pair(m, mask_module='mask_net.head'), ValueError,
     r"optim_wrapper\['mask_net'\] misses \d+ trainable parameters of "
     'model.mask_net'),
    (lambda m: _pair(m, counts=2), ValueError,
     r"optim_wrapper\['encoder'\].accumulative_counts must be 1"),
])
def test_wrong_optim_wrapper_is_refused_before_any_work(make, error, match):
    model = adios('SimCLR')
    optim = make(model)
    before = snapshot(model)
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    with pytest.raises(error, match=match):
        model.train_step(uint8_batch(), optim)
    assert all(torch.equal(p, before[n]) for n, p in
               model.named_parameters())
    assert all(torch.equal(b, buffers[n]) for n, b in model.named_buffers())


@pytest.mark.parametrize('cfg, match', [
    (dict(encoder=dict(optimizer=dict(type='SGD', lr=0.1)),
          paramwise_cfg=dict(norm_decay_mult=0.)),
     'give paramwise_cfg inside each entry'),
    (dict(encoder=dict(module='encoder', optimizer=dict(type='SGD', lr=.1))),
     "module='encoder' is not a sub-module of ADIOS"),
    (dict(encoder=dict(module='algorithm', optimizer=dict(type='SGD', lr=.1)),
          backbone=dict(module='algorithm.backbone',
                        optimizer=dict(type='SGD', lr=.1))),
     'optim_wrapper.backbone .* and optim_wrapper.encoder share parameters'),
    (dict(encoder=dict(type='OptimWrapper')), 'must be an optimizer-wrapper'),
])
def test_constructor_refuses_bad_configs(cfg, match):
    model = adios('SimCLR')
    with pytest.raises(ValueError, match=match):
        build_optim_wrapper(model, dict(
            constructor='SubmoduleOptimWrapperConstructor', **cfg))


def test_constructor_builds_one_wrapper_per_submodule():
    model = adios('SimCLR')
    optim = build_optim_wrapper(model, dict(
        constructor='SubmoduleOptimWrapperConstructor',
        encoder=dict(type='OptimWrapper', module='algorithm',
                     optimizer=dict(type='SGD', lr=0.1, weight_decay=1e-4),
                     paramwise_cfg=dict(norm_decay_mult=0.)),
        mask_net=dict(optimizer=dict(type='Adam', lr=0.01))))
    assert isinstance(optim, OptimWrapperDict)
    assert list(optim.keys()) == ['encoder', 'mask_net']
    assert type(optim['mask_net'].optimizer).__name__ == 'Adam'
    # (OptimWrapper.param_groups adds mmengine's base-lr bookkeeping group)
    held = [{id(p) for g in optim[k].optimizer.param_groups
             for p in g['params']} for k in ('encoder', 'mask_net')]
    assert held[0] == {id(p) for p in model.algorithm.parameters()}
    assert held[1] == {id(p) for p in model.mask_net.parameters()}
    decays = {g['weight_decay']
              for g in optim['encoder'].optimizer.param_groups}
    assert decays == {0., 1e-4}             # its own paramwise_cfg


# ------------------------------------------------------- export (f)
def test_encoder_exports_and_loads_strictly_without_the_masking_net(
        tmp_path):
    kwargs = dict(mask_net=MASK_NET, num_masks=N)
    result = export_and_load_strictly('ADIOS', simclr_cfg(), kwargs,
                                      tmp_path)
    mask_keys = [k for k in result.state if k.startswith('mask_net.')]
    assert mask_keys
    assert result.dropped['ADIOS masking network (mask_net.*)'] == mask_keys
    assert not any(k.startswith('algorithm.') for k in result.state)


@pytest.mark.parametrize('name', ['adios_simclr_resnet18_in100s-96px',
                                  'adios_byol_vit-tiny_in100s-96px'])
def test_shipped_encoders_export_to_their_classification_backbone(
        name, tmp_path):
    """The ImageNet-100S configs' ResNet-18 and ViT-Tiny/16 (96 px), as
    shipped: the export loads strictly into the config's backbone with the
    model's tensors; the masking net is dropped."""
    from mmengine.config import Config

    from aemim_mm.apis import export_encoder
    cfg = Config.fromfile(os.path.join(
        os.path.dirname(__file__), '..', '..', 'configs', 'survey',
        f'{name}.py'))
    set_max_iters()
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    state = model.state_dict()
    torch.save(dict(meta=dict(epoch=1), state_dict=state),
               tmp_path / 'epoch_1.pth')
    result = export_encoder(tmp_path / 'epoch_1.pth', tmp_path / 'out',
                            formats=['mmpretrain'])
    assert result.dropped['ADIOS masking network (mask_net.*)'] == [
        k for k in state if k.startswith('mask_net.')]
    exported = torch.load(result.paths['mmpretrain'],
                          weights_only=True)['state_dict']
    backbone = MODELS.build(cfg.model.algorithm.backbone)
    backbone.load_state_dict(
        {k[len('backbone.'):]: v for k, v in exported.items()}, strict=True)
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, state['backbone.' + key]), key


# ------------------------------------------------- visualisation
def test_visualize_draws_the_view_each_mask_and_each_masked_view():
    model = adios('BYOL')
    views = two_views()
    vis = model.visualize(views)
    assert list(vis) == ['view', 'mask_1', 'mask_2', 'masked_1', 'masked_2']
    for images in vis.values():
        assert images.shape == (4, 3, IMG, IMG)
        assert images.min() >= 0 and images.max() <= 1
    pixels = views[1] * torch.tensor(STD).view(1, 3, 1, 1) + \
        torch.tensor(MEAN).view(1, 3, 1, 1)
    assert_close(vis['view'], pixels / 255, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        masks = model.mask_net(views[1])
    for k in range(N):
        m = masks[:, k:k + 1]
        masked = (views[1] * (1 - m)) * torch.tensor(STD).view(1, 3, 1, 1) \
            + torch.tensor(MEAN).view(1, 3, 1, 1)
        assert_close(vis[f'masked_{k + 1}'], (masked / 255).clamp(0, 1),
                     rtol=1e-5, atol=1e-6)
        # the overlay: red where the mask is, the view elsewhere
        red = vis[f'mask_{k + 1}'][:, 0] - vis['view'][:, 0]
        assert_close(red, 0.7 * m[:, 0] * (1 - vis['view'][:, 0]),
                     rtol=1e-5, atol=1e-6)


def test_mask_grid_hook_writes_the_masks_through_the_visualizer():
    from mmengine.logging import MessageHub
    from mmpretrain.registry import HOOKS

    class Visualizer:
        images = []

        def add_image(self, name, image, step=0):
            self.images.append((name, image, step))

    model = adios('SimCLR')
    hook = HOOKS.build(dict(type='MaskGridHook', vis_interval=5,
                            vis_num_samples=3, min_cell_size=32))
    runner = SimpleNamespace(model=model, iter=4, max_iters=100,
                             visualizer=Visualizer(),
                             message_hub=MessageHub.get_current_instance())
    torch.manual_seed(0)
    expected = torch.rand(2)
    torch.manual_seed(0)
    hook.after_train_iter(runner, 0, data_batch=uint8_batch())
    assert torch.equal(torch.rand(2), expected)     # RNG untouched
    (name, grid, step), = runner.visualizer.images
    assert (name, step) == ('adios_masks', 5)
    assert grid.dtype == np.uint8 and grid.shape[2] == 3
    # 1 + 2N columns and 3 rows of 32 px cells (16 px doubled)
    assert grid.shape[1] >= (1 + 2 * N) * 32 and grid.shape[0] >= 3 * 32
    runner.iter = 5
    hook.after_train_iter(runner, 0, data_batch=uint8_batch())
    assert len(runner.visualizer.images) == 1


# ------------------------------------------- two processes (d)
GLOBAL_BATCH, ITERS = 4, 2


class PassThrough(BaseDataPreprocessor):
    """Hands over already normalised float64 views unchanged."""

    def forward(self, data: dict, training: bool = False) -> dict:
        return data


def _sync_cfg(algo: str) -> dict:
    cfg = CFGS[algo]()
    cfg['backbone'] = dict(cfg['backbone'], norm_cfg=dict(type='SyncBN'))
    cfg['neck']['norm_cfg'] = dict(type='SyncBN')
    cfg['head'].get('predictor', {}).update(norm_cfg=dict(type='SyncBN'))
    return cfg


def _dist_model(algo: str) -> nn.Module:
    set_max_iters()
    return MODELS.build(dict(type='ADIOS', algorithm=_sync_cfg(algo),
                             mask_net=MASK_NET, num_masks=N,
                             alpha_sparsity=0.5, alpha_entropy=0.5))


def _global_views() -> List[torch.Tensor]:
    return [v.double() for v in two_views(GLOBAL_BATCH, seed=3)]


def _train_steps(model, module, views) -> List[Dict[str, float]]:
    module.data_preprocessor = PassThrough()
    optim = optim_wrapper(model, lr=0.05, mask_lr=0.05, momentum=0.9)
    logs = []
    for _ in range(ITERS):
        log = model.train_step(dict(inputs=views, data_samples=None), optim)
        logs.append({k: float(v) for k, v in log.items()})
    return logs


def _worker(rank: int, world: int, port: int, algo: str,
            out_dir: str) -> None:
    import torch.distributed as dist
    from mmengine.registry import init_default_scope
    from test_spark import cpu_sync_batch_norm_forward
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=world)
    try:
        nn.SyncBatchNorm.forward = cpu_sync_batch_norm_forward
        nn.parallel.DistributedDataParallel._passing_sync_batchnorm_handle = (
            lambda self, module: None)
        import aemim_mm  # noqa: F401
        from aemim_mm.engine import AEMIMDistributedDataParallel
        init_default_scope('mmpretrain')
        module = _dist_model(algo)
        assert any(isinstance(m, nn.SyncBatchNorm) for m in module.modules())
        module.load_state_dict(
            torch.load(os.path.join(out_dir, 'init.pth'), weights_only=True),
            strict=True)
        module.double().train()
        ddp = AEMIMDistributedDataParallel(module=module,
                                           broadcast_buffers=False)
        # DefaultSampler's layout: rank r gets global samples r, r + world
        views = [v[rank::world] for v in _global_views()]
        logs = _train_steps(ddp, module, views)
        torch.save(dict(logs=logs, state=module.state_dict()),
                   os.path.join(out_dir, f'rank{rank}.pth'))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.filterwarnings(
    'ignore:torch.distributed.nn.functional.all_reduce is deprecated'
    ':FutureWarning')
@pytest.mark.parametrize('algo', sorted(CFGS))
def test_two_processes_equal_one_process(algo, tmp_path):
    """Through ``AEMIMDistributedDataParallel`` (the model's own step, each
    step's gradients averaged by it), two gloo processes with half the
    batch each end with the one-process run's parameters, running
    statistics, target network and masking net; the processes' mean of
    every logged objective is the one-process value."""
    import torch.multiprocessing as mp
    from test_spark import free_port
    torch.manual_seed(0)
    reference = _dist_model(algo)
    reference.init_weights()
    perturb(reference)
    torch.save(reference.state_dict(), tmp_path / 'init.pth')
    init = copy.deepcopy(reference.state_dict())
    reference.double().train()
    ref_logs = _train_steps(reference, reference, _global_views())
    mp.spawn(_worker, args=(2, free_port(), algo, str(tmp_path)), nprocs=2,
             join=True)
    ranks = [torch.load(tmp_path / f'rank{r}.pth', weights_only=True)
             for r in range(2)]
    for it in range(ITERS):
        for key, want in ref_logs[it].items():
            got = sum(r['logs'][it][key] for r in ranks) / 2
            assert got == pytest.approx(want, rel=1e-8, abs=1e-10), (
                algo, it, key)
    want = reference.state_dict()
    moved = [k for k in want if not torch.equal(want[k], init[k])]
    assert any(k.startswith('mask_net.') for k in moved)
    assert any(k.startswith('backbone.') and 'weight' in k for k in moved)
    assert any('running_mean' in k for k in moved)
    for rank in ranks:
        assert rank['state'].keys() == want.keys()
        for key, value in want.items():
            assert_close(rank['state'][key], value, rtol=1e-8, atol=1e-10,
                         msg=f'{algo}: {key}')
