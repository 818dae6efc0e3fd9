# MoCHi, hard negative mixing (Kalantidis et al., NeurIPS 2020), on
# mmpretrain's MoCo v2 ResNet-50 ImageNet recipe (T 0.2, K 65536,
# m = 0.999, SGD lr 0.03, batch 256, 200 epochs, cosine), MoCHi(N, s, s') =
# (1024, 1024, 128): for each query, its 1024 hardest queue negatives give
# 1024 mixtures of two of them and 128 mixtures with the query (query
# weight below 0.5), appended to the negatives. No official code exists:
# the paper's definitions, each choice in docs/survey.md (MoCHi).
#
#   tools/dist_train.sh configs/survey/mochi_moco_resnet50_in1k.py 8
_base_ = [
    'mmpretrain::mocov2/mocov2_resnet50_8xb32-coslr-200e_in1k.py',
    './_base_/imagenet_mocov2_views.py',
    './_base_/survey.py',
]

model = dict(
    _delete_=True,
    type='MoCHi',
    algorithm=_base_.model,
    num_hard=1024,
    num_mixed=1024,
    num_query_mixed=128)

train_dataloader = dict(
    collate_fn=dict(_delete_=True, type='default_collate'),
    dataset=dict(pipeline={{_base_.mocov2_train_pipeline}}))
