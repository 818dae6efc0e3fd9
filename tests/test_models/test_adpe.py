"""AdPE (adversarial positions, aemim_mm/models/adversarial_positions.py) on
MAE+ and SimMIM-ViT (aemim_mm/models/backbones/mask_token_vit.py), its
hook (AdversarialPositionsHook) and its combination with AEMIM: tiny ViTs
on CPU, float64 where results are compared."""
import copy
from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper
from mmpretrain.models.utils import build_2d_sincos_position_embedding
from mmpretrain.registry import MODELS
from torch.testing import assert_close

from aemim_mm.engine.hooks import AdversarialPositionsHook
from aemim_mm.models import AdversarialPositions
from aemim_mm.models.adversarial_positions import sincos_position_embedding
from tiny_models import (DIMS, IMG, PATCH, PREPROCESSOR, build_wrapper,
                         simmim_samples, valid_images)

GRID = IMG // PATCH
ADV_KEY = {'adversarial_positions': dict(lr_mult=-1.0, decay_mult=0.0)}


def mae_plus_cfg(adversary: dict = None) -> dict:
    """A tiny MAE+ (32 px, patch 8, 2 + 1 layers)."""
    return copy.deepcopy(dict(
        type='MAE',
        backbone=dict(type='MAEPlusViT',
                      arch=dict(embed_dims=DIMS, num_layers=2, num_heads=2,
                                feedforward_channels=2 * DIMS),
                      img_size=IMG, patch_size=PATCH, mask_ratio=0.75,
                      adversarial_positions=adversary),
        neck=dict(type='MAEPlusPretrainDecoder', num_patches=GRID**2,
                  patch_size=PATCH, in_chans=3, embed_dim=DIMS,
                  decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2),
        head=dict(type='MAEPretrainHead', norm_pix=True, patch_size=PATCH,
                  loss=dict(type='PixelReconstructionLoss', criterion='L2')),
        data_preprocessor=PREPROCESSOR))


def simmim_vit_cfg(adversary: dict = None) -> dict:
    """A tiny SimMIM on :class:`SimMIMViT` (32 px, patch 4: the masks of
    ``simmim_samples``)."""
    return copy.deepcopy(dict(
        type='SimMIM',
        backbone=dict(type='SimMIMViT',
                      arch=dict(embed_dims=DIMS, num_layers=2, num_heads=2,
                                feedforward_channels=2 * DIMS),
                      img_size=IMG, patch_size=4,
                      adversarial_positions=adversary),
        neck=dict(type='SimMIMLinearDecoder', in_channels=DIMS,
                  encoder_stride=4),
        head=dict(type='SimMIMHead', patch_size=4,
                  loss=dict(type='PixelReconstructionLoss', criterion='L1',
                            channel=3)),
        data_preprocessor=PREPROCESSOR))


CFGS = {'mae_plus': mae_plus_cfg, 'simmim_vit': simmim_vit_cfg}


def build(name: str, adversary: dict = None, guarded: bool = True):
    model = MODELS.build(CFGS[name](adversary))
    model.init_weights()
    positions = model.backbone.adversarial_positions
    if positions is not None:
        positions.guarded = guarded
    return model


def loss_of(model, name: str, seed: int = 0):
    """The algorithm's loss on a fixed batch (MAE's mask seeded)."""
    inputs = valid_images(2, seed).to(next(model.parameters()).dtype)
    samples = simmim_samples(2, seed) if name == 'simmim_vit' else None
    torch.manual_seed(seed)
    return model.loss(inputs, samples)['loss']


def optim_wrapper(model, custom_keys=ADV_KEY, lr: float = 0.05):
    return build_optim_wrapper(model, dict(
        type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=lr, betas=(0.9, 0.95),
                       weight_decay=0.05),
        paramwise_cfg=dict(custom_keys=custom_keys)))


def start_hook(model, wrapper) -> SimpleNamespace:
    """``AdversarialPositionsHook.before_train`` on a stand-in runner."""
    runner = SimpleNamespace(
        model=model, optim_wrapper=wrapper,
        message_hub=MessageHub.get_instance('test_adpe'))
    AdversarialPositionsHook().before_train(runner)
    return runner


