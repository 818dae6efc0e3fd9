# CIFAR-10 linear probe of a ViT-T/4 (32 px) pre-trained with
# ../aemim_vit-t-p4_cifar10.py, ../fast_aemim_vit-t-p4_cifar10.py or
# ../mae_vit-t-p4_cifar10.py. Not a paper setting (the paper only fine-tunes).
#
# MAE's linear probe, as mmpretrain's
# `mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py`: the whole
# encoder frozen (`frozen_stages=12`: patch embedding, cls token, position
# embedding, the 12 blocks and the final norm get `requires_grad=False` and
# stay in eval mode), the class token after the final norm as the feature, a
# BatchNorm without affine parameters (`ClsBatchNormNeck`) and a linear head;
# LARS, wd 0, momentum 0.9, base lr 0.1 (lr = 0.1 x 512 / 256), 10 warm-up
# epochs then cosine, 90 epochs, crop + flip. Batch 512 on one GPU (MAE:
# 16384).
#
#   python tools/export_encoder.py \
#       work_dirs/aemim_vit-t-p4_cifar10/epoch_200.pth \
#       --out-dir work_dirs/aemim_vit-t-p4_cifar10/export
#   python tools/train.py configs/linear_probe/vit-t-p4_cifar10_lp.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = ['../finetune/_base_/vit-t-p4_cifar10_cls.py']

base_lr = 0.1
batch_size = 512
max_epochs = 90
warmup_epochs = 10

model = dict(
    backbone=dict(frozen_stages=12, out_type='cls_token', final_norm=True),
    neck=dict(type='ClsBatchNormNeck', input_features=192),
    head=dict(
        type='VisionTransformerClsHead',
        loss=dict(type='CrossEntropyLoss'),
        init_cfg=[dict(type='TruncNormal', layer='Linear', std=0.01)]))

train_dataloader = dict(batch_size=batch_size)

optim_wrapper = dict(
    optimizer=dict(
        type='LARS',
        lr=base_lr * batch_size / 256,
        weight_decay=0.0,
        momentum=0.9))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - warmup_epochs,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        eta_min=0.0,
        convert_to_iter_based=True)
]

train_cfg = dict(max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=batch_size)
