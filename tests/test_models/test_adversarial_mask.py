"""ADIOS-style learned masks on SimMIM (AdversarialMaskSimMIM), its hook
(AdversarialMaskHook) and AEMIM around it: tiny ViTs on CPU, float64 where
results are compared."""
import copy
from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmpretrain.registry import MODELS
from torch import nn
from torch.testing import assert_close

from aemim_mm.engine.hooks import AdversarialMaskHook
from test_adpe import simmim_vit_cfg
from tiny_models import IMG, build_wrapper, simmim_samples, valid_images

#: 8 px blocks of 4 px patches: a 4 x 4 grid of blocks, 10 of them masked
BLOCK, RATIO, BLOCKS, MASKED = 8, 0.6, 16, 10
MASK_KEY = {'mask_net': dict(lr_mult=-1.0, decay_mult=0.0)}


def learned_cfg(**kwargs) -> dict:
    cfg = simmim_vit_cfg()
    cfg.update(type='AdversarialMaskSimMIM', mask_ratio=RATIO,
               mask_patch_size=BLOCK,
               mask_net=dict(type='MaskingUNet', img_size=IMG, mask_fbase=8,
                             norm='instance', num_blocks=4))
    cfg.update(kwargs)
    return cfg


def build(guarded: bool = True, **kwargs):
    model = MODELS.build(learned_cfg(**kwargs))
    model.init_weights()
    model.guarded = guarded
    return model


class FixedScores(nn.Module):
    """A masking network whose masked slot is a fixed per-pixel map (the
    data's mask, upsampled): its top blocks are the data's masked ones."""

    def __init__(self, pixels: torch.Tensor) -> None:
        super().__init__()
        self.pixels = pixels
        self.scale = nn.Parameter(torch.ones(()))     # a parameter to climb

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        masked = self.pixels.to(x) * self.scale
        return torch.stack([masked, 1 - masked], dim=1)


def data_masks(seed: int = 0) -> torch.Tensor:
    """SimMIM-like data masks: exactly MASKED of the BLOCKS 8 px blocks,
    at the 8 x 8 patch grid."""
    gen = torch.Generator().manual_seed(seed)
    blocks = torch.stack([torch.randperm(BLOCKS, generator=gen) < MASKED
                          for _ in range(2)]).float().view(2, 4, 4)
    return blocks.repeat_interleave(2, 1).repeat_interleave(2, 2)


def optim_wrapper(model, custom_keys=MASK_KEY, lr: float = 0.05):
    return build_optim_wrapper(model, dict(
        type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=lr, betas=(0.9, 0.95),
                       weight_decay=0.05),
        paramwise_cfg=dict(custom_keys=custom_keys)))


def start_hook(model, wrapper) -> None:
    AdversarialMaskHook().before_train(SimpleNamespace(
        model=model, optim_wrapper=wrapper,
        message_hub=MessageHub.get_instance('test_adversarial_mask')))


# ------------------------------------------------------------ the mask


