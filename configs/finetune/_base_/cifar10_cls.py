# CIFAR-10 classification data for fine-tuning / linear probing ViT-T/4
# encoders pre-trained with ../../_base_/datasets/cifar10_mim.py (same images,
# same normalisation, 32 px).
#
# Prepare the images with `python tools/prepare_cifar10.py` (data/cifar10:
# train/<class>/*.jpg, test/<class>/*.jpg; labels come from the class
# folders). Elsewhere: environment variable `CIFAR10_ROOT=/path`, or
# `--cfg-options train_dataloader.dataset.data_root=/path
# val_dataloader.dataset.data_root=/path test_dataloader.dataset.data_root=/path`.
data_root = '{{$CIFAR10_ROOT:data/cifar10}}'

# CIFAR-10 training-set mean / std (0-255, RGB), as in pre-training; the
# JPEGs are read as BGR, hence `to_rgb=True`.
data_preprocessor = dict(
    num_classes=10,
    mean=[125.307, 122.961, 113.8575],
    std=[51.5865, 50.847, 51.255],
    to_rgb=True)

# Augmentation of the linear probe (MAE's: crop + flip); the fine-tuning
# config replaces it with the strong recipe.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomCrop', crop_size=32, padding=4, padding_mode='reflect'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=512,
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='CustomDataset',
        data_root=data_root,
        data_prefix='train',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=512,
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='CustomDataset',
        data_root=data_root,
        data_prefix='test',
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator
