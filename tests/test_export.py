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


# ------------------------------------------------ SparK's sparse ConvNets
def _spark_cfg(kind: str) -> dict:
    """A tiny SparK: ResNet-18 (8 wide) or a 4-stage ConvNeXt, 64 px."""
    if kind == 'resnet':
        backbone = dict(type='SparseResNet', depth=18, base_channels=8,
                        stem_channels=8, out_indices=(0, 1, 2, 3))
        norm = dict(type='SparseSyncBatchNorm2d')
    else:
        backbone = dict(type='SparseConvNeXt',
                        arch=dict(depths=[1, 2, 1, 1],
                                  channels=[8, 16, 32, 64]),
                        out_indices=(0, 1, 2, 3), gap_before_output=False)
        norm = dict(type='SparseLN2d', eps=1e-6)
    return dict(
        type='SparK', input_size=64, downsample_raito=32, mask_ratio=0.5,
        enc_dec_norm_cfg=norm, enc_dec_norm_dim=64, backbone=backbone,
        neck=dict(type='SparKLightDecoder', feature_dim=32,
                  upsample_ratio=32, mid_channels=0, last_act=False),
        head=dict(type='SparKPretrainHead',
                  loss=dict(type='PixelReconstructionLoss', criterion='L2')),
        data_preprocessor=dict(
            type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375], to_rgb=True))


#: kind -> (adapter, the fine-tuning backbone built with the pre-training's
#: structure, what the weights say about it)
SPARK = {
    'resnet': ('bn', dict(type='ResNet', depth=18, base_channels=8,
                          stem_channels=8),
               dict(depth=18, block='BasicBlock', stage_blocks='2,2,2,2',
                    stem_channels=8, base_channels=8, deep_stem=0)),
    # SparseConvNeXt has no final norms: no out_indices, no norm{i}
    'convnext': ('norm', dict(type='ConvNeXt',
                              arch=dict(depths=[1, 2, 1, 1],
                                        channels=[8, 16, 32, 64]),
                              out_indices=()),
                 dict(depths='1,2,1,1', channels='8,16,32,64',
                      stem_patch_size=4, layer_scale=1, use_grn=0,
                      linear_pw_conv=1)),
}


@pytest.mark.parametrize('wrapped', [True, False], ids=['aemim', 'plain'])
@pytest.mark.parametrize('kind', sorted(SPARK))
def test_spark_convnet_exports_to_the_classification_backbone(
        kind, wrapped, tmp_path):
    """SparK's encoder -> mmpretrain ResNet / ConvNeXt, strict; every adv_
    key (split BatchNorms' running statistics too) and the decoder side
    dropped; the clean running statistics kept; same features."""
    from mmpretrain.registry import MODELS
    from aemim_mm.models.adapters import is_adversarial_key
    from aemim_mm.models.algorithms.spark import sparse_active
    adapter, target_cfg, arch = SPARK[kind]
    torch.manual_seed(0)
    if wrapped:
        model = MODELS.build(dict(
            type='AdversarialMIMWrapper', algorithm=_spark_cfg(kind),
            adapter=adapter, attack=dict(type='FeatureDistancePGD', eps=2,
                                         steps=1)))
    else:
        model = MODELS.build(_spark_cfg(kind))
    model.init_weights()
    _perturb(model)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():   # running statistics as training leaves them:
        for name, buffer in model.named_buffers():  # clean != adv
            if name.endswith('running_mean'):
                buffer.copy_(torch.randn(buffer.shape, generator=gen) * 0.1)
            elif name.endswith('running_var'):
                buffer.copy_(torch.rand(buffer.shape, generator=gen) + 0.5)
            elif name.endswith('num_batches_tracked'):
                buffer.fill_(3)
    state = model.state_dict()
    if wrapped and kind == 'resnet':     # clean and adv statistics differ
        assert not torch.equal(state['backbone.bn1.running_mean'],
                               state['backbone.bn1.adv_running_mean'])
        assert 'backbone.layer1.0.bn1.adv_num_batches_tracked' in state
    src = _runner_checkpoint(model, tmp_path / 'spark.pth')

    for fmt in ('det', 'timm'):
        with pytest.raises(CheckpointFormatError, match=(
                rf"\['{fmt}'\] need a plain ViT.*Formats for this backbone: "
                r"\['mmpretrain'\]")):
            export_encoder(src, tmp_path / 'out', formats=['mmpretrain', fmt])
    assert not (tmp_path / 'out').exists()
    result = export_encoder(src, tmp_path / 'out', formats=['mmpretrain'])
    data = torch.load(result.paths['mmpretrain'], weights_only=True)
    exported = {k[len('backbone.'):]: v
                for k, v in data['state_dict'].items()}
    assert result.kind == kind and result.target == target_cfg['type']
    assert data['meta']['finetune_backbone'] == target_cfg['type']
    assert {k: data['meta'][k] for k in arch} == arch
    assert not any('adv_' in k for k in exported)
    for key, value in exported.items():
        assert torch.equal(value, state['backbone.' + key]), key
    decoder_side = [k for k in state if not is_adversarial_key(k)
                    and k.startswith(('enc_dec_norms.', 'enc_dec_projectors.',
                                      'mask_tokens.'))]
    assert result.dropped['SparK decoder side (enc_dec_norms.*, '
                          'enc_dec_projectors.*, mask_tokens.*)'] == \
        decoder_side
    assert result.dropped.get('adversarial adapters (adv_*)', []) == [
        k for k in state if is_adversarial_key(k)]
    assert set(result.kept).union(*map(set, result.dropped.values())) == \
        set(state)

    backbone = MODELS.build(target_cfg)
    backbone.load_state_dict(exported, strict=True)
    backbone.eval()
    algorithm = model.algorithm if wrapped else model
    algorithm.eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        with sparse_active(torch.ones(2, 1, 2, 2, dtype=torch.bool)):
            expected = algorithm.backbone(images)[-1]
        if kind == 'resnet':
            got = backbone(images)[-1]
        else:       # no out_indices: run the stages
            got = images
            for down, stage in zip(backbone.downsample_layers,
                                   backbone.stages):
                got = stage(down(got))
    assert_close(got, expected, atol=1e-5, rtol=1e-5)
    if kind == 'convnext':  # a fine-tuning ConvNeXt adds its final norm
        report = MODELS.build(dict(target_cfg, out_indices=-1)).\
            load_state_dict(exported, strict=False)
        assert (report.missing_keys, report.unexpected_keys) == (
            ['norm3.weight', 'norm3.bias'], [])
