# ADIOS (Shi et al., ICML 2022) on SimCLR, ResNet-18, ImageNet-100S: the
# official run (YugeTen/adios:
# bash_files/training/imagenet100s/resnet18/simclr_adios.sh; the data and
# the augmentation of src/args/utils.py and src/utils/pretrain_dataloader.py).
#
#   ImageNet-100S: the ImageNet-100 training images (the 100-class subset of
#   CMC, Tian et al.) at 96 px: random resized crop to 96 (scale 0.08-1,
#   bicubic), colour jitter 0.8 / 0.8 / 0.8 / 0.2 (p 0.8), grayscale 0.2,
#   Gaussian blur 0.5, flip; normalised with the official mean / std
#   (0.485, 0.456, 0.406) / (0.228, 0.224, 0.225), the same pipeline for
#   both views. ResNet-18 (ImageNet stem), projector 512 -> 2048 -> 128
#   (no BatchNorm), temperature 0.2. Masking U-Net: base width 32,
#   instance norm, 5 blocks at 96 px, N = 4 masks of view 2;
#   alpha_sparsity 0.923, alpha_entropy 0.712. Two SGD optimisers (momentum
#   0.9, wd 1e-4): encoder lr 0.111, masking net lr 0.0145; 10 epochs of
#   linear warm-up from 0.003, then cosine, stepped per epoch; batch 128 on
#   one GPU, 500 epochs.
#
# Put the training images under data/imagenet100/train/<class>/ (labels are
# not used), or set `train_dataloader.dataset.data_root`.
#
#   python tools/train.py configs/survey/adios_simclr_resnet18_in100s-96px.py
#
# Deviations from the official code and why: docs/adios.md.
_base_ = [
    './adios_simclr_resnet18_cifar10.py',
]

data_preprocessor = dict(
    _delete_=True,
    type='SelfSupDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.14, 57.12, 57.375],
    to_rgb=True)

model = dict(
    algorithm=dict(
        backbone=dict(_delete_=True, type='ResNet', depth=18,
                      norm_cfg=dict(type='SyncBN'),
                      zero_init_residual=False)),
    data_preprocessor=data_preprocessor,
    mask_net=dict(img_size=96))

view_pipeline = [
    dict(type='RandomResizedCrop', scale=96, crop_ratio_range=(0.08, 1.0),
         interpolation='bicubic', backend='pillow'),
    dict(type='RandomApply',
         transforms=[dict(type='HueWrapColorJitter', brightness=0.8,
                          contrast=0.8, saturation=0.8, hue=0.2)],
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
