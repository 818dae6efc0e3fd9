# IFM, implicit feature modification (Robinson et al., NeurIPS 2021), on
# MoCo v2, ResNet-50, ImageNet-100: the setting of the official code
# (joshr17/IFM: moco-master, README's command).
#
#   Logits [q.k - eps, q.n + eps] / T beside MoCo's, combined as
#   (CE + alpha CE_adv) / (1 + alpha): eps 0.1, alpha 1. MoCo v2: T 0.2,
#   m = 0.99 (mmengine's EMA momentum 0.01), K 65536, MLP projector,
#   augmentation plus; SGD lr 0.8, momentum 0.9, wd 1e-4, batch 512, 200
#   epochs, cosine. ImageNet-100 linear top-1: MoCo v2 80.5, IFM 81.4
#   (README).
#
# ImageNet-100 is the 100-class subset of ImageNet-1K of CMC (Tian et al.):
# put its training images under data/imagenet100/train/<class>/ (labels are
# not used), or set `train_dataloader.dataset.data_root`.
#
#   tools/dist_train.sh configs/survey/ifm_moco_resnet50_in100.py 8
#
# Deviations from the official code and why: docs/survey.md (IFM).
_base_ = [
    'mmpretrain::mocov2/mocov2_resnet50_8xb32-coslr-200e_in1k.py',
    './_base_/imagenet_mocov2_views.py',
    './_base_/survey.py',
]

model = dict(
    _delete_=True,
    type='IFM',
    algorithm=dict(_base_.model, momentum=0.01),
    eps=0.1,
    alpha=1.)

train_dataloader = dict(
    batch_size=64,                  # 8 GPUs x 64 = 512
    collate_fn=dict(_delete_=True, type='default_collate'),
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root='data/imagenet100',
        data_prefix='train',
        with_label=False,
        pipeline={{_base_.mocov2_train_pipeline}}))

optim_wrapper = dict(optimizer=dict(lr=0.8))
auto_scale_lr = dict(base_batch_size=512)
