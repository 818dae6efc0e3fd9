# ADIOS (Shi et al., ICML 2022) on SimSiam, CIFAR-10, ResNet-18.
#
# The official code (YugeTen/adios) ships no CIFAR-10 run; this config takes
# its SimSiam + ResNet-18 ImageNet-100S settings
# (bash_files/training/imagenet100s/resnet18/simsiam_adios.sh) onto the
# survey's CIFAR-10 views and CIFAR ResNet-18 at 32 px:
#
#   A masking U-Net (base width 16, group norm, 4 blocks) with a softmax
#   over N = 4 masks of EACH view (from that view); per mask, the mean of
#   SimSiam's D(p(a), sg(z(b))) over the pairs (masked 1, 2), (masked 2, 1),
#   the unmasked pair (use_no_mask) and the masked pair (use_both_mask; no
#   mirrored terms: use_symmetry_mask false), summed over k: (i) minimised
#   by the encoder with the masks detached, then (ii) with the encoder
#   frozen, minus alpha_s 0.200 x the sparsity penalty of both views' masks,
#   plus alpha_e 0.286 x sum p log p of the 2N mask sizes, maximised by the
#   masking net. Projector 512 -> 2048 -> 2048 -> 2048 (3 layers, last
#   BatchNorm without affine), predictor 2048 -> 512 -> 2048. Two SGD
#   optimisers (momentum 0.9, wd 1e-5): encoder lr 0.847, masking net lr
#   0.080; 10 epochs of linear warm-up from 0.003, then cosine, stepped per
#   epoch; batch 128, 500 epochs.
#
#   python tools/train.py configs/survey/adios_simsiam_resnet18_cifar10.py
#
# What ADIOS does, how it maps onto mmpretrain and every deviation from the
# official code (here: the predictor's learning rate follows the schedule;
# the official one keeps it fixed): docs/adios.md.
_base_ = [
    './_base_/cifar10_two_views.py',
    './_base_/runtime.py',
    '../_base_/aemim_ddp.py',      # the model's own two-optimiser step
]

model = dict(
    type='ADIOS',
    algorithm=dict(
        type='SimSiam',
        backbone=dict(type='ResNet_CIFAR', depth=18,
                      norm_cfg=dict(type='SyncBN'),
                      zero_init_residual=False),
        neck=dict(type='NonLinearNeck', in_channels=512, hid_channels=2048,
                  out_channels=2048, num_layers=3, with_bias=False,
                  with_last_bn=True, with_last_bn_affine=False,
                  with_avg_pool=True, norm_cfg=dict(type='SyncBN')),
        head=dict(type='LatentPredictHead',
                  loss=dict(type='CosineSimilarityLoss'),
                  predictor=dict(type='NonLinearNeck', in_channels=2048,
                                 hid_channels=512, out_channels=2048,
                                 with_avg_pool=False, with_last_bn=False,
                                 with_last_bias=True,
                                 norm_cfg=dict(type='SyncBN')))),
    data_preprocessor={{_base_.data_preprocessor}},
    mask_net=dict(type='MaskingUNet', img_size=32, mask_fbase=16,
                  norm='group', num_blocks=4),
    num_masks=4,
    alpha_sparsity=0.200319625755856,
    alpha_entropy=0.2857646914017864,
    use_symmetry_mask=False,
    use_no_mask=True,
    use_both_mask=True)

train_dataloader = dict(batch_size=128)

lr = 0.8470842123448166
mask_lr = 0.08023435854528733
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
# epoch) for each optimiser
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

custom_hooks = [
    dict(type='SampleSeedHook'),
    dict(type='MaskGridHook', vis_interval=1000),
]