# ------------------------------------------------------- position encoding


@pytest.mark.parametrize('grid,dims', [(4, 32), (7, 64), (14, 128)])
def test_sincos_is_mmpretrain_s_without_shift(grid, dims):
    assert_close(sincos_position_embedding((grid, grid), dims),
                 build_2d_sincos_position_embedding(grid, dims))


def test_a_whole_row_shift_is_the_next_row_s_encoding():
    """Shifting by (1, 0) patches gives patch (r, c) the encoding of
    (r + 1, c); by (0, 1) that of (r, c + 1): the coordinates are rows and
    columns of the row-major token order."""
    base = sincos_position_embedding((4, 4), 32, dtype=torch.float64)[0]
    down = sincos_position_embedding(
        (4, 4), 32, torch.tensor([1., 0.], dtype=torch.float64))[0]
    right = sincos_position_embedding(
        (4, 4), 32, torch.tensor([0., 1.], dtype=torch.float64))[0]
    assert_close(down[:12], base[4:])
    cols = torch.arange(16) % 4 < 3
    assert_close(right[cols], base[torch.arange(16)[cols] + 1])


# ------------------------------------------------------------ off = plain


@pytest.mark.parametrize('name', sorted(CFGS))
@pytest.mark.parametrize('mode,norm', [('coordinates', 'linf'),
                                       ('embedding', 'l2')])
def test_adversary_off_is_the_plain_algorithm(name, mode, norm):
    """eps 0: the state stays 0 and the loss and every gradient are the
    plain encoder's, float64; a state off 0 changes the loss."""
    torch.manual_seed(0)
    plain = build(name).double()
    adversarial = build(name, dict(mode=mode, eps=0, norm=norm)).double()
    missing, unexpected = adversarial.load_state_dict(plain.state_dict(),
                                                      strict=False)
    assert not unexpected
    assert missing == [f'backbone.adversarial_positions.adv_'
                       f'{"coord" if mode == "coordinates" else "embedding"}']
    wrapper = optim_wrapper(adversarial)
    start_hook(adversarial, wrapper)
    for _ in range(2):     # a step: the state climbs, the ball holds it at 0
        wrapper.update_params(loss_of(adversarial, name))
    assert not adversarial.backbone.adversarial_positions.delta.any()
    adversarial.load_state_dict(plain.state_dict(), strict=False)
    loss_p, loss_a = loss_of(plain, name), loss_of(adversarial, name)
    assert_close(loss_a, loss_p, rtol=0, atol=0)
    loss_p.backward()
    loss_a.backward()
    grads = dict(adversarial.named_parameters())
    for key, param in plain.named_parameters():
        if param.grad is not None:
            assert_close(grads[key].grad, param.grad, rtol=0, atol=0,
                         msg=key)
    with torch.no_grad():       # (a constant shift of the token: LN drops it)
        delta = adversarial.backbone.adversarial_positions.delta
        delta.copy_(torch.linspace(-0.3, 0.4, delta.numel()).view_as(delta))
    assert (loss_of(adversarial, name) - loss_p).abs() > 1e-6


# ------------------------------------------------------ ascent and ball


@pytest.mark.parametrize('name', sorted(CFGS))
@pytest.mark.parametrize('mode,norm,eps', [('coordinates', 'linf', 0.2),
                                           ('coordinates', 'l2', 0.2),
                                           ('embedding', 'l2', 0.1),
                                           ('embedding', 'linf', 0.02)])
