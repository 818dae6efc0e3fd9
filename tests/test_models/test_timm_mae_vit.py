"""Tests for :class:`aemim_mm.models.backbones.timm_mae_vit.TimmMAEViT`."""
from typing import Any, Dict, List

import pytest
import torch
import torch.nn as nn
from mmpretrain.registry import MODELS
from timm.models.vision_transformer import Block, VisionTransformer

from aemim_mm.models.backbones.timm_mae_vit import TimmMAEViT

TINY_ARCH: Dict[str, int] = dict(
    embed_dims=64, num_layers=2, num_heads=4, feedforward_channels=128)


def _tiny(**kwargs: Any) -> TimmMAEViT:
    cfg: Dict[str, Any] = dict(arch=TINY_ARCH, img_size=32, patch_size=8)
    cfg.update(kwargs)
    model = TimmMAEViT(**cfg)
    model.init_weights()
    return model


def test_registered_in_mmpretrain_models() -> None:
    assert MODELS.get('TimmMAEViT') is TimmMAEViT
    model = MODELS.build(
        dict(type='TimmMAEViT', arch=TINY_ARCH, img_size=32, patch_size=8))
    assert isinstance(model, TimmMAEViT)


def test_structure() -> None:
    model = _tiny(norm_eps=1e-5)
    assert isinstance(model.cls_token, nn.Parameter)
    assert model.cls_token.shape == (1, 1, 64)
    assert model.num_patches == 16
    assert model.embed_dims == 64
    assert model.mask_ratio == 0.75
    assert model.pos_embed.shape == (1, 17, 64)
    assert not model.pos_embed.requires_grad
    assert len(model.blocks) == 2
    assert all(isinstance(b, Block) for b in model.blocks)
    assert model.blocks[0].mlp.fc1.out_features == 128
    norms = [m for m in model.modules() if 'norm' in type(m).__name__.lower()]
    assert norms, 'expected LayerNorms'
    # Every norm is a plain torch LayerNorm (the adapters rely on it).
    assert all(type(m) is nn.LayerNorm for m in norms)
    assert all(m.eps == 1e-5 for m in norms)
    assert type(model.norm) is nn.LayerNorm


@pytest.mark.parametrize('arch,dims,depth', [('deit-tiny', 192, 12),
                                             ('deit-s', 384, 12)])
def test_named_arch(arch: str, dims: int, depth: int) -> None:
    model = TimmMAEViT(arch=arch, img_size=32, patch_size=16)
    assert model.embed_dims == dims
    assert len(model.blocks) == depth


def test_arch_dict_with_mlp_ratio() -> None:
    model = TimmMAEViT(
        arch=dict(embed_dims=32, num_layers=1, num_heads=2, mlp_ratio=3),
        img_size=16,
        patch_size=8)
    assert model.blocks[0].mlp.fc1.out_features == 96


def test_init_weights() -> None:
    from mmpretrain.models.utils import build_2d_sincos_position_embedding
    model = TimmMAEViT(arch=TINY_ARCH, img_size=32, patch_size=8)
    with torch.no_grad():
        model.pos_embed.zero_()
        model.norm.weight.fill_(3.)
    model.init_weights()
    torch.testing.assert_close(
        model.pos_embed.data,
        build_2d_sincos_position_embedding(4, 64, cls_token=True))
    torch.testing.assert_close(model.norm.weight.data, torch.ones(64))
    torch.testing.assert_close(model.blocks[0].attn.qkv.bias.data,
                               torch.zeros(192))
    assert 0.005 < model.cls_token.std().item() < 0.05
    # Xavier-uniform bound for the 2-D view of the patch projection.
    w = model.patch_embed.proj.weight
    bound = (6. / (w.shape[0] + w[0].numel()))**0.5
    assert w.abs().max().item() <= bound


def test_init_cfg_pretrained(tmp_path) -> None:
    src = _tiny()
    ckpt = tmp_path / 'enc.pth'
    torch.save({'state_dict': src.state_dict()}, ckpt)
    dst = TimmMAEViT(
        arch=TINY_ARCH,
        img_size=32,
        patch_size=8,
        init_cfg=dict(type='Pretrained', checkpoint=str(ckpt)))
    dst.init_weights()
    for key, value in src.state_dict().items():
        torch.testing.assert_close(dst.state_dict()[key], value)


