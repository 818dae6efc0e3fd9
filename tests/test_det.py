"""COCO Mask R-CNN transfer (aemim_mm.det): the ViT backbone, its pyramid,
checkpoint loading, layer decay, the configs, and a tiny end-to-end run.

These tests need mmdet and full mmcv (compiled ops). Without them they skip,
unless ``AEMIM_REQUIRE_DET=1`` (``make test``, CI): then they fail.
"""
import math
import os
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {
    'vit-s': REPO / 'configs' / 'det' / 'mask-rcnn_vit-s_aemim-pre_1x_coco.py',
    'vit-b': REPO / 'configs' / 'det' / 'mask-rcnn_vit-b_aemim-pre_1x_coco.py',
}
TINY_ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


def _require_detection():
    """Skips (or fails with AEMIM_REQUIRE_DET=1) without mmdet / mmcv.ops."""
    problem = None
    try:
        metadata.version('mmdet')
        from mmcv import ops  # noqa: F401
    except (metadata.PackageNotFoundError, ImportError) as e:
        problem = f'detection needs mmdet and full mmcv with ops: {e!r}'
    if problem and os.environ.get('AEMIM_REQUIRE_DET') == '1':
        pytest.fail(f'{problem} (AEMIM_REQUIRE_DET=1; run make env-det)')
    if problem:
        pytest.skip(f'{problem}; run make env-det')


_require_detection()
# third-party noise of pycocotools under numpy 2
pytestmark = pytest.mark.filterwarnings(
    'ignore:__array__ implementation:DeprecationWarning')

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmpretrain.models import MAEViT  # noqa: E402
from mmpretrain.models.utils import resize_pos_embed  # noqa: E402
from torch.testing import assert_close  # noqa: E402

import aemim_mm.det  # noqa: E402,F401
from aemim_mm.det import (CATEGORIES, SimpleFeaturePyramid,  # noqa: E402
                          ViTDetBackbone, ViTLayerDecayOptimWrapperConstructor,
                          make_tiny_coco)


def tiny_backbone(**kwargs):
    cfg = dict(arch=TINY_ARCH, img_size=32, patch_size=8)
    cfg.update(kwargs)
    return ViTDetBackbone(**cfg)


def export_encoder(path, img_size=32, patch_size=8, seed=0):
    """A pre-trained MAE encoder in the export format of
    tools/export_encoder.py: {'state_dict': {'backbone.<key>': tensor}}."""
    torch.manual_seed(seed)
    encoder = MAEViT(arch=TINY_ARCH, img_size=img_size, patch_size=patch_size)
    encoder.init_weights()
    with torch.no_grad():  # MAE's sin-cos pos_embed, made distinguishable
        encoder.pos_embed.add_(torch.randn_like(encoder.pos_embed))
    state = {f'backbone.{k}': v.clone() for k, v in encoder.state_dict().items()}
    torch.save({'state_dict': state}, path)
    return state


# --- backbone and pyramid ----------------------------------------------------

@pytest.mark.parametrize('window_size, global_attn_indexes', [(0, ()), (2, (1, )),
                                                               (3, ())])
def test_pyramid_shapes_non_square_input(window_size, global_attn_indexes):
    backbone = tiny_backbone(window_size=window_size,
                             global_attn_indexes=global_attn_indexes)
    neck = SimpleFeaturePyramid(in_channels=32, out_channels=16, num_outs=5)
    image = torch.randn(2, 3, 64, 96)  # token grid 8 x 12 (padded for ws 3)
    feats = backbone(image)
    assert [f.shape for f in feats] == [(2, 32, 8, 12)]
    outs = neck(feats)
    assert [o.shape for o in outs] == [(2, 16, 32, 48), (2, 16, 16, 24),
                                       (2, 16, 8, 12), (2, 16, 4, 6),
                                       (2, 16, 2, 3)]


