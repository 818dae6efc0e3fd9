# ADIOS (Shi et al., ICML 2022) on SimCLR, CIFAR-10, ResNet-18.
#
# The official code (YugeTen/adios) ships no CIFAR-10 run; this config takes
# its SimCLR + ResNet-18 ImageNet-100S settings
# (bash_files/training/imagenet100s/resnet18/simclr_adios.sh) onto the
# survey's CIFAR-10 views and CIFAR ResNet-18 at 32 px:
#
#   A masking U-Net (base width 32, instance norm; 4 blocks at 32 px) with a
#   softmax over N = 4 masks of view 2; per iteration (i) SimCLR's NT-Xent of
#   (view 1, view 2 x (1 - m_k)) summed over k, masks detached, minimised by
#   the encoder, then (ii) the same with the encoder frozen, minus
#   alpha_s 0.923 x the sparsity penalty, plus alpha_e 0.712 x sum p log p
#   of the mask sizes, maximised by the masking net. Temperature 0.2,
#   projector 512 -> 2048 -> 128 (no BatchNorm). Two SGD optimisers
#   (momentum 0.9, wd 1e-4): encoder lr 0.111, masking net lr 0.0145; each
#   10 epochs of linear warm-up from 0.003, then cosine, stepped per epoch;
#   batch 128, 500 epochs.
#
#   python tools/train.py configs/survey/adios_simclr_resnet18_cifar10.py
#
# What ADIOS does, how it maps onto mmpretrain and every deviation from the
# official code: docs/adios.md.
_base_ = [
    './_base_/cifar10_two_views.py',
    './_base_/runtime.py',
    '../_base_/aemim_ddp.py',      # the model's own two-optimiser step
]

model = dict(
    type='ADIOS',
    algorithm=dict(
        type='SimCLR',
        backbone=dict(type='ResNet_CIFAR', depth=18,
                      norm_cfg=dict(type='SyncBN'),
                      zero_init_residual=False),
        neck=dict(type='MoCoV2Neck', in_channels=512, hid_channels=2048,
                  out_channels=128, with_avg_pool=True),
        head=dict(type='ContrastiveHead', loss=dict(type='CrossEntropyLoss'),
                  temperature=0.2)),
    data_preprocessor={{_base_.data_preprocessor}},
    mask_net=dict(type='MaskingUNet', img_size=32, mask_fbase=32,
                  norm='instance'),
    num_masks=4,
    alpha_sparsity=0.9229467944410698,
    alpha_entropy=0.711773255433044)

train_dataloader = dict(batch_size=128)

lr = 0.11127702230184772
mask_lr = 0.014515024186652984
weight_decay = 1e-4
optim_wrapper = dict(
    constructor='SubmoduleOptimWrapperConstructor',
    encoder=dict(type='OptimWrapper', module='algorithm',
                 optimizer=dict(type='SGD', lr=lr, momentum=0.9,
                                weight_decay=weight_decay)),
    mask_net=dict(type='OptimWrapper', module='mask_net',
                  optimizer=dict(type='SGD', lr=mask_lr, momentum=0.9,
                                 weight_decay=weight_decay)))

# the official warmup_cosine (pl_bolts' LinearWarmupCosineAnnealingLR from
# warmup_start_lr 0.003, stepped once per epoch) for each optimiser
max_epochs = 500
warmup_epochs = 10
warmup_start_lr = 0.003
param_scheduler = dict(
    encoder=[
        dict(type='LinearLR', start_factor=warmup_start_lr / lr,
             by_epoch=True, begin=0, end=warmup_epochs),
        dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs,
             by_epoch=True, begin=warmup_epochs, end=max_epochs)
    ],
    mask_net=[
        dict(type='LinearLR', start_factor=warmup_start_lr / mask_lr,
             by_epoch=True, begin=0, end=warmup_epochs),
        dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs,
             by_epoch=True, begin=warmup_epochs, end=max_epochs)
    ])
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=128)

# the survey's SampleSeedHook (ADIOS draws nothing itself) and the learned
# masks drawn every 1000 iterations (work_dir/<run>/vis_data/vis_image)
custom_hooks = [
    dict(type='SampleSeedHook'),
    dict(type='MaskGridHook', vis_interval=1000),
]