def test_state_climbs_the_loss_and_stays_in_its_ball(name, mode, norm, eps):
    """Adam's first step moves the state by +lr * sign(grad) (ascent), the
    network's weights by -lr * sign(grad) (descent); after every step the
    state is inside its ball (a state put far outside is back on the
    sphere after the next step)."""
    torch.manual_seed(0)
    model = build(name, dict(mode=mode, eps=eps, norm=norm)).double()
    wrapper = optim_wrapper(model)
    start_hook(model, wrapper)
    positions = model.backbone.adversarial_positions
    weight = model.backbone.patch_embed.projection.weight
    before, weight_before = positions.delta.detach().clone(), \
        weight.detach().clone()
    loss = loss_of(model, name)
    grad, weight_grad = torch.autograd.grad(loss, [positions.delta, weight],
                                            retain_graph=True)
    wrapper.update_params(loss)
    moved = positions.delta.detach() - before
    lr = 0.05
    expect = (lr * grad.sign()).clamp(-eps, eps) if norm == 'linf' else None
    if expect is not None:
        assert_close(moved, expect, rtol=1e-3, atol=1e-6)
    else:   # l2: the step, rescaled onto the sphere if it left the ball
        step = lr * grad.sign()
        assert_close(moved, step * min(1.0, eps / float(step.norm())),
                     rtol=1e-3, atol=1e-6)
    decay = 1 - lr * 0.05
    descent = weight.detach() - weight_before * decay
    changed = weight_grad.abs() > 1e-8
    assert (descent.sign()[changed] == -weight_grad.sign()[changed]).all()
    for it in range(4):
        if it == 3:
            with torch.no_grad():
                positions.delta.mul_(0).add_(10 * eps)
        wrapper.update_params(loss_of(model, name, seed=it + 1))
        delta = positions.delta.detach()
        size = delta.abs().max() if norm == 'linf' else delta.norm()
        assert size <= eps * (1 + 1e-9)
    assert size == pytest.approx(eps, rel=1e-9)


# ----------------------------------------------------------- refusals


