"""Encoder export (aemim_mm.apis.export, tools/export_encoder.py).

The central check: the exported encoder computes the same features as the
pre-trained model's clean path, in mmpretrain's ``VisionTransformer`` (loaded
through ``init_cfg=dict(type='Pretrained', prefix='backbone.')``, as the
fine-tuning configs do) and in timm's ``VisionTransformer``.
"""
import os.path as osp
import sys
from pathlib import Path

import pytest
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.registry import init_default_scope
from torch.testing import assert_close

import aemim_mm  # noqa: F401  (registration + safe globals)
from aemim_mm.apis import (FORMATS, CheckpointFormatError, export_encoder,
                           mmpretrain_vit_to_timm, timm_vit_to_mmpretrain)
from aemim_mm.models.adapters import adapter_route

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / 'tests' / 'test_models'))
import tiny_models  # noqa: E402
from module_loader import load_tool  # noqa: E402

DIMS, IMG, PATCH = tiny_models.DIMS, tiny_models.IMG, tiny_models.PATCH
LAYERS = 2
ARCH = dict(embed_dims=DIMS, num_layers=LAYERS, num_heads=2,
            feedforward_channels=2 * DIMS)


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmpretrain')


def _perturb(model: torch.nn.Module, seed: int = 0) -> None:
    """Make every parameter distinct (LN weights != 1, adv != clean)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)


def _runner_checkpoint(model: torch.nn.Module, path: Path) -> Path:
    """Save a checkpoint shaped like mmengine Runner's (optimizer, hub)."""
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=1e-3)
    for p in params:
        p.grad = torch.zeros_like(p)
    optim.step()
    buffer = HistoryBuffer()
    buffer.update(0.5)
    torch.save(
        dict(meta=dict(cfg='model = dict()', epoch=1, iter=1),
             state_dict=model.state_dict(),
             optimizer=optim.state_dict(),
             message_hub=dict(log_scalars={'train/loss': buffer},
                              runtime_info={'iter': 1})), path)
    return path


@pytest.fixture(scope='module')
def images():
    return tiny_models.valid_images(3, seed=1)


def _wrapper(backbone: dict, adapter: str = 'ln'):
    init_default_scope('mmpretrain')
    model = tiny_models.build_wrapper(
        tiny_models.mae_cfg(backbone), adapter=adapter)
    _perturb(model)
    model.eval()
    return model


@pytest.fixture(scope='module', params=['ln', 'cls_token'])
def mae_export(request, tmp_path_factory):
    """An AEMIM (MAEViT) checkpoint and all its exports."""
    model = _wrapper(tiny_models.MAE_VIT, request.param)
    tmp = tmp_path_factory.mktemp(f'mae_{request.param}')
    src = _runner_checkpoint(model, tmp / 'epoch_1.pth')
    return model, export_encoder(src, tmp / 'out')


@pytest.fixture(scope='module')
def timm_export(tmp_path_factory):
    """An AEMIM (TimmMAEViT) checkpoint and all its exports."""
    model = _wrapper(tiny_models.TIMM_VIT)
    tmp = tmp_path_factory.mktemp('timm')
    src = _runner_checkpoint(model, tmp / 'iter_5.pth')
    return model, export_encoder(src, tmp / 'out')


def _clean_features(model, images):
    with torch.no_grad(), adapter_route(model, 'clean'):
        return model.algorithm.backbone(images, mask=None)[0]


def _adv_features(model, images):
    with torch.no_grad(), adapter_route(model, 'adv'):
        return model.algorithm.backbone(images, mask=None)[0]


def _mmpretrain_vit(path: str, img_size: int = IMG, **kwargs):
    from mmpretrain.registry import MODELS
    vit = MODELS.build(dict(
        type='VisionTransformer', arch=ARCH, img_size=img_size,
        patch_size=PATCH, out_type='raw', final_norm=True,
        init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.'),
        **kwargs))
    vit.init_weights()
    vit.eval()  # (mmpretrain's ViT.train() returns None)
    return vit


def _timm_vit(state_dict, img_size: int = IMG):
    from timm.models.vision_transformer import VisionTransformer
    vit = VisionTransformer(img_size=img_size, patch_size=PATCH,
                            embed_dim=DIMS, depth=LAYERS, num_heads=2,
                            mlp_ratio=2, num_classes=0, global_pool='token')
    vit.load_state_dict(state_dict, strict=True)  # nothing missing / extra
    vit.eval()
    return vit


