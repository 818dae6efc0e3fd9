"""Fine-tuning / linear-probe configs (configs/finetune, configs/linear_probe).

Every config parses, builds its model without data, and has the settings of
the paper's Table 2 (or of its header, for the non-paper ones), asserted from
EXPECTED below; the layer-decay constructor gives decreasing learning rates by
depth; and the CIFAR-10 configs train and evaluate for a few iterations on
CPU, initialised from an encoder exported by tools/export_encoder.py (the
ViT-T/4 ones from the project's CIFAR-10 AEMIM pre-training, the ResNet-50
linear probe from the AEMIM SparK ResNet-50 pre-training config).
"""
import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope, init_default_scope
from PIL import Image
from torch.testing import assert_close

import aemim_mm  # noqa: F401
from aemim_mm.apis import export_encoder

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO_ROOT / 'configs' / 'finetune').glob('*.py')) + sorted(
    (REPO_ROOT / 'configs' / 'linear_probe').glob('*.py'))
NAMES = [f'{p.parent.name}/{p.stem}' for p in CONFIGS]

# --------------------------------------------------------------- the table
# paper Table 2 (ViT-S/16, ViT-B/16 on ImageNet-1K)
TABLE2 = dict(optimizer='AdamW', betas=(0.9, 0.999), wd=0.05, batch=2048,
              per_gpu=256, warmup=5, rand_aug=(9, 0.5), smoothing=0.1,
              mixup=0.8, cutmix=1.0, drop_path=0.1, img_size=224,
              pooling='avg', frozen=-1)
EXPECTED = {
    'finetune/vit-s_aemim-300e-pre_200e_in1k': dict(
        TABLE2, backbone='VisionTransformer', arch='deit-small', dims=384,
        lr=1e-3 * 2048 / 256, layer_decay=0.8, epochs=200),
    'finetune/vit-b_aemim-300e-pre_100e_in1k': dict(
        TABLE2, backbone='VisionTransformer', arch='base', dims=768,
        lr=1e-3 * 2048 / 256, layer_decay=0.7, epochs=100),
    'finetune/vit-b_aemim-800e-pre_100e_in1k': dict(
        TABLE2, backbone='VisionTransformer', arch='base', dims=768,
        lr=5e-4 * 2048 / 256, layer_decay=0.65, epochs=100),
    # SimMIM's Swin-B fine-tuning (mmpretrain's benchmark config)
    'finetune/swin-b_aemim-simmim-100e-pre_100e_in1k': dict(
        TABLE2, backbone='SwinTransformer', arch='base', dims=1024,
        lr=1.25e-3 * 2048 / 512, layer_decay=0.9, epochs=100, warmup=20),
    # iTPN-CLIP's HiViT-B: mmpretrain's HiViT recipe, 100 epochs, layer
    # scale as pre-trained (the config's header)
    'finetune/hivit-b_aemim-itpn-clip-pre_100e_in1k': dict(
        TABLE2, backbone='HiViT', arch='base', dims=512,
        lr=5e-4 * 1024 / 512, layer_decay=None, epochs=100, batch=1024,
        per_gpu=64, rand_aug=(9, 0.5), layer_scale=0.1),
    # small CIFAR-10 runs (not in the paper)
    'finetune/vit-t-p4_cifar10_ft': dict(
        TABLE2, backbone='VisionTransformer', arch='deit-tiny', dims=192,
        lr=1e-3 * 512 / 256, layer_decay=0.75, epochs=100, batch=512,
        per_gpu=512, img_size=32),
    'linear_probe/vit-t-p4_cifar10_lp': dict(
        optimizer='LARS', betas=None, wd=0.0, batch=512, per_gpu=512,
        warmup=10, rand_aug=None, smoothing=None, mixup=None, cutmix=None,
        drop_path=0.0, img_size=32, pooling='cls_token', frozen=12,
        backbone='VisionTransformer', arch='deit-tiny', dims=192,
        lr=0.1 * 512 / 256, layer_decay=None, epochs=90,
        neck='ClsBatchNormNeck'),
    # a ResNet-50 pre-trained with SparK (ImageNet, 224 px): SimCLR's probe
    # (`arch` is the ResNet depth; the images are resized to img_size)
    'linear_probe/resnet50_cifar10_lp': dict(
        optimizer='LARS', betas=None, wd=0.0, batch=512, per_gpu=512,
        warmup=10, rand_aug=None, smoothing=None, mixup=None, cutmix=None,
        drop_path=0.0, img_size=224, pooling='avg', frozen=4,
        backbone='ResNet', arch=50, dims=2048, lr=0.1 * 512 / 256,
        layer_decay=None, epochs=90, neck='GlobalAveragePooling'),
}


