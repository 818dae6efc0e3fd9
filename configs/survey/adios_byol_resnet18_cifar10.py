# ADIOS (Shi et al., ICML 2022) on BYOL, CIFAR-10, ResNet-18.
#
# The official code (YugeTen/adios) ships no CIFAR-10 run; this config takes
# its BYOL + ResNet-18 ImageNet-100S settings
# (bash_files/training/imagenet100s/resnet18/byol_adios.sh) onto the
# survey's CIFAR-10 views and CIFAR ResNet-18 at 32 px:
#
#   A masking U-Net (base width 16, group norm; 4 blocks at 32 px) with a
#   softmax over N = 6 masks of view 2; per iteration (i) BYOL's symmetric
#   loss of (view 1, view 2 x (1 - m_k)) summed over k, masks detached,
#   minimised by the online network, then (ii) the same with it frozen,
#   minus alpha_s 0.404 x the sparsity penalty (alpha_e 0), maximised by the
#   masking net. Projector 512 -> 4096 -> 256, predictor 256 -> 8192 -> 256,
#   EMA target tau 0.99 -> 1 (cosine; mmengine's momentum 0.01). Two SGD
#   optimisers (momentum 0.9, wd 1e-5): encoder lr 0.241, masking net lr
#   0.066; 10 epochs of linear warm-up from 0.003, then cosine, stepped per
#   epoch (the encoder's over 500 - 10 epochs: the official
#   train_mask_epoch of momentum methods); batch 128, 500 epochs.
#
#   python tools/train.py configs/survey/adios_byol_resnet18_cifar10.py
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
        type='BYOL',
        base_momentum=0.01,
        backbone=dict(type='ResNet_CIFAR', depth=18,
                      norm_cfg=dict(type='SyncBN'),
                      zero_init_residual=False),
        neck=dict(type='NonLinearNeck', in_channels=512, hid_channels=4096,
                  out_channels=256, num_layers=2, with_bias=True,
                  with_last_bn=False, with_avg_pool=True,
                  norm_cfg=dict(type='SyncBN')),
        head=dict(type='LatentPredictHead',
                  loss=dict(type='CosineSimilarityLoss'),
                  predictor=dict(type='NonLinearNeck', in_channels=256,
                                 hid_channels=8192, out_channels=256,
                                 num_layers=2, with_bias=True,
                                 with_last_bn=False, with_avg_pool=False,
                                 norm_cfg=dict(type='SyncBN')))),
    data_preprocessor={{_base_.data_preprocessor}},
    mask_net=dict(type='MaskingUNet', img_size=32, mask_fbase=16,
                  norm='group'),
    num_masks=6,
    alpha_sparsity=0.40384562663515944,
    alpha_entropy=0.)

train_dataloader = dict(batch_size=128)

lr = 0.24140186236916927
mask_lr = 0.06599301363636853
weight_decay = 1e-5
optim_wrapper = dict(
    constructor='SubmoduleOptimWrapperConstructor',
    encoder=dict(type='OptimWrapper', module='algorithm',
                 optimizer=dict(type='SGD', lr=lr, momentum=0.9,
                                weight_decay=weight_decay)),
    mask_net=dict(type='OptimWrapper', module='mask_net',
                  optimizer=dict(type='SGD', lr=mask_lr, momentum=0.9,
                                 weight_decay=weight_decay)))

# the official warmup_cosine (from warmup_start_lr 0.003, stepped once per
# epoch); the encoder's cosine ends train_mask_epoch (10) epochs early
max_epochs = 500
warmup_epochs = 10
warmup_start_lr = 0.003
train_mask_epoch = 10
param_scheduler = dict(
    encoder=[
        dict(type='LinearLR', start_factor=warmup_start_lr / lr,
             by_epoch=True, begin=0, end=warmup_epochs),
        dict(type='CosineAnnealingLR',
             T_max=max_epochs - train_mask_epoch - warmup_epochs,
             by_epoch=True, begin=warmup_epochs,
             end=max_epochs - train_mask_epoch)
    ],
    mask_net=[
        dict(type='LinearLR', start_factor=warmup_start_lr / mask_lr,
             by_epoch=True, begin=0, end=warmup_epochs),
        dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs,
             by_epoch=True, begin=warmup_epochs, end=max_epochs)
    ])
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=128)

custom_hooks = [
    dict(type='SampleSeedHook'),
    dict(type='MaskGridHook', vis_interval=1000),
]
