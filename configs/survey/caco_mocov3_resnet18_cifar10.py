# CaCo (Wang, Huang, Zeng, Qi; TPAMI) on MoCo v3, CIFAR-10, ResNet-18: the
# survey's common data set. CaCo was published on ImageNet only; this is
# its ImageNet recipe at CIFAR scale, a setting of this package
# (docs/survey.md): K = 4096, T = T_m = 0.08, memory_lr 3 (10 warm-up
# epochs), 3-layer projector 512 -> 2048 -> 2048 -> 256, no predictor,
# m 0.99 annealed to 1, LARS lr 0.3 x 512 / 256, wd 1.5e-6, batch 512,
# 200 epochs; the views of ./_base_/cifar10_two_views.py.
#
#   tools/dist_train.sh configs/survey/caco_mocov3_resnet18_cifar10.py 2
_base_ = ['./_base_/cifar10_two_views.py', './_base_/runtime.py']

model = dict(
    type='CaCo',
    algorithm=dict(
        type='MoCoV3',
        base_momentum=0.01,
        backbone=dict(type='ResNet_CIFAR', depth=18,
                      norm_cfg=dict(type='SyncBN'), zero_init_residual=False),
        neck=dict(type='NonLinearNeck', in_channels=512, hid_channels=2048,
                  out_channels=256, num_layers=3, with_bias=False,
                  with_last_bn=False, with_last_bias=False,
                  with_avg_pool=True),
        head=dict(type='MoCoV3Head',
                  predictor=dict(type='NonLinearNeck', in_channels=256,
                                 hid_channels=2048, out_channels=256,
                                 num_layers=2, with_bias=False,
                                 with_last_bn=False, with_avg_pool=False),
                  loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
                  temperature=0.08)),
    bank_size=4096,
    memory_lr=3.,
    memory_lr_final=3.,
    memory_warmup_epochs=10,
    memory_temperature=0.08,
    memory_momentum=0.9,
    memory_weight_decay=0.)

num_gpus = 2
train_dataloader = dict(batch_size=256)     # per GPU: 2 x 256 = 512

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='LARS', lr=0.3 * 512 / 256, weight_decay=1.5e-6,
                   momentum=0.9),
    paramwise_cfg=dict(custom_keys={
        'bn': dict(decay_mult=0, lars_exclude=True),
        'bias': dict(decay_mult=0, lars_exclude=True),
        'downsample.1': dict(decay_mult=0, lars_exclude=True)}))
max_epochs = 200
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0,
         end=10, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 10, by_epoch=True,
         begin=10, end=max_epochs, eta_min=0.003 * 512 / 256,
         convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=512)