def _gpus(name: str) -> int:
    return 1 if 'cifar10' in name else 16 if 'hivit' in name else 8


@pytest.fixture(scope='module')
def cfgs():
    return {name: Config.fromfile(path) for name, path in zip(NAMES, CONFIGS)}


def _build_model(cfg_model):
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(copy.deepcopy(cfg_model))


def test_every_config_has_a_row():
    assert sorted(NAMES) == sorted(EXPECTED)


@pytest.mark.parametrize('name', NAMES)
def test_config_settings(cfgs, name):
    cfg, exp = cfgs[name], EXPECTED[name]
    backbone = cfg.model.backbone
    assert backbone.type == exp['backbone']
    if exp['backbone'] == 'ResNet':  # no arch / img_size: depth, Resize
        assert backbone.depth == exp['arch']
        for loader in ('train_dataloader', 'val_dataloader',
                       'test_dataloader'):
            resize = [t for t in cfg[loader].dataset.pipeline
                      if t.type == 'Resize']
            assert [t.scale for t in resize] == [exp['img_size']]
    else:
        assert backbone.arch == exp['arch']
        assert backbone.img_size == exp['img_size']
    assert backbone.get('drop_path_rate', 0.0) == exp['drop_path']
    assert backbone.get('layer_scale_init_value', 0.0) == exp.get(
        'layer_scale', 0.0)
    assert backbone.get('frozen_stages', -1) == exp['frozen']
    assert backbone.init_cfg.type == 'Pretrained'
    assert backbone.init_cfg.prefix == 'backbone.'
    assert backbone.init_cfg.checkpoint  # a path, to be overridden

    optim = cfg.optim_wrapper
    assert optim.optimizer.type == exp['optimizer']
    assert optim.optimizer.lr == pytest.approx(exp['lr'])
    assert optim.optimizer.weight_decay == exp['wd']
    if exp['betas'] is not None:
        assert tuple(optim.optimizer.get('betas', (0.9, 0.999))) == \
            exp['betas']
    if exp['layer_decay'] is None:
        assert 'constructor' not in optim
    else:
        assert optim.constructor == 'LearningRateDecayOptimWrapperConstructor'
        assert optim.paramwise_cfg.layer_decay_rate == exp['layer_decay']

    warmup, cosine = cfg.param_scheduler
    assert warmup.type == 'LinearLR' and warmup.end == exp['warmup']
    assert cosine.type == 'CosineAnnealingLR'
    assert (cosine.begin, cosine.end) == (exp['warmup'], exp['epochs'])
    assert cosine.T_max == exp['epochs'] - exp['warmup']
    assert cfg.train_cfg.max_epochs == exp['epochs']

    per_gpu = cfg.train_dataloader.batch_size
    assert per_gpu == exp['per_gpu']
    assert per_gpu * _gpus(name) == exp['batch']
    assert cfg.auto_scale_lr.base_batch_size == exp['batch']

    pipeline = {t.type: t for t in cfg.train_dataloader.dataset.pipeline}
    if exp['rand_aug'] is None:
        assert 'RandAugment' not in pipeline
    else:
        aug = pipeline['RandAugment']
        assert (aug.magnitude_level, aug.magnitude_std) == exp['rand_aug']
        assert aug.num_policies == 2
    augments = cfg.model.get('train_cfg', {}).get('augments', [])
    alphas = {a.type: a.alpha for a in augments}
    assert alphas.get('Mixup') == exp['mixup']
    assert alphas.get('CutMix') == exp['cutmix']
    loss = cfg.model.head.loss
    assert loss.get('label_smooth_val') == exp['smoothing']
    assert cfg.model.head.num_classes == (10 if 'cifar10' in name else 1000)
    assert cfg.model.head.in_channels == exp['dims']

    # `_scope_` never reaches the collate function
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        collate = cfg[loader].get('collate_fn', {})
        assert '_scope_' not in collate and '_delete_' not in collate


