# BYORL's attack (Gowal et al., 2020) carried over to SimSiam, CIFAR-10,
# ResNet-18: SimSiam's own CIFAR-10 recipe (Chen & He, CVPR 2021, Appendix:
# SGD lr 0.03 x batch / 256, momentum 0.9, wd 5e-4, batch 512, 800 epochs,
# cosine; a 2-layer projector) with BYORL's PGD on view 1 maximising
# SimSiam's regression loss (eps 8/255, 5 steps of 2/255). Not a setting of
# either paper: docs/survey.md (BYORL).
#
#   python tools/train.py configs/survey/byorl_simsiam_resnet18_cifar10.py
_base_ = [
    './_base_/cifar10_two_views.py',
    './_base_/runtime.py',
]

model = dict(
    type='BYORL',
    algorithm=dict(
        type='SimSiam',
        backbone=dict(type='ResNet_CIFAR', depth=18,
                      norm_cfg=dict(type='SyncBN'),
                      zero_init_residual=True),
        neck=dict(type='NonLinearNeck', in_channels=512, hid_channels=2048,
                  out_channels=2048, num_layers=2,
                  with_last_bn_affine=False, with_avg_pool=True,
                  norm_cfg=dict(type='SyncBN')),
        head=dict(type='LatentPredictHead',
                  loss=dict(type='CosineSimilarityLoss'),
                  predictor=dict(type='NonLinearNeck', in_channels=2048,
                                 hid_channels=512, out_channels=2048,
                                 with_avg_pool=False, with_last_bn=False,
                                 with_last_bias=True,
                                 norm_cfg=dict(type='SyncBN')))),
    data_preprocessor={{_base_.data_preprocessor}},
    attack=dict(type='PixelPGD', eps=8, steps=5, step_size=2))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.03 * 512 / 256, momentum=0.9,
                   weight_decay=5e-4))

max_epochs = 800
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=max_epochs, by_epoch=True,
         begin=0, end=max_epochs, convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=512)
