# BYORL on mmpretrain's BYOL ResNet-50 ImageNet recipe
# (byol/byol_resnet50_16xb256-coslr-200e_in1k.py, unchanged), with BYORL's
# PGD on view 1 (eps 4/255, 5 steps of 1/255, the ImageNet convention; the
# paper's ImageNet attack settings were not verified): docs/survey.md.
#
#   tools/dist_train.sh configs/survey/byorl_byol_resnet50_in1k.py 16
_base_ = [
    'mmpretrain::byol/byol_resnet50_16xb256-coslr-200e_in1k.py',
    './_base_/imagenet_byol_views.py',
    './_base_/survey.py',
]

model = dict(
    _delete_=True,
    type='BYORL',
    algorithm={{_base_.model}},
    attack=dict(type='PixelPGD', eps=4, steps=5, step_size=1))

# mmpretrain:: configs put a `_scope_` key into collate_fn (default_collate
# rejects it); the views' ColorJitter is HueWrapColorJitter (numpy 2:
# ./_base_/imagenet_byol_views.py)
train_dataloader = dict(
    collate_fn=dict(_delete_=True, type='default_collate'),
    dataset=dict(pipeline={{_base_.byol_train_pipeline}}))
