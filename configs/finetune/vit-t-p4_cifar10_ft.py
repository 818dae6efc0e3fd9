# CIFAR-10 fine-tuning of a ViT-T/4 (32 px) pre-trained with
# ../aemim_vit-t-p4_cifar10.py, ../fast_aemim_vit-t-p4_cifar10.py or
# ../mae_vit-t-p4_cifar10.py. Not a paper setting: the small counterpart of
# vit-b_aemim-800e-pre_100e_in1k.py on one GPU (or, slowly, a CPU).
#
# The recipe of the paper's Table 2, scaled to CIFAR-10: ImageClassifier +
# VisionTransformer with global average pooling (`avg_featmap`, fresh `ln2`,
# no final norm), drop path 0.1, AdamW betas (0.9, 0.999), wd 0.05,
# layer-wise lr decay (`LearningRateDecayOptimWrapperConstructor`), 5 warm-up
# epochs then cosine, RandAugment(9, 0.5), random erasing 0.25, label
# smoothing 0.1, mixup 0.8 / cutmix 1.0. Chosen here (not in the paper):
# 100 epochs, batch 512, base lr 1e-3 (lr = 1e-3 x 512 / 256), layer decay
# 0.75, random crop with 4-px padding instead of random-resized crop.
#
#   python tools/export_encoder.py \
#       work_dirs/aemim_vit-t-p4_cifar10/epoch_200.pth \
#       --out-dir work_dirs/aemim_vit-t-p4_cifar10/export
#   python tools/train.py configs/finetune/vit-t-p4_cifar10_ft.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = ['./_base_/vit-t-p4_cifar10_cls.py']

base_lr = 1e-3
layer_decay_rate = 0.75
batch_size = 512
max_epochs = 100
warmup_epochs = 5

model = dict(
    backbone=dict(
        drop_path_rate=0.1, out_type='avg_featmap', final_norm=False),
    neck=None,
    head=dict(
        type='LinearClsHead',
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=[dict(type='TruncNormal', layer='Linear', std=2e-5)]),
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0)
    ]))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomCrop', crop_size=32, padding=4, padding_mode='reflect'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='RandAugment',
        policies='timm_increasing',
        num_policies=2,
        total_level=10,
        magnitude_level=9,
        magnitude_std=0.5,
        # pad with the CIFAR-10 mean, BGR (the images are still BGR here)
        hparams=dict(pad_val=[114, 123, 125], interpolation='bicubic')),
    dict(
        type='RandomErasing',
        erase_prob=0.25,
        mode='rand',
        min_area_ratio=0.02,
        max_area_ratio=1 / 3,
        fill_color=[113.8575, 122.961, 125.307],
        fill_std=[51.255, 50.847, 51.5865]),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=batch_size, dataset=dict(pipeline=train_pipeline))

optim_wrapper = dict(
    optimizer=dict(
        type='AdamW',
        lr=base_lr * batch_size / 256,
        weight_decay=0.05,
        betas=(0.9, 0.999)),
    constructor='LearningRateDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        layer_decay_rate=layer_decay_rate,
        custom_keys={
            '.ln': dict(decay_mult=0.0),
            '.bias': dict(decay_mult=0.0),
            '.cls_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0)
        }))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - warmup_epochs,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        eta_min=1e-6,
        convert_to_iter_based=True)
]

train_cfg = dict(max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=batch_size)