def test_window_covering_the_grid_equals_global_attention():
    torch.manual_seed(0)
    global_vit = tiny_backbone(window_size=0)
    windowed = tiny_backbone(window_size=4, global_attn_indexes=())
    windowed.load_state_dict(global_vit.state_dict())
    global_vit.eval()  # (mmpretrain's BaseBackbone.train returns None)
    windowed.eval()
    image = torch.randn(2, 3, 32, 32)  # 4 x 4 tokens: one window
    assert windowed.window_block_indexes == (0, 1)
    assert_close(windowed(image)[0], global_vit(image)[0])
    # a larger image: several windows, so the outputs must differ
    image = torch.randn(1, 3, 64, 64)
    assert not torch.allclose(windowed(image)[0], global_vit(image)[0], atol=1e-4)


def test_windowed_attention_is_local():
    torch.manual_seed(0)
    backbone = tiny_backbone(arch=dict(TINY_ARCH, num_layers=1), window_size=2,
                             final_norm=False)
    backbone.eval()
    image = torch.randn(1, 3, 32, 40)  # 4 x 5 tokens, padded to 4 x 6
    changed = image.clone()
    changed[..., :8, :8] += 1  # token (0, 0): window rows 0-1, cols 0-1
    diff = (backbone(changed)[0] - backbone(image)[0]).abs().amax(dim=1)[0]
    inside = torch.zeros(4, 5, dtype=torch.bool)
    inside[:2, :2] = True
    assert (diff[inside] > 1e-4).all()
    assert (diff[~inside] == 0).all()


def test_drop_path_moves_behind_the_window_merge():
    """ViTDet drops the attention branch per image, not per window."""
    torch.manual_seed(0)
    # drop path rates linspace(0, 0.9, 2): block 1 (windowed) gets 0.9
    backbone = tiny_backbone(window_size=2, global_attn_indexes=(0, ),
                             drop_path_rate=0.9)
    windowed, global_ = backbone.layers[1].attn, backbone.layers[0].attn
    assert isinstance(windowed.out_drop, torch.nn.Identity)
    assert windowed.window_drop_path.drop_prob == pytest.approx(0.9)
    assert not hasattr(global_, 'window_drop_path')
    branch = []
    windowed.register_forward_hook(lambda m, a, out: branch.append(out))
    backbone.train()
    backbone(torch.randn(16, 3, 32, 40))  # 4 x 5 tokens: 6 padded windows
    out = branch[0]
    assert out.shape == (16, 20, 32)
    zero_tokens = (out == 0).all(dim=-1)  # (image, token)
    dropped = zero_tokens.all(dim=1)
    assert torch.equal(zero_tokens.any(dim=1), dropped)  # all or nothing
    assert 0 < int(dropped.sum()) < 16


@pytest.mark.parametrize('kwargs, match', [
    (dict(window_size=-1), 'window_size'),
    (dict(window_size=True), 'window_size'),    # a bool is not an int
    (dict(window_size=2, global_attn_indexes=(True, )), 'global_attn_indexes'),
    (dict(window_size=2, global_attn_indexes=(2, )), 'global_attn_indexes'),
    (dict(with_cls_token=True), 'with_cls_token'),
    (dict(out_type='cls_token'), 'out_type'),
])
def test_backbone_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny_backbone(**kwargs)


@pytest.mark.parametrize('kwargs, match', [
    (dict(scale_factors=(2.0, 4.0)), 'scale_factors'),
    (dict(scale_factors=(3.0, )), 'scale_factors'),
    (dict(num_outs=3), 'num_outs'),
    (dict(in_channels=30), 'in_channels'),
])
def test_pyramid_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SimpleFeaturePyramid(**dict(dict(in_channels=32), **kwargs))


# --- loading an exported encoder ---------------------------------------------

