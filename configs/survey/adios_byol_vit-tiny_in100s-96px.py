# ADIOS (Shi et al., ICML 2022) on BYOL, ViT-Tiny, ImageNet-100S: the
# official run (YugeTen/adios:
# bash_files/training/imagenet100s/vittiny/byol_adios.sh; the data and the
# augmentation of src/args/utils.py and src/utils/pretrain_dataloader.py).
#
#   ImageNet-100S: the ImageNet-100 training images at 96 px, as in
#   ./adios_simclr_resnet18_in100s-96px.py but colour jitter 0.4 / 0.4 /
#   0.2 / 0.1. ViT-Tiny/16 (192 wide, 12 layers, 3 heads) at 96 px, its
#   class token as the feature; projector 192 -> 4096 -> 256, predictor
#   256 -> 8192 -> 256, EMA target tau 0.99 -> 1 (cosine; mmengine's
#   momentum 0.01). Masking U-Net: base width 8, group norm, 5 blocks at
#   96 px, N = 6 masks of view 2; alpha_sparsity 0.952, alpha_entropy 0.
#   Two SGD optimisers (momentum 0.9, wd 1e-5): encoder lr 0.214, masking
#   net lr 0.326; 10 epochs of linear warm-up from 0.003, then cosine,
#   stepped per epoch (the encoder's over 300 - 10 epochs: the official
#   train_mask_epoch of momentum methods); batch 128 on one GPU, 300 epochs.
#
# Put the training images under data/imagenet100/train/<class>/ (labels are
# not used), or set `train_dataloader.dataset.data_root`.
#
#   python tools/train.py configs/survey/adios_byol_vit-tiny_in100s-96px.py
#
# Deviations from the official code and why: docs/adios.md.
_base_ = [
    './adios_byol_resnet18_cifar10.py',
]

data_preprocessor = dict(
    _delete_=True,
    type='SelfSupDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.14, 57.12, 57.375],
    to_rgb=True)

model = dict(
    algorithm=dict(
        backbone=dict(_delete_=True, type='VisionTransformer',
                      arch='deit-tiny', img_size=96, patch_size=16,
                      out_type='cls_token'),
        neck=dict(in_channels=192, with_avg_pool=False)),
    data_preprocessor=data_preprocessor,
    mask_net=dict(img_size=96, mask_fbase=8, norm='group'),
    num_masks=6,
    alpha_sparsity=0.9517975576926448,
    alpha_entropy=0.)

view_pipeline = [
    dict(type='RandomResizedCrop', scale=96, crop_ratio_range=(0.08, 1.0),
         interpolation='bicubic', backend='pillow'),
    dict(type='RandomApply',
         transforms=[dict(type='HueWrapColorJitter', brightness=0.4,
                          contrast=0.4, saturation=0.2, hue=0.1)],
         prob=0.8),
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True,
         channel_weights=(0.114, 0.587, 0.2989)),
    dict(type='GaussianBlur', magnitude_range=(0.1, 2.0),
         magnitude_std='inf', prob=0.5),
    dict(type='RandomFlip', prob=0.5),
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiView', num_views=2, transforms=[view_pipeline]),
    dict(type='PackInputs')
]
train_dataloader = dict(
    batch_size=128,
    num_workers=8,
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root='data/imagenet100',
        data_prefix='train',
        with_label=False,
        pipeline=train_pipeline))

lr = 0.21411127909038455
mask_lr = 0.32636188418935613
weight_decay = 1e-5
optim_wrapper = dict(
    encoder=dict(optimizer=dict(lr=lr, weight_decay=weight_decay)),
    mask_net=dict(optimizer=dict(lr=mask_lr, weight_decay=weight_decay)))

max_epochs = 300
warmup_epochs = 10
warmup_start_lr = 0.003
train_mask_epoch = 10
param_scheduler = dict(
    _delete_=True,
    encoder=[
        dict(type='LinearLR', start_factor=warmup_start_lr / lr,
             by_epoch=True, begin=0, end=warmup_epochs),
        dict(type='CosineAnnealingLR',
             T_max=max_epochs - train_mask_epoch - warmup_epochs,
             by_epoch=True, begin=warmup_epochs,
             end=max_epochs - train_mask_epoch)
    ],
    mask_net=[
        dict(type='LinearLR', start_factor=warmup_start_lr / mask_lr,
             by_epoch=True, begin=0, end=warmup_epochs),
        dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs,
             by_epoch=True, begin=warmup_epochs, end=max_epochs)
    ])
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