# ------------------------------------------------------------- equality
@pytest.mark.parametrize('fmt', ['mmpretrain', 'det'])
def test_mmpretrain_vit_matches_clean_path(mae_export, images, fmt):
    model, result = mae_export
    vit = _mmpretrain_vit(result.paths[fmt])
    with torch.no_grad():
        exported = vit(images)[0]
    clean = _clean_features(model, images)
    assert_close(exported, clean)
    # the adversarial route computes something else: the test can tell
    assert not torch.allclose(exported, _adv_features(model, images),
                              atol=1e-4)


def test_timm_vit_matches_clean_path(mae_export, images):
    model, result = mae_export
    vit = _timm_vit(torch.load(result.paths['timm'], weights_only=True))
    with torch.no_grad():
        assert_close(vit.forward_features(images),
                     _clean_features(model, images))


@pytest.mark.parametrize('fmt', ['mmpretrain', 'timm'])
def test_timm_backbone_exports(timm_export, images, fmt):
    """TimmMAEViT: timm file = clean keys; mmpretrain file = renamed."""
    model, result = timm_export
    clean = _clean_features(model, images)
    if fmt == 'timm':
        state = torch.load(result.paths['timm'], weights_only=True)
        assert list(state) == [k for k in model.algorithm.backbone
                               .timm_state_dict()]
        with torch.no_grad():
            assert_close(_timm_vit(state).forward_features(images), clean)
    else:
        with torch.no_grad():
            assert_close(_mmpretrain_vit(result.paths[fmt])(images)[0], clean)


def test_pos_embed_resized_for_another_image_size(mae_export):
    """A fine-tuning size other than the pre-training one loads (resized)."""
    _, result = mae_export
    vit = _mmpretrain_vit(result.paths['mmpretrain'], img_size=2 * IMG)
    out = vit(tiny_models.valid_images(1, size=2 * IMG))[0]
    assert out.shape == (1, 1 + (2 * IMG // PATCH)**2, DIMS)


# ------------------------------------------------------- file contents
@pytest.mark.parametrize('fmt', FORMATS)
def test_outputs_are_tensors_only(mae_export, fmt):
    model, result = mae_export
    path = result.paths[fmt]
    # no pickled globals at all: loads without aemim_mm's allow-list
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
    data = torch.load(path, weights_only=True)
    state = data if fmt == 'timm' else data['state_dict']
    assert state and all(isinstance(v, torch.Tensor) for v in state.values())
    if fmt != 'timm':
        assert data['meta']['format'] == fmt
        assert all(isinstance(v, (str, int)) for v in data['meta'].values())
        assert data['meta']['embed_dims'] == DIMS
        assert data['meta']['num_layers'] == LAYERS
        assert data['meta']['img_size'] == IMG
    assert not any('adv_' in k or k.startswith('neck') for k in state)


def test_kept_and_dropped(mae_export):
    model, result = mae_export
    full = model.state_dict()
    clean_backbone = [k for k in full if k.startswith('backbone.')
                      and not k.rsplit('.', 1)[-1].startswith('adv_')]
    assert result.kept == clean_backbone
    adv = [k for k in full if k.rsplit('.', 1)[-1].startswith('adv_')]
    assert adv and result.dropped['adversarial adapters (adv_*)'] == adv
    assert result.dropped['decoder (neck.*)'] == [
        k for k in full if k.startswith('neck.') and k not in adv]
    assert result.dropped_entries == ['meta', 'optimizer', 'message_hub']
    state = torch.load(result.paths['mmpretrain'],
                       weights_only=True)['state_dict']
    assert list(state) == clean_backbone
    for key in clean_backbone:
        assert torch.equal(state[key], full[key])
    # (a) and (b) share the format
    det = torch.load(result.paths['det'], weights_only=True)['state_dict']
    assert list(det) == list(state)


def test_key_renaming_roundtrip():
    from mmpretrain.models import VisionTransformer
    state = VisionTransformer(arch=ARCH, img_size=IMG,
                              patch_size=PATCH).state_dict()
    timm_state = mmpretrain_vit_to_timm(state)
    assert 'norm.weight' in timm_state and 'blocks.1.norm1.weight' in \
        timm_state and 'blocks.0.mlp.fc1.weight' in timm_state
    assert list(timm_vit_to_mmpretrain(timm_state)) == list(state)
    with pytest.raises(CheckpointFormatError, match="'ln2.weight'"):
        mmpretrain_vit_to_timm({'ln2.weight': torch.ones(2)})


def test_swin_exports_mmpretrain_only(tmp_path, images):
    """SimMIM + Swin: the mmpretrain backbone format; timm / det refused."""
    init_default_scope('mmpretrain')
    model = tiny_models.build_wrapper(tiny_models.simmim_cfg())
    _perturb(model)
    model.eval()
    src = _runner_checkpoint(model, tmp_path / 'swin.pth')
    with pytest.raises(CheckpointFormatError, match=r"\['timm'\] need a "
                       'plain ViT'):
        export_encoder(src, tmp_path / 'out', formats=['mmpretrain', 'timm'])
    assert not (tmp_path / 'out').exists()  # nothing written before the check
    result = export_encoder(src, tmp_path / 'out', formats=['mmpretrain'])
    assert result.dropped['pre-training only parameters'] == [
        'backbone.mask_token']
    from mmpretrain.registry import MODELS
    swin = MODELS.build(dict(
        type='SwinTransformer',
        arch=dict(embed_dims=32, depths=[2, 2], num_heads=[2, 2]),
        img_size=IMG, out_indices=(1, ),
        stage_cfgs=dict(block_cfgs=dict(window_size=4)),
        init_cfg=dict(type='Pretrained', checkpoint=result.paths['mmpretrain'],
                      prefix='backbone.')))
    swin.init_weights()
    swin.eval()
    with torch.no_grad(), adapter_route(model, 'clean'):
        expected = model.algorithm.backbone(images, mask=None)[0]
        assert_close(swin(images)[0], expected)


# -------------------------------------------------------------- errors
def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothing.pth'):
        export_encoder(tmp_path / 'nothing.pth', tmp_path)


@pytest.mark.parametrize('formats, match', [
    (['onnx'], 'non-empty selection'), ([], 'non-empty selection'),
    (['timm', 'timm'], 'duplicates')])
def test_bad_formats(tmp_path, formats, match):
    with pytest.raises(ValueError, match=match):
        export_encoder(tmp_path / 'x.pth', tmp_path, formats=formats)


def test_refuses_to_overwrite_source(mae_export):
    _, result = mae_export
    src = result.src
    with pytest.raises(ValueError, match='overwrite the source'):
        export_encoder(src, paths={'timm': src}, formats=['timm'])


def _classifier_state():
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    return MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='VisionTransformer', arch=ARCH, img_size=IMG,
                      patch_size=PATCH),
        head=dict(type='LinearClsHead', num_classes=3,
                  in_channels=DIMS))).state_dict()