@pytest.mark.parametrize('name', NAMES)
def test_model_builds(cfgs, name):
    """The whole model (full size) builds without data; pooling as set."""
    exp = EXPECTED[name]
    model = _build_model(cfgs[name].model)
    assert type(model).__name__ == 'ImageClassifier'
    backbone = model.backbone
    if exp['backbone'] == 'VisionTransformer':
        assert backbone.out_type == ('avg_featmap' if exp['pooling'] == 'avg'
                                     else 'cls_token')
        assert backbone.final_norm is (exp['pooling'] != 'avg')
        assert backbone.embed_dims == exp['dims']
    else:  # Swin, ResNet: global average pooling neck
        assert type(model.neck).__name__ == 'GlobalAveragePooling'
    if exp['frozen'] > 0:
        trainable = [n for n, p in model.named_parameters() if p.requires_grad]
        assert trainable and all(n.startswith('head.') for n in trainable)
        assert type(model.neck).__name__ == exp['neck']
    if exp['mixup'] is not None:
        augments = model.data_preprocessor.batch_augments.augments
        assert [type(a).__name__ for a in augments] == ['Mixup', 'CutMix']
        assert [a.alpha for a in augments] == [exp['mixup'], exp['cutmix']]
    if exp['smoothing'] is not None:
        assert model.head.loss_module.label_smooth_val == exp['smoothing']


# ------------------------------------------------------------ layer decay
TINY = {
    'VisionTransformer': dict(
        type='VisionTransformer',
        arch=dict(embed_dims=32, num_layers=3, num_heads=2,
                  feedforward_channels=64),
        img_size=32, patch_size=8, out_type='avg_featmap', final_norm=False),
    'SwinTransformer': dict(
        type='SwinTransformer',
        arch=dict(embed_dims=16, depths=[2, 2], num_heads=[2, 2]),
        img_size=32, out_indices=(1, ),
        stage_cfgs=dict(block_cfgs=dict(window_size=4))),
}
DECAY_CONFIGS = [n for n in NAMES if EXPECTED[n]['layer_decay'] is not None]


@pytest.mark.parametrize('name', DECAY_CONFIGS)
def test_layer_decay_lr_by_depth(cfgs, name):
    """The config's optimiser settings on a small model of the same kind."""
    exp = EXPECTED[name]
    model_cfg = copy.deepcopy(cfgs[name].model)
    model_cfg.backbone = TINY[exp['backbone']]
    model_cfg.head.in_channels = 32  # both tiny backbones give 32 channels
    init_default_scope('mmpretrain')
    model = _build_model(model_cfg)
    optim_cfg = copy.deepcopy(cfgs[name].optim_wrapper)
    if optim_cfg.get('type') == 'AmpOptimWrapper':  # needs a GPU; the
        optim_cfg.type = 'OptimWrapper'  # constructor is what is tested here
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        wrapper = build_optim_wrapper(model, optim_cfg)
    lr = {g['param_name']: g['lr'] for g in wrapper.optimizer.param_groups}
    wd = {g['param_name']: g['weight_decay']
          for g in wrapper.optimizer.param_groups}
    base, decay = exp['lr'], exp['layer_decay']
    assert lr['head.fc.weight'] == pytest.approx(base)
    if exp['backbone'] == 'VisionTransformer':
        # depth: embeddings 0, blocks 1..3, head 4 (of 5)
        assert lr['backbone.layers.2.attn.qkv.weight'] == pytest.approx(
            base * decay)
        assert lr['backbone.layers.0.attn.qkv.weight'] == pytest.approx(
            base * decay**3)
        assert lr['backbone.patch_embed.projection.weight'] == \
            pytest.approx(base * decay**4)
        assert lr['backbone.cls_token'] == lr['backbone.pos_embed'] == \
            lr['backbone.patch_embed.projection.weight']
        assert wd['backbone.layers.0.ln1.weight'] == 0
        assert wd['backbone.layers.0.attn.qkv.bias'] == 0
        assert wd['backbone.layers.0.attn.qkv.weight'] == exp['wd']
    else:
        first = lr['backbone.stages.0.blocks.0.attn.w_msa.qkv.weight']
        last = lr['backbone.stages.1.blocks.1.attn.w_msa.qkv.weight']
        assert lr['backbone.patch_embed.projection.weight'] < first < last \
            < base
        assert first / last == pytest.approx(decay**3)  # 3 blocks apart