@pytest.mark.parametrize('img_size', [32, 48, 64])
def test_exported_encoder_loads_with_pos_embed_resize(tmp_path, img_size):
    path = tmp_path / 'encoder.pth'
    state = export_encoder(path, img_size=32)  # 4 x 4 grid + class token
    assert state['backbone.pos_embed'].shape == (1, 17, 32)
    backbone = tiny_backbone(
        img_size=img_size,
        init_cfg=dict(type='Pretrained', checkpoint=str(path), prefix='backbone.'))
    backbone.init_weights()
    ours = backbone.state_dict()
    assert set(ours) == {k[len('backbone.'):] for k in state} - {'cls_token'}
    for key, value in ours.items():
        if key != 'pos_embed':
            assert_close(value, state[f'backbone.{key}'], msg=key)
    grid = img_size // 8
    expected = resize_pos_embed(state['backbone.pos_embed'][:, 1:], (4, 4),
                                (grid, grid), mode='bicubic', num_extra_tokens=0)
    assert backbone.pos_embed.shape == (1, grid * grid, 32)
    assert_close(backbone.pos_embed.data, expected)
    if img_size == 32:
        assert_close(backbone.pos_embed.data, state['backbone.pos_embed'][:, 1:])


def test_checkpoint_pos_embed_without_class_token_loads(tmp_path):
    source = tiny_backbone(img_size=32)
    backbone = tiny_backbone(img_size=64)
    backbone.load_state_dict(source.state_dict())
    assert_close(backbone.pos_embed.data,
                 resize_pos_embed(source.pos_embed.data, (4, 4), (8, 8),
                                  mode='bicubic', num_extra_tokens=0))


def test_bad_pos_embed_in_checkpoint_is_rejected():
    state = tiny_backbone().state_dict()
    state['pos_embed'] = torch.zeros(1, 11, 32)  # neither n*n nor n*n + 1
    with pytest.raises(ValueError, match=r'pos_embed .*\(1, 11, 32\)'):
        tiny_backbone().load_state_dict(state)


def test_missing_pretrained_checkpoint_names_the_option(tmp_path):
    backbone = tiny_backbone(init_cfg=dict(
        type='Pretrained', checkpoint=str(tmp_path / 'nope.pth'), prefix='backbone.'))
    with pytest.raises(FileNotFoundError,
                       match=r'model\.backbone\.init_cfg\.checkpoint.*nope\.pth'):
        backbone.init_weights()


# --- layer-wise lr decay -----------------------------------------------------

class TinyDetector(torch.nn.Module):
    """A model with the detector's layout and no get_layer_depth."""

    def __init__(self):
        super().__init__()
        self.backbone = tiny_backbone(window_size=2, global_attn_indexes=(1, ))
        self.neck = SimpleFeaturePyramid(in_channels=32, out_channels=16)
        self.head = torch.nn.Linear(16, 3)


@pytest.mark.parametrize('decay', [0.75, 0.65])
def test_layer_decay_lr_multipliers(decay):
    model = TinyDetector()
    constructor = ViTLayerDecayOptimWrapperConstructor(
        dict(optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05)),
        dict(layer_decay_rate=decay, flat_decay_mult=0.0,
             custom_keys={'pos_embed': dict(decay_mult=0.0)}))
    groups = {g['param_name']: g for g in constructor(model).optimizer.param_groups}
    assert set(groups) == {n for n, _ in model.named_parameters()}
    num_layers = 2  # depths: 0 embeddings, 1-2 blocks, 3 = the rest

    def lr(name):
        return groups[name]['lr']

    def expect(depth):
        return pytest.approx(2e-3 * decay**(num_layers + 1 - depth))

    assert lr('backbone.patch_embed.projection.weight') == expect(0)
    assert lr('backbone.pos_embed') == expect(0)
    assert lr('backbone.layers.0.attn.qkv.weight') == expect(1)
    assert lr('backbone.layers.1.ffn.layers.1.bias') == expect(2)
    assert lr('backbone.ln1.weight') == expect(3)
    assert lr('neck.stages.0.0.weight') == expect(3)
    assert lr('head.weight') == expect(3) == 2e-3
    # weight decay: none on 1-d parameters (norms, biases) and pos_embed
    assert groups['backbone.layers.0.attn.qkv.weight']['weight_decay'] == 0.05
    assert groups['backbone.layers.0.ln1.weight']['weight_decay'] == 0.0
    assert groups['head.bias']['weight_decay'] == 0.0
    assert groups['backbone.pos_embed']['weight_decay'] == 0.0


