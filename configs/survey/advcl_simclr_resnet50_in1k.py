# AdvCL on mmpretrain's SimCLR ResNet-50 ImageNet recipe
# (simclr/simclr_resnet50_16xb256-coslr-200e_in1k.py: LARS, batch 4096,
# 200 epochs, temperature 0.1, SyncBN), with AdvCL's objective at the
# ImageNet convention eps 4/255 (5 steps of 1/255), the high-frequency
# radius scaled with the image (8 x 224 / 32 = 56), a weak view
# (_base_/imagenet_advcl_views.py) and pseudo-labels of mmpretrain's
# ImageNet SimCLR ResNet-50 (k-means of 1.28 M features: computed once by
# rank 0 before training, cached in the work dir). AdvCL was published on
# CIFAR only: a setting of this package, not of the paper (docs/survey.md).
#
#   tools/dist_train.sh configs/survey/advcl_simclr_resnet50_in1k.py 16
_base_ = [
    'mmpretrain::simclr/simclr_resnet50_16xb256-coslr-200e_in1k.py',
    './_base_/imagenet_advcl_views.py',
    './_base_/survey.py',
]

model = dict(
    _delete_=True,
    type='AdvCL',
    algorithm={{_base_.model}},
    attack=dict(type='PixelPGD', eps=4, steps=5, step_size=1),
    ks=(2, 10, 50, 100, 500),
    ce_weight=0.2,
    radius=56,
    adapter='bn',
    adapter_scope=('backbone', ))

# mmpretrain:: configs put a `_scope_` key into collate_fn (default_collate
# rejects it); AdvCL's three views
train_dataloader = dict(
    collate_fn=dict(_delete_=True, type='default_collate'),
    dataset=dict(pipeline={{_base_.advcl_train_pipeline}}))

custom_hooks = [
    dict(type='SampleSeedHook'),
    dict(type='PseudoLabelHook',
         checkpoint='https://download.openmmlab.com/mmselfsup/1.x/simclr/'
         'simclr_resnet50_16xb256-coslr-800e_in1k/'
         'simclr_resnet50_16xb256-coslr-800e_in1k_20220825-85fcc4de.pth',
         backbone=dict(type='ResNet', depth=50),
         ks=(2, 10, 50, 100, 500),
         image_size=224,
         batch_size=256)
]