# ---------------------------------------------------- CPU run on CIFAR-like
def _class_folders(root: Path, per_class: dict) -> None:
    """Small PNGs in class folders (two classes), train/ and test/."""
    rng = np.random.default_rng(0)
    for split, count in per_class.items():
        for label, cls in enumerate(('airplane', 'cat')):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(count):
                base = np.full((32, 32, 3), 60 + 120 * label, np.uint8)
                noise = rng.integers(0, 60, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(base + noise).save(folder / f'{i}.png')


def _two_iterations(cfg) -> None:
    """Shrink ``cfg``'s schedule to 2 iterations, a checkpoint and a
    validation after the second, logging every iteration."""
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2,
                         val_interval=2)
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.5,
                                by_epoch=False, begin=0, end=2)]
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=2,
                                        by_epoch=False)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.log_processor = dict(by_epoch=False)


@pytest.fixture(scope='module')
def exported_cifar_encoder(tmp_path_factory):
    """A ViT-T/4 AEMIM pre-training checkpoint (the project's CIFAR config),
    saved as the Runner saves it, then exported."""
    tmp = tmp_path_factory.mktemp('pretrain')
    cfg = Config.fromfile(REPO_ROOT / 'configs' / 'aemim_vit-t-p4_cifar10.py')
    init_default_scope('mmpretrain')
    model = _build_model(cfg.model)
    model.init_weights()
    torch.save(dict(meta=dict(epoch=200), state_dict=model.state_dict(),
                    optimizer={}), tmp / 'epoch_200.pth')
    result = export_encoder(tmp / 'epoch_200.pth', tmp / 'export',
                            formats=['mmpretrain'])
    return result.paths['mmpretrain']


@pytest.mark.parametrize('name', ['finetune/vit-t-p4_cifar10_ft',
                                  'linear_probe/vit-t-p4_cifar10_lp'])
def test_cifar_config_trains_and_evaluates(exported_cifar_encoder, tmp_path,
                                           name):
    from mmengine.runner import Runner
    data = tmp_path / 'data'
    _class_folders(data, {'train': 4, 'test': 2})
    cfg = Config.fromfile(CONFIGS[NAMES.index(name)])
    cfg.work_dir = str(tmp_path / 'work')
    cfg.model.backbone.init_cfg.checkpoint = exported_cifar_encoder
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].update(batch_size=4, num_workers=0,
                           persistent_workers=False, pin_memory=False)
        cfg[loader].dataset.data_root = str(data)
    _two_iterations(cfg)

    runner = Runner.from_cfg(cfg)
    model = runner.model
    model.init_weights()  # loads the export; runner.train() will not redo it
    exported = torch.load(exported_cifar_encoder,
                          weights_only=True)['state_dict']
    backbone = model.backbone.state_dict()
    for key in ('patch_embed.projection.weight', 'layers.11.attn.qkv.weight',
                'cls_token', 'pos_embed'):
        assert_close(backbone[key], exported['backbone.' + key])
    before = {k: v.clone() for k, v in model.state_dict().items()}

    runner.train()
    loss = runner.message_hub.get_scalar('train/loss').current()
    assert np.isfinite(loss)
    after = model.state_dict()
    assert not torch.equal(after['head.layers.head.weight' if 'lp' in name
                                 else 'head.fc.weight'],
                           before['head.layers.head.weight' if 'lp' in name
                                  else 'head.fc.weight'])
    changed = not torch.equal(after['backbone.layers.0.attn.qkv.weight'],
                              before['backbone.layers.0.attn.qkv.weight'])
    assert changed is ('ft' in name)  # the linear probe keeps it frozen

    metrics = runner.val()
    assert set(metrics) == {'accuracy/top1'}
    assert 0.0 <= metrics['accuracy/top1'] <= 100.0


