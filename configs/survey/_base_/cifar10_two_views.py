# CIFAR-10 (train split, 50,000 images, labels unused) as two augmented
# views per image, for the survey's joint-embedding methods (SimCLR, BYOL,
# SimSiam and their adversaries).
#
# Prepare the images with `python tools/prepare_cifar10.py` (extracts
# ../shared/data/cifar10_jpg.tar.gz into data/cifar10: train/<class>/*.jpg);
# another location: CIFAR10_ROOT=/path or
# `--cfg-options train_dataloader.dataset.data_root=/path`.
data_root = '{{$CIFAR10_ROOT:data/cifar10}}'

# The views are normalised with CIFAR-10's mean / std (0-255 units, RGB; the
# JPEGs are read as BGR, so `to_rgb=True`). The attacks convert their budget
# per channel, so eps stays a budget in pixel units.
data_preprocessor = dict(
    type='SelfSupDataPreprocessor',
    mean=[125.307, 122.961, 113.8575],
    std=[51.5865, 50.847, 51.255],
    to_rgb=True)

# SimCLR's augmentation at 32 px as RoCL uses it (colour-jitter strength 0.5:
# brightness / contrast / saturation 0.4, hue 0.1, applied with p 0.8;
# grayscale 0.2; random resized crop, scale 0.08-1; flip). Methods with
# another augmentation redefine `train_dataloader.dataset.pipeline`.
# HueWrapColorJitter is mmpretrain's ColorJitter with negative hue shifts
# that work under numpy 2 (aemim_mm/datasets/color_jitter.py).
view_pipeline = [
    dict(type='RandomResizedCrop', scale=32, crop_ratio_range=(0.08, 1.0),
         backend='pillow'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomApply',
         transforms=[dict(type='HueWrapColorJitter',
                         brightness=0.4, contrast=0.4,
                         saturation=0.4, hue=0.1)],
         prob=0.8),
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True,
         channel_weights=(0.114, 0.587, 0.2989)),
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiView', num_views=2, transforms=[view_pipeline]),
    dict(type='PackInputs')
]

train_dataloader = dict(
    batch_size=512,
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='CustomDataset',
        data_root=data_root,
        data_prefix='train',
        with_label=False,
        pipeline=train_pipeline))
