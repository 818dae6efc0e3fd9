# COCO Mask R-CNN, ViT-S/16 backbone from an AEMIM (or MAE) pre-trained
# encoder: the paper's Table 3 (ViT-S column). Docs: docs/downstream.md,
# "COCO Mask R-CNN".
#
# mmdet's Mask R-CNN R-50 FPN 1x config with
# - backbone: aemim_mm's ViTDetBackbone (mmpretrain VisionTransformer keys;
#   ViTDet windowed attention: 14 x 14 windows, global blocks 2, 5, 8, 11),
#   drop path 0.1, loading the encoder exported by tools/export_encoder.py;
# - neck: ViTDet's SimpleFeaturePyramid in place of FPN (strides 4-64,
#   256 channels, LN); the RPN and RoI heads are mmdet's, unchanged;
# - multi-scale training: short side 480-800 (step 32), long side <= 1333;
# - AdamW base lr 2e-3 (lr = 2e-3 x 16 / 256 = 1.25e-4), betas (0.9, 0.999),
#   wd 0.05 (none on norms, biases and
#   pos_embed), layer-wise lr decay 0.75, batch 16 (2 per GPU x 8 GPUs);
# - 1x: 12 epochs, 500 linear warm-up iterations, lr / 10 at epochs 9 and 11.
#
# Data: COCO layout under data_root (env COCO_ROOT, default data/coco/):
#   annotations/instances_{train,val}2017.json, train2017/, val2017/.
# Pre-trained encoder: --cfg-options model.backbone.init_cfg.checkpoint=PATH.
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py']

custom_imports = dict(imports=['aemim_mm.det'], allow_failed_imports=False)
default_scope = 'mmdet'

data_root = '{{$COCO_ROOT:data/coco/}}'
pretrained = 'checkpoints/aemim_vit-s_300e_encoder_det.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='ViTDetBackbone',
        arch='deit-small',  # ViT-S/16: 384 dims, 12 layers, 6 heads
        img_size=224,  # the pre-training size: pos_embed is kept at 14 x 14
        patch_size=16,
        drop_path_rate=0.1,
        window_size=14,
        global_attn_indexes=(2, 5, 8, 11),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained,
                      prefix='backbone.')),
    neck=dict(
        _delete_=True,
        type='SimpleFeaturePyramid',
        in_channels=384,
        out_channels=256,
        scale_factors=(4.0, 2.0, 1.0, 0.5),
        num_outs=5,
        norm_cfg=dict(type='LN2d', eps=1e-6)))

# Multi-scale training: short side in {480, 512, ..., 800}, long side <= 1333.
train_scales = [(1333, short) for short in range(480, 801, 32)]
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomChoiceResize', scales=train_scales, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
train_dataloader = dict(
    batch_size=2,  # x 8 GPUs = 16
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root.rstrip('/') + '/annotations/instances_val2017.json',
    metric=['bbox', 'segm'])
test_evaluator = val_evaluator

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        # Table 3 gives a BASE lr, as Table 2 does: lr = base x batch / 256
        # (MAE's convention) = 2e-3 x 16 / 256 = 1.25e-4
        type='AdamW', lr=2e-3 * 16 / 256, betas=(0.9, 0.999),
        weight_decay=0.05),
    constructor='ViTLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        layer_decay_rate=0.75,
        flat_decay_mult=0.0,  # norms and biases
        custom_keys={'pos_embed': dict(decay_mult=0.0)}))

# lr / 10 at (1-based) epochs 9 and 11. mmengine's epoch-based MultiStepLR
# counts finished epochs: milestone m lowers the lr for epochs m + 1, m + 2,
# ... (1-based), so epochs 9 and 11 are milestones 8 and 10. mmdet's stock 1x
# schedule, [8, 11], lowers it at epochs 9 and 12 instead.
lr_milestones = [8, 10]
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=500),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True,
         milestones=lr_milestones, gamma=0.1)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=12, val_interval=1)
auto_scale_lr = dict(enable=False, base_batch_size=16)
