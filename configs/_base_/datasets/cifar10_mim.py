# CIFAR-10 (train split, 50,000 images, labels unused) for MIM pre-training.
#
# Prepare the images with `python tools/prepare_cifar10.py` (extracts
# ../shared/data/cifar10_jpg.tar.gz into data/cifar10: train/<class>/*.jpg).
#
# Where the data lie:
#   * default `data/cifar10`, relative to the directory training runs in
#     (the repository root);
#   * environment variable:
#       CIFAR10_ROOT=/path/to/cifar10 tools/dist_train.sh ...
#     (mmengine substitutes `{{$VAR:default}}` when it reads the file);
#   * command line:  --cfg-options train_dataloader.dataset.data_root=/path
#     (`--cfg-options data_root=/path` only changes this top-level variable,
#     not the dataset that was already built from it when the file was read).
data_root = '{{$CIFAR10_ROOT:data/cifar10}}'

# CIFAR-10 mean / std of the training set in 0-255 units, RGB order. The JPEGs
# are read as BGR by `LoadImageFromFile`, so `to_rgb=True`.
data_preprocessor = dict(
    type='SelfSupDataPreprocessor',
    mean=[125.307, 122.961, 113.8575],
    std=[51.5865, 50.847, 51.255],
    to_rgb=True)

# MAE's augmentation (RandomResizedCrop + horizontal flip) at 32 px.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=32,
        crop_ratio_range=(0.2, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs')
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
        with_label=False,
        pipeline=train_pipeline))