def test_non_square_pos_embed_matches_grid() -> None:
    model = TimmMAEViT(arch=TINY_ARCH, img_size=(16, 32), patch_size=8)
    assert model.patch_resolution == (2, 4)
    pos = model.pos_embed[0, 1:]  # (H*W, C), row-major like the patches
    # Tokens in the same row share the row half of the encoding; tokens in
    # the same column share the column half.
    row0, row1 = pos[:4], pos[4:]
    half = 32
    torch.testing.assert_close(row0[:, :half], row0[:1, :half].expand(4, -1))
    torch.testing.assert_close(row0[:, half:], row1[:, half:])


@pytest.mark.parametrize('img_size,patch_size,mask_ratio', [
    (32, 8, 0.75),
    (32, 4, 0.5),
    (48, 16, 0.6),
    (32, 8, 0.0),
    ((16, 32), 8, 0.75),
])
def test_masked_forward_shapes(img_size, patch_size: int,
                               mask_ratio: float) -> None:
    model = _tiny(
        img_size=img_size, patch_size=patch_size, mask_ratio=mask_ratio)
    h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
    num_patches = (h // patch_size) * (w // patch_size)
    len_keep = int(num_patches * (1 - mask_ratio))
    x = torch.randn(3, 3, h, w)
    latent, mask, ids_restore = model(x)
    assert latent.shape == (3, 1 + len_keep, 64)
    assert mask.shape == (3, num_patches)
    assert ids_restore.shape == (3, num_patches)
    torch.testing.assert_close(
        mask.sum(dim=1), torch.full((3, ), float(num_patches - len_keep)))
    assert set(mask.unique().tolist()) <= {0., 1.}
    # ids_restore is a permutation per row.
    torch.testing.assert_close(
        ids_restore.sort(dim=1).values,
        torch.arange(num_patches).expand(3, -1))
    assert torch.isfinite(latent).all()


@pytest.mark.parametrize('mask', [None, False])
def test_unmasked_forward(mask) -> None:
    model = _tiny()
    out = model(torch.randn(2, 3, 32, 32), mask=mask)
    assert isinstance(out, tuple) and len(out) == 1
    assert out[0].shape == (2, 17, 64)


def test_bad_mask_argument() -> None:
    with pytest.raises(TypeError, match='mask'):
        _tiny()(torch.randn(1, 3, 32, 32), mask='yes')


def test_random_masking_matches_mmpretrain() -> None:
    from mmpretrain.models import MAEViT
    model = _tiny()
    x = torch.randn(2, 16, 64)
    torch.manual_seed(0)
    ours = model.random_masking(x, 0.75)
    torch.manual_seed(0)
    theirs = MAEViT.random_masking(model, x, 0.75)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b)


def test_instance_override_of_random_masking(monkeypatch) -> None:
    """The AEMIM wrapper fixes the mask by overriding the instance method."""
    model = _tiny()
    calls: List[float] = []
    fixed_keep = torch.tensor([[0, 5, 10, 15], [1, 2, 3, 4]])

    def fixed_masking(x: torch.Tensor, mask_ratio: float):
        calls.append(mask_ratio)
        b, num, dims = x.shape
        others = [[i for i in range(num) if i not in row.tolist()]
                  for row in fixed_keep]
        ids_shuffle = torch.cat([fixed_keep, torch.tensor(others)], dim=1)
        ids_restore = ids_shuffle.argsort(dim=1)
        x_masked = torch.gather(
            x, 1, fixed_keep.unsqueeze(-1).expand(-1, -1, dims))
        mask = torch.ones(b, num)
        mask.scatter_(1, fixed_keep, 0.)
        return x_masked, mask, ids_restore

    monkeypatch.setattr(model, 'random_masking', fixed_masking)
    latent, mask, ids_restore = model(torch.randn(2, 3, 32, 32))
    assert calls == [0.75]
    assert latent.shape == (2, 5, 64)
    expected = torch.ones(2, 16)
    expected.scatter_(1, fixed_keep, 0.)
    torch.testing.assert_close(mask, expected)


def test_mae_algorithm_loss_and_backward() -> None:
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='MAE',
            backbone=dict(
                type='TimmMAEViT',
                arch=TINY_ARCH,
                img_size=32,
                patch_size=8,
                mask_ratio=0.75),
            neck=dict(
                type='MAEPretrainDecoder',
                num_patches=16,
                patch_size=8,
                in_chans=3,
                embed_dim=64,
                decoder_embed_dim=32,
                decoder_depth=1,
                decoder_num_heads=4),
            head=dict(
                type='MAEPretrainHead',
                norm_pix=True,
                patch_size=8,
                loss=dict(type='PixelReconstructionLoss', criterion='L2'))))
    model.init_weights()
    losses = model.loss(torch.randn(2, 3, 32, 32), data_samples=[])
    assert torch.isfinite(losses['loss'])
    losses['loss'].backward()
    backbone = model.backbone
    assert backbone.cls_token.grad is not None
    assert backbone.blocks[0].attn.qkv.weight.grad is not None
    assert backbone.patch_embed.proj.weight.grad is not None
    assert backbone.pos_embed.grad is None
    feats = model.extract_feat(torch.randn(1, 3, 32, 32))
    assert feats[0].shape == (1, 17, 64)


@pytest.mark.parametrize('img_size,patch_size', [(32, 8), (48, 16)])
def test_timm_export_matches_timm_vit(img_size: int, patch_size: int) -> None:
    model = _tiny(img_size=img_size, patch_size=patch_size).eval()
    vit = VisionTransformer(
        img_size=img_size,
        patch_size=patch_size,
        embed_dim=64,
        depth=2,
        num_heads=4,
        mlp_ratio=2.,
        num_classes=0).eval()
    result = vit.load_state_dict(model.timm_state_dict(), strict=False)
    assert result.missing_keys == []
    assert result.unexpected_keys == []
    x = torch.randn(2, 3, img_size, img_size)
    with torch.no_grad():
        torch.testing.assert_close(
            vit.forward_features(x), model(x, mask=None)[0])


def test_timm_export_skips_adversarial_adapters() -> None:
    model = _tiny()
    model.adv_cls_token = nn.Parameter(torch.zeros(1, 1, 64))
    model.norm.register_parameter('adv_weight', nn.Parameter(torch.ones(64)))
    sd = model.timm_state_dict()
    assert 'adv_cls_token' not in sd and 'norm.adv_weight' not in sd
    assert 'norm.weight' in sd and 'cls_token' in sd


@pytest.mark.parametrize('global_pool', ['token', 'avg'])
def test_timm_export_keys_vit_base(global_pool: str) -> None:
    import timm

    # Built on the meta device: only names and shapes matter here, and a
    # full ViT-B initialisation would take seconds.
    with torch.device('meta'):
        ours = TimmMAEViT(arch='b')
        vit = timm.create_model(
            'vit_base_patch16_224',
            pretrained=False,
            num_classes=0,
            global_pool=global_pool)
    sd = ours.timm_state_dict()
    # load_state_dict checks shapes too (it raises on a mismatch).
    result = vit.load_state_dict(sd, strict=False)
    if global_pool == 'token':
        assert result.missing_keys == []
        assert result.unexpected_keys == []
    else:
        # timm's avg pooling swaps the final norm for a fresh fc_norm.
        assert set(result.missing_keys) <= {'fc_norm.weight', 'fc_norm.bias'}
        assert set(result.unexpected_keys) <= {'norm.weight', 'norm.bias'}
    timm_shapes = {k: v.shape for k, v in vit.state_dict().items()}
    for key, value in sd.items():
        if key in timm_shapes:
            assert value.shape == timm_shapes[key], key


@pytest.mark.parametrize('arch', ['s', 'vit-xxl', ''])
def test_bad_arch_string(arch: str) -> None:
    with pytest.raises(ValueError, match=r'`arch`.*deit-small'):
        TimmMAEViT(arch=arch)


def test_bad_arch_type() -> None:
    with pytest.raises(ValueError, match='arch'):
        TimmMAEViT(arch=12)


@pytest.mark.parametrize('missing',
                         ['embed_dims', 'num_layers', 'num_heads',
                          'feedforward_channels'])
def test_arch_dict_missing_key(missing: str) -> None:
    arch = dict(TINY_ARCH)
    del arch[missing]
    with pytest.raises(KeyError, match=missing):
        TimmMAEViT(arch=arch, img_size=32, patch_size=8)


def test_arch_dict_inconsistent() -> None:
    with pytest.raises(ValueError, match='divisible'):
        TimmMAEViT(
            arch=dict(
                embed_dims=64,
                num_layers=1,
                num_heads=3,
                feedforward_channels=128))