def test_mmpretrain_constructor_alone_cannot_serve_a_detector():
    from mmpretrain.engine.optimizers import \
        LearningRateDecayOptimWrapperConstructor
    constructor = LearningRateDecayOptimWrapperConstructor(
        dict(optimizer=dict(type='AdamW', lr=1e-3)), dict(layer_decay_rate=0.75))
    with pytest.raises(NotImplementedError, match='get_layer_depth'):
        constructor(TinyDetector())


@pytest.mark.parametrize('paramwise, model, error, match', [
    (dict(layer_decay_rate=1.5), TinyDetector, ValueError, 'layer_decay_rate'),
    (dict(layer_decay_rate=True), TinyDetector, ValueError,
     'layer_decay_rate'),     # a bool is not a number
    (dict(layer_decay_rate=0.75), lambda: torch.nn.Linear(2, 2), TypeError,
     'get_layer_depth'),
])
def test_layer_decay_rejects_bad_input(paramwise, model, error, match):
    with pytest.raises(error, match=match):
        ViTLayerDecayOptimWrapperConstructor(
            dict(optimizer=dict(type='AdamW', lr=1e-3)), paramwise)(model())


# --- configs -----------------------------------------------------------------

@pytest.mark.parametrize('name, arch, lr, decay, drop_path, channels', [
    # Table 3's base lr x batch 16 / 256
    ('vit-s', 'deit-small', 1.25e-4, 0.75, 0.1, 384),
    ('vit-b', 'base', 1.875e-4, 0.65, 0.2, 768),
])
def test_configs_have_the_table_3_settings(monkeypatch, name, arch, lr, decay,
                                           drop_path, channels):
    monkeypatch.setenv('COCO_ROOT', '/data/my_coco/')
    cfg = Config.fromfile(str(CONFIGS[name]))
    assert cfg.default_scope == 'mmdet'
    assert cfg.custom_imports['imports'] == ['aemim_mm.det']
    backbone = cfg.model.backbone
    assert (backbone.type, backbone.arch) == ('ViTDetBackbone', arch)
    assert backbone.drop_path_rate == drop_path
    assert backbone.init_cfg.type == 'Pretrained'
    assert backbone.init_cfg.prefix == 'backbone.'
    assert (cfg.model.neck.type, cfg.model.neck.in_channels) == (
        'SimpleFeaturePyramid', channels)
    optim = cfg.optim_wrapper
    assert optim.constructor == 'ViTLayerDecayOptimWrapperConstructor'
    assert optim.optimizer.type == 'AdamW'
    assert optim.optimizer.lr == pytest.approx(lr)
    assert optim.optimizer.weight_decay == 0.05
    assert tuple(optim.optimizer.betas) == (0.9, 0.999)
    assert optim.paramwise_cfg.layer_decay_rate == decay
    warmup, steps = cfg.param_scheduler
    assert (warmup.type, warmup.by_epoch, warmup.end) == ('LinearLR', False, 500)
    assert (steps.type, steps.by_epoch, list(steps.milestones)) == (
        'MultiStepLR', True, [8, 10])
    assert cfg.train_cfg.max_epochs == 12
    assert cfg.train_dataloader.batch_size * 8 == 16
    resize = cfg.train_dataloader.dataset.pipeline[2]
    assert resize.type == 'RandomChoiceResize' and resize.keep_ratio
    assert [tuple(s) for s in resize.scales] == [(1333, s) for s in range(480, 801, 32)]
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.data_root == '/data/my_coco/'
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        assert evaluator.type == 'CocoMetric'
        assert list(evaluator.metric) == ['bbox', 'segm']
        assert evaluator.ann_file == '/data/my_coco/annotations/instances_val2017.json'