@pytest.mark.parametrize('content, match', [
    (lambda: {'model': {}}, r"expected a dict with a 'state_dict' entry"),
    (lambda: {'state_dict': _classifier_state()}, 'classifier'),
    (lambda: {'state_dict': {'backbone.' + k: v for k, v in
                             _classifier_state().items()
                             if k.startswith('backbone.')}},
     r'no decoder weights \(neck\.\*\)'),
    (lambda: {'state_dict': {'backbone.conv.weight': torch.ones(1),
                             'neck.fc.weight': torch.ones(1)}},
     'not a MAE-style pre-training checkpoint'),
])
def test_not_a_pretraining_checkpoint(tmp_path, content, match):
    path = tmp_path / 'bad.pth'
    torch.save(content(), path)
    with pytest.raises(CheckpointFormatError, match=match) as info:
        export_encoder(path, tmp_path / 'out')
    assert str(path) in str(info.value)
    assert not (tmp_path / 'out').exists()


# ----------------------------------------------------------------- CLI
def test_cli_prints_kept_and_dropped(mae_export, tmp_path, capsys):
    _, result = mae_export
    load_tool('export_encoder').main([result.src, '--out-dir', str(tmp_path),
                       '--formats', 'timm', 'mmpretrain'])
    out = capsys.readouterr().out
    stem = osp.splitext(osp.basename(result.src))[0]
    assert f'kept {len(result.kept)} tensors' in out
    assert 'backbone.layers.*: 24' in out
    assert 'adversarial adapters (adv_*)' in out
    assert 'decoder (neck.*)' in out
    assert 'dropped checkpoint entries: meta, optimizer, message_hub' in out
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f'{stem}_mmpretrain.pth', f'{stem}_timm.pth']


def test_key_converters_importable_from_export():
    from aemim_mm.apis import export, key_converters
    for name in ('CheckpointFormatError', 'mmpretrain_vit_to_timm',
                 'timm_vit_to_mmpretrain'):
        assert getattr(export, name) is getattr(key_converters, name)


def test_cli_refusal_is_one_line_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / 'bad.pth'
    torch.save({'state_dict': {'head.fc.weight': torch.ones(1)}}, path)
    out_dir = tmp_path / 'out'
    code = load_tool('export_encoder').main([str(path), '--out-dir',
                                             str(out_dir)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith('error: ') and err.count('\n') == 1
    assert str(path) in err
    assert not out_dir.exists()
