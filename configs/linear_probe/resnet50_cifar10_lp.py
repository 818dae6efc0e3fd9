# CIFAR-10 linear probe of a ResNet-50 pre-trained with SparK, with AEMIM
# (../algorithms/aemim_spark_sparse-resnet50_8xb512-amp-coslr-800e_in1k.py)
# or without (mmpretrain's spark_sparse-resnet50_8xb512-amp-coslr-800e_in1k.py
# ). Not a paper setting (the paper only has ViTs): the ConvNet counterpart of
# vit-t-p4_cifar10_lp.py.
#
# SimCLR's ResNet-50 linear probe, as mmpretrain's
# `simclr/benchmarks/resnet50_8xb512-linear-coslr-90e_in1k.py`: the whole
# encoder frozen (`frozen_stages=4`: stem and the four stages get
# `requires_grad=False` and stay in eval mode, so every BatchNorm normalises
# with the exported clean running statistics), global average pooling and a
# linear head; LARS, wd 0, momentum 0.9, base lr 0.1 (lr = 0.1 x 512 / 256,
# SimCLR's 1.6 for 4096), 90 epochs of cosine after 10 warm-up epochs (as
# vit-t-p4_cifar10_lp.py), crop + flip. Batch 512 on one GPU.
#
# The encoder was pre-trained on ImageNet at 224 px: the 32-px images are
# resized to 224 px (bicubic) and normalised with the ImageNet mean / std of
# the pre-training (not CIFAR-10's, as the ViT-T/4 configs are).
#
# Export the pre-trained encoder first (ResNet: the 'mmpretrain' format only;
# the decoder, SparK's enc_dec_norms / projectors / mask tokens and the
# adversarial BatchNorms, `adv_*` parameters and running statistics, are
# dropped), then point the config at the `_mmpretrain.pth` file:
#
#   python tools/export_encoder.py \
#       work_dirs/aemim_spark_sparse-resnet50_8xb512-amp-coslr-800e_in1k/epoch_800.pth \
#       --out-dir work_dirs/aemim_spark_resnet50/export --formats mmpretrain
#   python tools/train.py configs/linear_probe/resnet50_cifar10_lp.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH
#
# (`--cfg-options pretrained=PATH` would NOT work: the variable below is
# already substituted into the model when the file is read.)
_base_ = [
    '../finetune/_base_/cifar10_cls.py',
    'mmpretrain::_base_/default_runtime.py',
]

custom_imports = dict(imports=['aemim_mm'], allow_failed_imports=False)

pretrained = 'work_dirs/aemim_spark_resnet50/export/epoch_800_mmpretrain.pth'

base_lr = 0.1
batch_size = 512
max_epochs = 90
warmup_epochs = 10
img_size = 224

# ImageNet mean / std (0-255, RGB), as in SparK's pre-training; the JPEGs are
# read as BGR, hence `to_rgb=True`
data_preprocessor = dict(
    num_classes=10,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(3, ),
        style='pytorch',
        frozen_stages=4,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=2048,
        loss=dict(type='CrossEntropyLoss'),
        init_cfg=[dict(type='Normal', layer='Linear', std=0.01)]))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomCrop', crop_size=32, padding=4, padding_mode='reflect'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='Resize', scale=img_size, backend='pillow',
         interpolation='bicubic'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_size, backend='pillow',
         interpolation='bicubic'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=batch_size, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    type='OptimWrapper',  # fp32: also runs on a CPU
    optimizer=dict(
        type='LARS',
        lr=base_lr * batch_size / 256,
        weight_decay=0.0,
        momentum=0.9))

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
        eta_min=0.0,
        convert_to_iter_based=True)
]

train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=10)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=batch_size)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(
        type='CheckpointHook', interval=10, max_keep_ckpts=3,
        save_best='accuracy/top1', rule='greater'))
randomness = dict(seed=0, diff_rank_seed=True)
