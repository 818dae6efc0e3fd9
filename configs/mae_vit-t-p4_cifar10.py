# MAE baseline on CIFAR-10: ViT-T/4 at 32 px, 200 epochs, batch 512 on ONE
# GPU (`tools/dist_train.sh configs/mae_vit-t-p4_cifar10.py 1`, or
# `python tools/train.py ...`). Not a paper setting: a small, fast stand-in
# for the ImageNet experiments (mae_vit-b_800e.py) to compare against
# aemim_vit-t-p4_cifar10.py / fast_aemim_vit-t-p4_cifar10.py.
_base_ = [
    './_base_/models/mae_vit-t-p4_32px.py',
    './_base_/datasets/cifar10_mim.py',
    './_base_/schedules/cifar10_mim_200e.py',
    'mmpretrain::_base_/default_runtime.py',
]

# mmengine's Runner gives the top-level `data_preprocessor` to the top-level
# model only. Put it into the MIM model itself, so that it stays with the
# algorithm when an AEMIM config wraps this model.
model = dict(data_preprocessor={{_base_.data_preprocessor}})

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3))

randomness = dict(seed=0, diff_rank_seed=True)