@pytest.mark.parametrize('name, arch', [('vit-s', 'deit-small'), ('vit-b', 'base')])
def test_config_detector_takes_the_mae_encoder_keys(name, arch):
    """The full-size detector builds, and its backbone's keys are exactly
    mmpretrain MAEViT's (the pre-training encoder) minus the class token."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(str(CONFIGS[name]))
    cfg.model.backbone.init_cfg = None
    detector = MODELS.build(cfg.model)
    encoder = MAEViT(arch=arch, img_size=224, patch_size=16)
    assert set(detector.backbone.state_dict()) == set(encoder.state_dict()) - {'cls_token'}
    mae = encoder.state_dict()
    for key, value in detector.backbone.state_dict().items():
        expected = mae[key].shape
        if key == 'pos_embed':  # no class-token position
            expected = (1, expected[1] - 1, expected[2])
        assert value.shape == expected, key
    assert detector.backbone.window_block_indexes == (0, 1, 3, 4, 6, 7, 9, 10)
    assert [type(m).__name__ for m in (detector.neck, detector.rpn_head)] == [
        'SimpleFeaturePyramid', 'RPNHead']


def test_lr_milestones_fall_on_epochs_9_and_11():
    """Runs the config's schedulers through mmengine: the lr of each epoch."""
    from mmengine.optim.scheduler import LinearLR, MultiStepLR
    cfg = Config.fromfile(str(CONFIGS['vit-s']))
    base_lr = cfg.optim_wrapper.optimizer.lr
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=base_lr)
    warmup, steps = (dict(s) for s in cfg.param_scheduler)
    for s in (warmup, steps):
        s.pop('type')
    schedulers = [LinearLR(optimizer, **warmup), MultiStepLR(optimizer, **steps)]
    lrs = {}
    for epoch in range(1, 13):  # 1-based, 600 iterations each
        for _ in range(600):
            optimizer.step()
            schedulers[0].step()
        lrs[epoch] = optimizer.param_groups[0]['lr'] / base_lr
        schedulers[1].step()  # mmengine: after each epoch
    assert [round(lrs[e], 6) for e in range(1, 13)] == [1] * 8 + [0.1] * 2 + [0.01] * 2


# --- tiny data set and end to end --------------------------------------------

def test_make_tiny_coco(tmp_path):
    from pycocotools.coco import COCO
    paths = make_tiny_coco(tmp_path, num_train=4, num_val=2, seed=1)
    coco = COCO(paths['train2017'])
    assert len(coco.getImgIds()) == 4
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(CATEGORIES)
    for ann in coco.loadAnns(coco.getAnnIds()):
        image = coco.loadImgs(ann['image_id'])[0]
        assert (tmp_path / 'train2017' / image['file_name']).is_file()
        assert isinstance(ann['segmentation'], list) and len(ann['segmentation'][0]) >= 6
        mask = coco.annToMask(ann)
        x, y, w, h = ann['bbox']
        ys, xs = mask.nonzero()
        assert w > 10 and h > 10
        assert x - 1 <= xs.min() and xs.max() <= x + w + 1
        assert y - 1 <= ys.min() and ys.max() <= y + h + 1
        assert abs(mask.sum() - ann['area']) < 0.15 * ann['area'] + 20
    with pytest.raises(ValueError, match='min_size'):
        make_tiny_coco(tmp_path, min_size=16)