def test_the_mask_is_binary_block_wise_at_the_ratio_with_gradient():
    model = build()
    mask = model.learned_mask(valid_images(2))
    assert mask.shape == (2, IMG // 4, IMG // 4)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    blocks = mask.view(2, 4, 2, 4, 2)
    assert (blocks == blocks[:, :, :1, :, :1]).all()     # whole blocks
    assert mask.sum((1, 2)).tolist() == [MASKED * 4] * 2
    # straight-through: the net gets a gradient, but none from the mask's
    # size (fixed at k blocks)
    size = torch.autograd.grad(mask.sum(), model.mask_net.head.weight,
                               retain_graph=True)[0]
    assert_close(size, torch.zeros_like(size), atol=1e-6, rtol=0)
    weights = torch.arange(float(mask[0].numel())).view_as(mask[0])
    (mask * weights).sum().backward()
    grads = [p.grad for p in model.mask_net.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_straight_through_gradient_is_the_block_sum_of_dL_dmask():
    """d loss / d score of a block = the sum of d loss / d mask over its
    patches, centred over the image's blocks (the scores are the mean
    masked probability per block; a mask of k blocks keeps its size)."""
    torch.manual_seed(0)
    pixels = torch.rand(2, IMG, IMG, dtype=torch.float64)
    model = build().double()
    model.mask_net = FixedScores(pixels).double()
    inputs = valid_images(2).double()
    grads = {}
    mask = model.learned_mask(inputs)
    mask.retain_grad()
    model.head.loss(model.neck(model.backbone(inputs, mask)[0]), inputs,
                    mask).backward()
    grads['mask'] = mask.grad.view(2, 4, 2, 4, 2).sum((2, 4))
    # the score of a block is scale * mean(pixels over it)
    means = torch.nn.functional.avg_pool2d(pixels[:, None], BLOCK)[:, 0]
    centred = means - means.mean((1, 2), keepdim=True)
    assert_close(model.mask_net.scale.grad, (grads['mask'] * centred).sum())
    assert (grads['mask'] * means).sum() != model.mask_net.scale.grad


# ------------------------------------------------------------ off = plain


def test_the_data_s_mask_as_scores_is_plain_simmim():
    """A masking network that scores the data's masked blocks highest gives
    SimMIM's loss and every encoder gradient, float64, exactly."""
    torch.manual_seed(0)
    plain = MODELS.build(simmim_vit_cfg()).double()
    plain.init_weights()
    learned = build().double()
    missing, unexpected = learned.load_state_dict(plain.state_dict(),
                                                  strict=False)
    assert not unexpected and all(k.startswith('mask_net.') for k in missing)
    masks = data_masks()
    samples = simmim_samples(2)
    for sample, mask in zip(samples, masks):
        sample.set_mask(mask)
    learned.mask_net = FixedScores(masks.repeat_interleave(4, 1)
                                   .repeat_interleave(4, 2)).double()
    inputs = valid_images(2).double()
    loss_p = plain.loss(inputs, samples)['loss']
    loss_l = learned.loss(inputs, samples)['loss']
    assert_close(loss_l, loss_p, rtol=0, atol=0)
    loss_p.backward()
    loss_l.backward()
    mine = dict(learned.named_parameters())
    for key, param in plain.named_parameters():
        if param.grad is not None:
            assert_close(mine[key].grad, param.grad, rtol=0, atol=0,
                         msg=key)


# ------------------------------------------------------------- ascent


def test_the_masking_network_climbs_while_the_encoder_descends():
    """Adam's first step: the masking network's parameters move by
    +lr * sign(grad), the encoder's by -lr * sign(grad) (and its decay)."""
    torch.manual_seed(0)
    model = build().double()
    wrapper = optim_wrapper(model)
    start_hook(model, wrapper)
    inputs = valid_images(2).double()
    net = [p for p in model.mask_net.parameters()]
    weight = model.backbone.patch_embed.projection.weight
    before = [p.detach().clone() for p in net + [weight]]
    loss = model.loss(inputs)['loss']
    grads = torch.autograd.grad(loss, net + [weight], retain_graph=True,
                                allow_unused=True)
    wrapper.update_params(loss)
    lr, checked = 0.05, 0
    for p, b, g in zip(net, before, grads):
        if g is None:
            continue
        big = g.abs() > 1e-4      # Adam: lr * g / (|g| + 1e-8)
        assert_close((p.detach() - b)[big], lr * g.sign()[big], rtol=1e-3,
                     atol=1e-7)
        checked += int(big.sum())
    assert checked > 0
    moved = weight.detach() - before[-1] * (1 - lr * 0.05)
    big = grads[-1].abs() > 1e-8
    assert (moved.sign()[big] == -grads[-1].sign()[big]).all()


# ----------------------------------------------------------- refusals


@pytest.mark.parametrize('kwargs,match', [
    (dict(mask_ratio=1.0), 'mask_ratio must be a number in'),
    (dict(mask_ratio=0), 'mask_ratio must be a number in'),
    (dict(mask_patch_size=6), 'multiple of the encoder'),
    (dict(mask_patch_size=12), 'that divides the image'),
    (dict(mask_net=dict(type='MaskingUNet', img_size=IMG, num_masks=4)),
     'two slots'),
])
def test_bad_options_are_refused_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(learned_cfg(**kwargs))


@pytest.mark.parametrize('custom_keys,match', [
    ({}, 'negative one'),
    ({'mask_net': dict(lr_mult=-1.0)}, 'weight decay'),
])
def test_hook_refuses_a_network_that_would_not_climb(custom_keys, match):
    model = build(guarded=False)
    with pytest.raises(ValueError, match=match) as err:
        start_hook(model, optim_wrapper(model, custom_keys))
    assert 'mask_net.' in str(err.value) and "'mask_net'" in str(err.value)
    assert not model.guarded


def test_training_without_the_hook_is_refused():
    model = build(guarded=False)
    with pytest.raises(RuntimeError, match='AdversarialMaskHook'):
        model.loss(valid_images(2))
    with torch.no_grad():           # evaluation and pictures stay free
        model.visualize(valid_images(2))
    with pytest.raises(ValueError, match='no AdversarialMaskSimMIM'):
        plain = MODELS.build(simmim_vit_cfg())
        start_hook(plain, optim_wrapper(plain))


def test_visualize_draws_the_view_the_mask_and_the_masked_view():
    vis = build().visualize(valid_images(2))
    assert list(vis) == ['view', 'mask', 'masked']
    for images in vis.values():
        assert images.shape == (2, 3, IMG, IMG)
        assert 0 <= images.min() and images.max() <= 1


# ------------------------------------------------------ export, AEMIM


def test_export_loads_strictly_into_mmpretrain_s_vit(tmp_path):
    from aemim_mm.apis import export_encoder
    from tiny_models import DIMS
    model = build()
    ckpt, out = tmp_path / 'pretrain.pth', tmp_path / 'encoder.pth'
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    export_encoder(ckpt, formats=('mmpretrain', ),
                   paths=dict(mmpretrain=out))
    state = torch.load(out, weights_only=True)['state_dict']
    assert not any('mask_net' in k or 'mask_token' in k for k in state)
    vit = MODELS.build(dict(
        type='VisionTransformer', img_size=IMG, patch_size=4,
        arch=dict(embed_dims=DIMS, num_layers=2, num_heads=2,
                  feedforward_channels=2 * DIMS)))
    vit.load_state_dict({k[len('backbone.'):]: v for k, v in state.items()},
                        strict=True)


def test_aemim_attacks_pixels_under_the_learned_mask():
    """AEMIM around the learned-mask SimMIM: one mask of the clean image
    for every pass; the masking network's gradient is the clean loss's
    alone; the clean-first step (the clean graph freed before the
    adversarial pass) updates as one backward of the whole loss()."""
    torch.manual_seed(0)
    wrapper = build_wrapper(copy.deepcopy(learned_cfg()),
                            attack=dict(type='FeatureDistancePGD', eps=2,
                                        steps=1))
    wrapper.algorithm.guarded = True
    wrapper.sample_seed = 3                # same draws in both models
    twin = copy.deepcopy(wrapper)
    uint8 = torch.randint(0, 256, (2, 3, IMG, IMG), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(0))
    data = dict(inputs=uint8, data_samples=[None] * 2)

    inputs = twin.data_preprocessor(dict(data), True)['inputs']
    losses = twin.loss(inputs, None)
    assert losses['adv_linf'] > 0
    net = list(twin.algorithm.mask_net.parameters())
    g_clean = torch.autograd.grad(losses['loss_clean'], net,
                                  retain_graph=True, allow_unused=True)
    g_adv = torch.autograd.grad(losses['loss_adv'], net, retain_graph=True,
                                allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in g_clean)
    assert all(g is None or not g.any() for g in g_adv)
    total, _ = twin.parse_losses(losses)
    total.backward()
    expected = {n: p.grad for n, p in twin.named_parameters()
                if p.grad is not None}
    assert any(n.startswith('algorithm.mask_net.') for n in expected)

    # train_step with SGD(lr=1): new = old - grad
    before = {n: p.detach().clone() for n, p in wrapper.named_parameters()}
    optim = OptimWrapper(torch.optim.SGD(wrapper.parameters(), lr=1.0))
    wrapper.train_step(dict(data), optim)
    for name, p in wrapper.named_parameters():
        grad = before[name] - p.detach()
        assert_close(grad, expected.get(name, torch.zeros_like(grad)),
                     rtol=1e-4, atol=1e-6, msg=name)




# ------------------------------------------------ one process = two


ITERS = 3


def build_for_processes():
    """The learned-mask SimMIM (``one_equals_two``)."""
    return build(guarded=False)


def train_for_processes(model, module, indices) -> list:
    """AdamW with the masking network's ascent group, ITERS steps on the
    samples ``indices`` (``one_equals_two``)."""
    from one_equals_two import train_steps
    wrapper = optim_wrapper(module)
    start_hook(model, wrapper)
    return train_steps(model, wrapper, valid_images(4).double()[indices],
                       ITERS)


@pytest.mark.slow
def test_two_processes_equal_one_process(tmp_path):
    """The learned mask is per sample (no draw) and its straight-through
    gradient is centred per image, so the masking network's gradient, too,
    is DDP's average of the halves': two gloo processes of 2 images equal
    one of 4 (losses, encoder, masking network)."""
    from one_equals_two import one_equals_two
    state = one_equals_two(tmp_path, __name__)
    assert any(v.any() for k, v in state.items()
               if k.startswith('mask_net.'))
