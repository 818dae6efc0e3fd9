# AdCo (Hu, Wang, Hu, Qi, CVPR 2021) on mmpretrain's MoCo v2 ResNet-50
# ImageNet recipe: the paper's single-crop setting, from the official code
# (maple-research-lab/AdCo: README's first command, ops/argparser.py).
#
#   MoCo's queue becomes a bank of K = 65536 learnable negatives, filled
#   with keys first (ad_init), then moved by gradient ascent on the
#   contrastive loss after every step: memory_lr 3, T_m 0.02, SGD momentum
#   0.9, weight decay 1e-4. Network: T 0.12, key momentum m = 0.999
#   (mmengine's EMA momentum 0.001), every process's keys as positives
#   and extra negatives; SGD lr 0.03, wd 1e-4, batch 256, 200 epochs,
#   cosine to 0.0006. ImageNet linear top-1 68.6 (README).
#
#   tools/dist_train.sh configs/survey/adco_moco_resnet50_in1k.py 8
#
# Deviations from the official code and why: docs/survey.md (AdCo).
_base_ = [
    'mmpretrain::mocov2/mocov2_resnet50_8xb32-coslr-200e_in1k.py',
    './_base_/imagenet_mocov2_views.py',
    './_base_/survey.py',
]

model = dict(
    _delete_=True,
    type='AdCo',
    # mmpretrain's MoCo v2 ResNet-50 (the inherited model) at AdCo's T
    algorithm=dict(_base_.model,
                   head=dict(_base_.model.head, temperature=0.12)),
    memory_lr=3.,
    memory_temperature=0.02,
    memory_momentum=0.9,
    memory_weight_decay=1e-4)

param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=200, by_epoch=True, begin=0,
         end=200, eta_min=0.0006)
]

# mmpretrain:: configs put a `_scope_` key into collate_fn (default_collate
# rejects it); the views' ColorJitter is HueWrapColorJitter (numpy 2)
train_dataloader = dict(
    collate_fn=dict(_delete_=True, type='default_collate'),
    dataset=dict(pipeline={{_base_.mocov2_train_pipeline}}))
