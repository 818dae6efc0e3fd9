# BYORL (Gowal et al., 2020) on BYOL, CIFAR-10, ResNet-18.
#
# No official code exists, and the paper's attack steps, step size and
# schedule were not verified (../shared/docs/survey-methods.md, BYORL); this
# config is BYOL's own CIFAR-10 recipe with the survey's attack:
#
#   PGD on view 1 maximising BYOL's regression loss between the online
#   prediction of t(x) + delta and the target projection of t'(x): eps 8/255,
#   5 steps of 2/255, random start; BatchNorm on batch statistics, none
#   updated, during the attack. Loss: BYOL's symmetric loss with t(x)
#   replaced by its adversarial example. BYOL: projector 512 -> 4096 -> 256,
#   predictor 256 -> 4096 -> 256, EMA target tau 0.996 (mmengine's momentum
#   0.004), LARS lr 0.2 x 512 / 256, wd 1.5e-6, batch 512, 1000 epochs,
#   10 warm-up epochs then cosine.
#
#   python tools/train.py configs/survey/byorl_byol_resnet18_cifar10.py
#
# Decisions and deviations: docs/survey.md (BYORL).
_base_ = [
    './_base_/cifar10_two_views.py',
    './_base_/runtime.py',
]

model = dict(
    type='BYORL',
    algorithm=dict(
        type='BYOL',
        base_momentum=0.004,
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
                                 hid_channels=4096, out_channels=256,
                                 num_layers=2, with_bias=True,
                                 with_last_bn=False, with_avg_pool=False,
                                 norm_cfg=dict(type='SyncBN')))),
    data_preprocessor={{_base_.data_preprocessor}},
    attack=dict(type='PixelPGD', eps=8, steps=5, step_size=2))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='LARS', lr=0.2 * 512 / 256, momentum=0.9,
                   weight_decay=1.5e-6),
    paramwise_cfg=dict(custom_keys={
        'bn': dict(decay_mult=0, lars_exclude=True),
        'bias': dict(decay_mult=0, lars_exclude=True),
        'downsample.1': dict(decay_mult=0, lars_exclude=True),
    }))

max_epochs = 1000
warmup_epochs = 10
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs,
         by_epoch=True, begin=warmup_epochs, end=max_epochs,
         convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=512)