@pytest.fixture(scope='module')
def exported_spark_resnet50(tmp_path_factory):
    """A SparK ResNet-50 AEMIM pre-training checkpoint (the project's config,
    full size, split BatchNorms with running statistics of their own),
    saved as the Runner saves it, then exported."""
    tmp = tmp_path_factory.mktemp('spark')
    cfg = Config.fromfile(
        REPO_ROOT / 'configs' / 'algorithms' /
        'aemim_spark_sparse-resnet50_8xb512-amp-coslr-800e_in1k.py')
    init_default_scope('mmpretrain')
    model = _build_model(cfg.model)
    model.init_weights()
    state = model.state_dict()
    gen = torch.Generator().manual_seed(0)
    for key, value in state.items():   # distinct clean / adv statistics
        if key.endswith('running_mean'):
            value.copy_(torch.randn(value.shape, generator=gen) * 0.01)
        elif key.endswith('running_var'):
            value.copy_(torch.rand(value.shape, generator=gen) + 0.5)
    assert 'backbone.bn1.adv_running_mean' in state
    torch.save(dict(meta=dict(epoch=800), state_dict=state, optimizer={}),
               tmp / 'epoch_800.pth')
    result = export_encoder(tmp / 'epoch_800.pth', tmp / 'export',
                            formats=['mmpretrain'])
    return result.paths['mmpretrain']


def test_resnet_linear_probe_trains_and_evaluates(exported_spark_resnet50,
                                                  tmp_path):
    """The SparK ResNet-50 export loads (clean BatchNorm statistics
    included); the frozen encoder, its statistics too, stays as loaded."""
    from mmengine.runner import Runner
    data = tmp_path / 'data'
    _class_folders(data, {'train': 2, 'test': 1})
    name = 'linear_probe/resnet50_cifar10_lp'
    cfg = Config.fromfile(CONFIGS[NAMES.index(name)])
    cfg.work_dir = str(tmp_path / 'work')
    cfg.model.backbone.init_cfg.checkpoint = exported_spark_resnet50
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].update(batch_size=2, num_workers=0,
                           persistent_workers=False, pin_memory=False)
        cfg[loader].dataset.data_root = str(data)
        for step in cfg[loader].dataset.pipeline:  # 224 px: slow on a CPU
            if step.type == 'Resize':
                step.scale = 64
    _two_iterations(cfg)

    runner = Runner.from_cfg(cfg)
    model = runner.model
    model.init_weights()  # loads the export; runner.train() will not redo it
    exported = torch.load(exported_spark_resnet50,
                          weights_only=True)['state_dict']
    backbone = model.backbone.state_dict()
    assert sorted('backbone.' + k for k in backbone) == sorted(exported)
    for key in ('conv1.weight', 'bn1.running_mean', 'bn1.running_var',
                'layer4.2.bn3.weight', 'layer4.2.bn3.running_var'):
        assert_close(backbone[key], exported['backbone.' + key])
    before = {k: v.clone() for k, v in model.state_dict().items()}

    runner.train()
    loss = runner.message_hub.get_scalar('train/loss').current()
    assert np.isfinite(loss)
    after = model.state_dict()
    assert not torch.equal(after['head.fc.weight'], before['head.fc.weight'])
    for key, value in after.items():    # frozen, in eval mode
        if key.startswith('backbone.'):
            assert torch.equal(value, before[key]), key

    metrics = runner.val()
    assert set(metrics) == {'accuracy/top1'}
    assert 0.0 <= metrics['accuracy/top1'] <= 100.0