@pytest.mark.parametrize('adversary,match', [
    (dict(mode='pixels', eps=1, norm='linf'), 'mode must be one of'),
    (dict(mode='coordinates', eps=-1, norm='linf'), 'eps must be a number'),
    (dict(mode='coordinates', eps=float('nan'), norm='linf'),
     'eps must be a number'),
    (dict(mode='embedding', eps=1, norm='l1'), 'norm must be one of'),
])
def test_bad_options_are_refused_naming_them(adversary, match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(mae_plus_cfg(adversary))


def test_coordinates_need_a_width_divisible_by_four():
    with pytest.raises(ValueError, match='divisible by 4'):
        AdversarialPositions('coordinates', 1, 'linf', 30, (4, 4))


@pytest.mark.parametrize('custom_keys,match', [
    ({}, 'negative one'),
    ({'adversarial_positions': dict(lr_mult=1.0, decay_mult=0.0)},
     'negative one'),
    ({'adversarial_positions': dict(lr_mult=-1.0)}, 'weight decay'),
])
def test_hook_refuses_a_state_that_would_not_climb(custom_keys, match):
    model = build('mae_plus', dict(mode='coordinates', eps=1, norm='linf'),
                  guarded=False)
    with pytest.raises(ValueError, match=match):
        start_hook(model, optim_wrapper(model, custom_keys))
    assert not model.backbone.adversarial_positions.guarded


def test_hook_refuses_a_model_without_adversary():
    model = build('mae_plus')
    with pytest.raises(ValueError, match='no adversarial_positions'):
        start_hook(model, optim_wrapper(model))


def test_training_without_the_hook_is_refused():
    model = build('mae_plus', dict(mode='embedding', eps=1, norm='l2'),
                  guarded=False)
    with pytest.raises(RuntimeError, match='AdversarialPositionsHook'):
        loss_of(model, 'mae_plus')
    model.eval()
    with torch.no_grad():       # evaluation and visualisation stay free
        model.backbone(valid_images(1))


def test_hook_logs_the_state():
    model = build('mae_plus', dict(mode='coordinates', eps=1, norm='linf'))
    runner = start_hook(model, optim_wrapper(model))
    with torch.no_grad():
        model.backbone.adversarial_positions.adv_coord.copy_(
            torch.tensor([0.3, -0.4]))
    AdversarialPositionsHook().after_train_iter(runner, 0)
    hub = runner.message_hub
    assert hub.get_scalar('train/adv_position_norm').current() == \
        pytest.approx(0.5)
    assert hub.get_scalar('train/adv_coord_col').current() == \
        pytest.approx(-0.4)


# ------------------------------------------------- MAE+ itself, export


def test_mae_plus_encodes_every_patch_and_its_decoder_inserts_none():
    model = build('mae_plus')
    latent, mask, ids_restore = model.backbone(valid_images(2))
    assert latent.shape == (2, 1 + GRID**2, DIMS)
    assert mask.sum(1).tolist() == [12, 12]
    assert not model.neck.mask_token.requires_grad
    loss_of(model, 'mae_plus').backward()
    assert model.backbone.mask_token.grad.abs().sum() > 0
    assert model.neck.mask_token.grad is None


@pytest.mark.parametrize('name', sorted(CFGS))
def test_export_loads_strictly_into_mmpretrain_s_vit(name, tmp_path):
    from aemim_mm.apis import export_encoder
    model = build(name, dict(mode='coordinates', eps=1, norm='linf'))
    ckpt = tmp_path / 'pretrain.pth'
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    out = tmp_path / 'encoder.pth'
    export_encoder(ckpt, formats=('mmpretrain', ),
                   paths=dict(mmpretrain=out))
    state = torch.load(out, weights_only=True)['state_dict']
    assert not any('adv_' in k or 'mask_token' in k for k in state)
    vit = MODELS.build(dict(
        type='VisionTransformer', img_size=IMG,
        patch_size=model.backbone.patch_embed.projection.kernel_size[0],
        arch=dict(embed_dims=DIMS, num_layers=2, num_heads=2,
                  feedforward_channels=2 * DIMS)))
    vit.load_state_dict({k[len('backbone.'):]: v for k, v in state.items()},
                        strict=True)


# ----------------------------------------------------- AEMIM + AdPE


@pytest.mark.parametrize('name', sorted(CFGS))
def test_aemim_attacks_pixels_under_adversarial_positions(name):
    """AEMIM's wrapper around MAE+ / SimMIM-ViT with AdPE: the adversarial
    state gets the gradient of the clean and the adversarial losses (both
    climb it) and the pixel attack runs."""
    torch.manual_seed(0)
    wrapper = build_wrapper(
        CFGS[name](dict(mode='coordinates', eps=1, norm='linf')),
        attack=dict(type='FeatureDistancePGD', eps=2, steps=1))
    positions = wrapper.algorithm.backbone.adversarial_positions
    positions.guarded = True
    samples = simmim_samples(2) if name == 'simmim_vit' else None
    losses = wrapper.loss(valid_images(2), samples)
    assert losses['adv_linf'] > 0
    total = losses['loss_clean'] + losses['loss_adv']
    grad_clean, = torch.autograd.grad(losses['loss_clean'], positions.delta,
                                      retain_graph=True)
    grad_total, = torch.autograd.grad(total, positions.delta)
    assert grad_clean.abs().sum() > 0
    assert (grad_total - grad_clean).abs().sum() > 0
    # the state has no clean twin: not among the adapters' twins
    assert all(p is not positions.delta
               for p in wrapper.clean_adapter_parameters())


# ------------------------------------------------ one process = two


ITERS = 3
ADVERSARY = dict(mode='coordinates', eps=0.5, norm='linf')


def _fixed_masks(backbone, indices) -> None:
    """MAE's mask of each sample drawn from a generator keyed by its global
    index (the same in any split of the batch)."""
    from aemim_mm.models.algorithms.mae_family import _random_masking
    noise = torch.stack([torch.rand(GRID**2, generator=torch.Generator(
    ).manual_seed(100 + i)) for i in indices])
    backbone.random_masking = _random_masking(noise)


def build_for_processes():
    """MAE+ with adversarial coordinates (``one_equals_two``)."""
    return build('mae_plus', ADVERSARY, guarded=False)


def train_for_processes(model, module, indices) -> list:
    """AdamW with the ascent group and the hook's projection, ITERS steps
    on the samples ``indices`` (``one_equals_two``)."""
    from one_equals_two import train_steps
    wrapper = optim_wrapper(module)
    start_hook(model, wrapper)
    _fixed_masks(module.backbone, indices)
    return train_steps(model, wrapper, valid_images(4).double()[indices],
                       ITERS)


@pytest.mark.slow
def test_two_processes_equal_one_process(tmp_path):
    """MAE+ with adversarial coordinates, AdamW with the ascent group, the
    hook's projection: two gloo processes of 2 images equal one of 4 (DDP
    averages the state's gradient as any parameter's)."""
    from one_equals_two import one_equals_two
    state = one_equals_two(tmp_path, __name__)
    assert state['backbone.adversarial_positions.adv_coord'].abs().sum() > 0


# ------------------------------------------------------------- pictures


def test_position_shift_points_where_the_encoder_is_told_it_is():
    from aemim_mm.visualization import position_shift
    model = build('mae_plus', dict(mode='coordinates', eps=1, norm='linf'))
    backbone = model.backbone
    positions = backbone.adversarial_positions
    args = (backbone.pos_embed[:, 1:].detach(), backbone.mask_token.detach())
    moved, target = position_shift(positions, *args)
    rows, cols = torch.meshgrid(torch.arange(GRID), torch.arange(GRID),
                                indexing='ij')
    grid = torch.stack([rows, cols], -1).float()
    assert_close(moved, torch.zeros(GRID, GRID), atol=1e-6, rtol=0)
    assert_close(target, grid)
    with torch.no_grad():
        positions.adv_coord.copy_(torch.tensor([0.5, -0.25]))
    moved, target = position_shift(positions, *args)
    assert_close(target, grid + torch.tensor([0.5, -0.25]))
    assert (moved > 1e-4).all()
    # embedding: a state pointing at position (0, 0)'s input pulls the
    # masked inputs towards it
    model = build('mae_plus', dict(mode='embedding', eps=100, norm='l2'))
    backbone = model.backbone
    with torch.no_grad():
        backbone.adversarial_positions.adv_embedding.copy_(
            50 * backbone.pos_embed[:, 1:2])
    _, target = position_shift(backbone.adversarial_positions,
                               backbone.pos_embed[:, 1:].detach(),
                               backbone.mask_token.detach())
    assert_close(target, torch.zeros(GRID, GRID, 2))


def test_position_map_hook_draws_every_interval_and_at_the_end():
    from aemim_mm.engine.hooks import PositionMapHook
    model = build('mae_plus', dict(mode='coordinates', eps=1, norm='linf'))
    drawn = []
    runner = SimpleNamespace(
        model=model, iter=0, max_iters=5,
        train_loop=SimpleNamespace(max_iters=5),
        visualizer=SimpleNamespace(add_image=lambda name, image, step:
                                   drawn.append((name, image.shape, step))))
    hook = PositionMapHook(vis_interval=2, cell=8)
    for it in range(5):
        runner.iter = it
        hook.after_train_iter(runner, it)
    assert [(name, step) for name, _, step in drawn] == [
        ('adpe_positions', 2), ('adpe_positions', 4), ('adpe_positions', 5)]
    height, width, channels = drawn[0][1]
    assert channels == 3 and height > GRID * 8 and width >= GRID * 8


@pytest.mark.parametrize('kwargs,match', [
    (dict(vis_interval=-1), 'vis_interval'), (dict(cell=2), 'cell'),
    (dict(vis_at_end=1), 'vis_at_end'), (dict(name=''), 'name')])
def test_position_map_hook_refuses_bad_arguments(kwargs, match):
    from aemim_mm.engine.hooks import PositionMapHook
    with pytest.raises(ValueError, match=match):
        PositionMapHook(**kwargs)


def test_views_become_batch_entries_view_major():
    from mmpretrain.structures import DataSample
    pre = MODELS.build(dict(PREPROCESSOR, type='ViewsAsBatchDataPreprocessor'))
    views = [torch.full((2, 3, 8, 8), float(v), dtype=torch.uint8)
             for v in range(4)]
    samples = [DataSample(metainfo=dict(sample_idx=i)) for i in range(2)]
    out = pre(dict(inputs=views, data_samples=samples), True)
    assert out['inputs'].shape == (8, 3, 8, 8)
    first = out['inputs'][:, 0, 0, 0]
    mean, std = PREPROCESSOR['mean'][0], PREPROCESSOR['std'][0]
    assert_close(first, (torch.arange(4.).repeat_interleave(2) - mean) / std)
    assert [s.sample_idx for s in out['data_samples']] == [0, 1] * 4
    single = pre(dict(inputs=views[0], data_samples=samples), True)
    assert single['inputs'].shape == (2, 3, 8, 8)
