# ACL (dual stream) on mmpretrain's SimCLR ResNet-50 ImageNet recipe
# (simclr/simclr_resnet50_16xb256-coslr-200e_in1k.py, unchanged), with
# ACL's objective and the ImageNet convention eps 4/255: 5 PGD steps of
# 1/255 (ACL's step-to-eps ratio), dual SyncBN in encoder and projector, the
# mean of the clean and the adversarial stream. ACL was published on CIFAR
# only: a setting of this package, not of the paper (docs/survey.md).
#
#   tools/dist_train.sh configs/survey/acl_simclr_resnet50_in1k.py 16
_base_ = [
    'mmpretrain::simclr/simclr_resnet50_16xb256-coslr-200e_in1k.py',
    './_base_/imagenet_simclr_views.py',
    './_base_/survey.py',
]

model = dict(
    _delete_=True,
    type='ACL',
    algorithm={{_base_.model}},
    attack=dict(type='PixelPGD', eps=4, steps=5, step_size=1),
    variant='DS',
    adv_weight=0.5,
    adapter='bn')

# mmpretrain:: configs put a `_scope_` key into collate_fn (default_collate
# rejects it); the views' ColorJitter is HueWrapColorJitter (numpy 2:
# ./_base_/imagenet_simclr_views.py)
train_dataloader = dict(
    collate_fn=dict(_delete_=True, type='default_collate'),
    dataset=dict(pipeline={{_base_.simclr_train_pipeline}}))
