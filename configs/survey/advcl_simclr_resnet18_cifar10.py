# AdvCL (Fan et al., NeurIPS 2021) on SimCLR, CIFAR-10, ResNet-18: the
# paper's main setting, from the official code (LijieFan/AdvCL:
# pretraining_advCL.py, losses.py, fr_util.py, models/).
#
#   Views: two SimCLR views (crop scale 0.2-1, colour jitter 0.4 / 0.4 / 0.4 /
#   0.1 with p 0.8, grayscale 0.2, flip) and a weak one x (crop 32 with
#   padding 4, flip); HFC(x): x without the frequencies within radius 8.
#   Two copies of x attacked jointly (eps 8/255, 5 steps of 2/255, random
#   start, BatchNorm in training mode) through their own BatchNorms;
#   loss = SupCon_T=0.5 of {x_cl, t(x), t'(x), HFC(x)} (x 0.5 / 0.07) + 0.2 x
#   the mean cross-entropy of 5 pseudo-label heads (k = 2, 10, 50, 100, 500)
#   on x_ce. Pseudo-labels: k-means of an ImageNet SimCLR ResNet-50's
#   features (mmpretrain's, 800 epochs; computed once before training and
#   cached in the work dir: PseudoLabelHook). Projector 512 -> 512 -> 128
#   (BatchNorm, shared by the three routes). SGD lr 0.5, momentum 0.9, wd
#   1e-4, batch 512, 1000 epochs, 10 warm-up epochs from lr 0.01, cosine to
#   0.5 x 0.1^3.
#
#   tools/dist_train.sh configs/survey/advcl_simclr_resnet18_cifar10.py 2
#
# Deviations from the official code and why: docs/survey.md (AdvCL).
_base_ = [
    './_base_/simclr_resnet18_cifar.py',
    './_base_/cifar10_two_views.py',
    './_base_/runtime.py',
]

model = dict(
    _delete_=True,
    type='AdvCL',
    algorithm=dict(
        _base_.model,
        neck=dict(type='NonLinearNeck', in_channels=512, hid_channels=512,
                  out_channels=128, num_layers=2, with_bias=True,
                  with_last_bn=False, with_last_bias=True,
                  with_avg_pool=True, norm_cfg=dict(type='SyncBN'))),
    data_preprocessor={{_base_.data_preprocessor}},
    attack=dict(type='PixelPGD', eps=8, steps=5, step_size=2),
    ks=(2, 10, 50, 100, 500),
    ce_weight=0.2,
    radius=8,
    base_temperature=0.07,
    adapter='bn',
    adapter_scope=('backbone', ))

strong_view = [
    dict(type='RandomResizedCrop', scale=32, crop_ratio_range=(0.2, 1.0),
         backend='pillow'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomApply',
         transforms=[dict(type='HueWrapColorJitter',
                          brightness=0.4, contrast=0.4,
                          saturation=0.4, hue=0.1)],
         prob=0.8),
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True,
         channel_weights=(0.114, 0.587, 0.2989)),
]
weak_view = [
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5),
]
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='MultiView', num_views=[2, 1],
         transforms=[strong_view, weak_view]),
    dict(type='PackInputs')
]))

custom_hooks = [
    dict(type='SampleSeedHook'),
    dict(type='PseudoLabelHook',
         checkpoint='https://download.openmmlab.com/mmselfsup/1.x/simclr/'
         'simclr_resnet50_16xb256-coslr-800e_in1k/'
         'simclr_resnet50_16xb256-coslr-800e_in1k_20220825-85fcc4de.pth',
         backbone=dict(type='ResNet', depth=50),
         ks=(2, 10, 50, 100, 500),
         image_size=224)
]

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.5, momentum=0.9, weight_decay=1e-4))

max_epochs = 1000
param_scheduler = [
    # the official warm-up: lr 0.01 -> the cosine's value at epoch 10
    dict(type='LinearLR', start_factor=0.01 / 0.5, by_epoch=True, begin=0,
         end=10, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=0.5 * 0.1**3,
         by_epoch=True, begin=0, end=max_epochs,
         convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=512)