def test_mask_rcnn_trains_and_evaluates_end_to_end(tmp_path, monkeypatch):
    """The real ViT-S config, data root by env, tiny ViT by --cfg-options-style
    overrides: load an exported encoder, train 3 iterations on CPU, CocoMetric
    bbox + segm with pycocotools."""
    from mmengine.runner import Runner
    data_root = tmp_path / 'coco'
    make_tiny_coco(data_root, num_train=6, num_val=3)
    checkpoint = tmp_path / 'encoder.pth'
    encoder = export_encoder(checkpoint, img_size=32, patch_size=16)  # 2 x 2
    monkeypatch.setenv('COCO_ROOT', f'{data_root}/')
    cfg = Config.fromfile(str(CONFIGS['vit-s']))
    classes = dict(classes=CATEGORIES)
    cfg.merge_from_dict({
        'work_dir': str(tmp_path / 'work'),
        'model.backbone.arch': dict(TINY_ARCH, _delete_=True),  # str -> dict
        'model.backbone.img_size': 64,
        'model.backbone.window_size': 4,
        'model.backbone.global_attn_indexes': (1, ),
        'model.backbone.init_cfg.checkpoint': str(checkpoint),
        'model.neck.in_channels': 32,
        # narrower heads and fewer RoIs: CPU time
        'model.neck.out_channels': 64,
        'model.rpn_head.in_channels': 64,
        'model.rpn_head.feat_channels': 64,
        'model.roi_head.bbox_roi_extractor.out_channels': 64,
        'model.roi_head.bbox_head.in_channels': 64,
        'model.roi_head.bbox_head.fc_out_channels': 128,
        'model.roi_head.mask_roi_extractor.out_channels': 64,
        'model.roi_head.mask_head.in_channels': 64,
        'model.roi_head.mask_head.conv_out_channels': 64,
        'model.train_cfg.rpn_proposal.max_per_img': 200,
        'model.train_cfg.rcnn.sampler.num': 128,
        'model.test_cfg.rpn.max_per_img': 200,
        'model.test_cfg.rcnn.max_per_img': 30,
        'model.roi_head.bbox_head.num_classes': len(CATEGORIES),
        'model.roi_head.mask_head.num_classes': len(CATEGORIES),
        'train_dataloader.dataset.pipeline.2.scales': [(128, 96), (128, 128)],
        'val_dataloader.dataset.pipeline.1.scale': (128, 128),
        'train_dataloader.dataset.metainfo': classes,
        'val_dataloader.dataset.metainfo': classes,
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'val_dataloader.num_workers': 0,
        'val_dataloader.persistent_workers': False,
        'train_cfg.max_epochs': 1,
        'train_cfg.val_begin': 2,  # no validation in train(): runner.val() below
        'default_hooks.logger.interval': 1,
        'default_hooks.checkpoint': None,
        'randomness.seed': 0,
    })
    runner = Runner.from_cfg(cfg)
    model = runner.train()
    assert runner.iter == 3  # 6 images, batch 2
    # the exported encoder was loaded (3 AdamW steps at the warm-up lr
    # ~2e-6 move a weight by ~1e-5; random init differs by ~1e-1)
    backbone = model.backbone
    for key in ('patch_embed.projection.weight', 'layers.1.attn.qkv.weight'):
        assert_close(backbone.state_dict()[key], encoder[f'backbone.{key}'],
                     atol=1e-4, rtol=0)
    scalars = runner.message_hub.log_scalars
    for key in ('loss_rpn_cls', 'loss_cls', 'loss_bbox', 'loss_mask'):
        assert math.isfinite(scalars[f'train/{key}'].current()), key

    # CocoMetric only reports when there are predictions (an empty result
    # file ends its loop without any key), so the keys show that bbox and
    # segm results went through pycocotools.
    metrics = runner.val()
    for task in ('bbox', 'segm'):
        for stat in ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l'):
            value = metrics[f'coco/{task}_{stat}']
            assert value == -1 or 0 <= value <= 1, (task, stat, value)
