# AdvCL's three views at ImageNet scale: mmpretrain 1.2.0's two SimCLR
# ImageNet views (imagenet_simclr_views.py, HueWrapColorJitter for numpy 2)
# and a weak view (resize to 256, random 224 crop, flip: the usual weak
# ImageNet augmentation; AdvCL's CIFAR weak view is a padded 32 px crop and
# a flip).
_base_ = ['./imagenet_simclr_views.py']

advcl_weak_view = [
    dict(type='ResizeEdge', scale=256, edge='short', backend='pillow'),
    dict(type='RandomCrop', crop_size=224),
    dict(type='RandomFlip', prob=0.5),
]
advcl_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiView', num_views=[2, 1],
         transforms=[{{_base_.simclr_view_pipeline}}, advcl_weak_view]),
    dict(type='PackInputs')
]
