# CLAE on mmpretrain's SimCLR ResNet-50 ImageNet recipe
# (simclr/simclr_resnet50_16xb256-coslr-200e_in1k.py, unchanged), with
# CLAE's objective: one FGSM step of 3.825/255 (CLAE's 0.03 in its [-1, 1]
# input space) without random start, auxiliary BatchNorms (SyncBN split,
# momentum 0.01), alpha 1. CLAE's own ImageNet-scale run is tiny-ImageNet:
# a setting of this package, not of the paper (docs/survey.md).
#
#   tools/dist_train.sh configs/survey/clae_simclr_resnet50_in1k.py 16
_base_ = [
    'mmpretrain::simclr/simclr_resnet50_16xb256-coslr-200e_in1k.py',
    './_base_/imagenet_simclr_views.py',
    './_base_/survey.py',
]

model = dict(
    _delete_=True,
    type='CLAE',
    algorithm={{_base_.model}},
    attack=dict(type='PixelPGD', eps=0.03 * 0.5 * 255, steps=1,
                random_start=False),
    alpha=1.0,
    adapter='bn',
    adv_bn_momentum=0.01)

# mmpretrain:: configs put a `_scope_` key into collate_fn (default_collate
# rejects it); the views' ColorJitter is HueWrapColorJitter (numpy 2:
# ./_base_/imagenet_simclr_views.py)
train_dataloader = dict(
    collate_fn=dict(_delete_=True, type='default_collate'),
    dataset=dict(pipeline={{_base_.simclr_train_pipeline}}))
