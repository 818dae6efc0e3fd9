# RoCL on mmpretrain's SimCLR ResNet-50 ImageNet recipe
# (simclr/simclr_resnet50_16xb256-coslr-200e_in1k.py, unchanged: LARS lr 4.8,
# batch 4096, 200 epochs, temperature 0.1, SyncBN), with RoCL's objective
# and the ImageNet convention eps 4/255: 7 PGD steps of 4 x 0.007 / 0.0314
# (RoCL's step-to-eps ratio), lambda 256. RoCL itself was published on
# CIFAR only: a setting of this package, not of the paper (docs/survey.md).
#
#   tools/dist_train.sh configs/survey/rocl_simclr_resnet50_in1k.py 16
_base_ = [
    'mmpretrain::simclr/simclr_resnet50_16xb256-coslr-200e_in1k.py',
    './_base_/imagenet_simclr_views.py',
    './_base_/survey.py',
]

model = dict(
    _delete_=True,
    type='RoCL',
    algorithm={{_base_.model}},
    attack=dict(type='PixelPGD', eps=4, steps=7,
                step_size=4 * 0.007 / 0.0314),
    lamda=256.)

# mmpretrain:: configs put a `_scope_` key into collate_fn (default_collate
# rejects it); the views' ColorJitter is HueWrapColorJitter (numpy 2:
# ./_base_/imagenet_simclr_views.py)
train_dataloader = dict(
    collate_fn=dict(_delete_=True, type='default_collate'),
    dataset=dict(pipeline={{_base_.simclr_train_pipeline}}))
