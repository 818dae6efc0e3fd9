# HCL, hard negative sampling (Robinson, Chuang, Sra, Jegelka, ICLR 2021), on
# SimCLR, CIFAR-10, ResNet-18 (mmpretrain's CIFAR ResNet), with the official
# code's CIFAR-10 run (joshr17/HCL: image/main.py): beta 1.0, tau+ 0.1,
# T 0.5, projector 512 -> 512 (BatchNorm, no bias) -> 128, Adam lr 1e-3,
# wd 1e-6, batch 256, 400 epochs, constant learning rate; the views of
# ./_base_/cifar10_two_views.py and the code's 3 x 3 Gaussian blur (sigma
# 0.1-2, p 0.5; torchvision's, where the code calls OpenCV's). The official code trains a ResNet-50; the
# ResNet-18 is this package's common comparison (docs/survey.md).
#
#   tools/dist_train.sh configs/survey/hcl_simclr_resnet18_cifar10.py 1
_base_ = [
    './_base_/simclr_resnet18_cifar.py',
    './_base_/cifar10_two_views.py',
    './_base_/runtime.py',
]

model = dict(
    _delete_=True,
    type='HCL',
    algorithm=dict(
        _base_.model,
        neck=dict(type='NonLinearNeck', in_channels=512, hid_channels=512,
                  out_channels=128, num_layers=2, with_bias=False,
                  with_last_bn=False, with_last_bias=True,
                  with_avg_pool=True, norm_cfg=dict(type='SyncBN'))),
    beta=1.0,
    tau_plus=0.1)

# the official views: ./_base_/cifar10_two_views.py's and a 3 x 3 blur
hcl_view_pipeline = _base_.view_pipeline + [
    dict(type='RandomApply',
         transforms=[dict(type='NumpyToPIL', to_rgb=False),
                     dict(type='torchvision/GaussianBlur', kernel_size=3,
                          sigma=(0.1, 2.0)),
                     dict(type='PILToNumpy', to_bgr=False)],
         prob=0.5),
]
train_dataloader = dict(
    batch_size=256,
    dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='MultiView', num_views=2, transforms=[hcl_view_pipeline]),
        dict(type='PackInputs')
    ]))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=1e-3, weight_decay=1e-6))
max_epochs = 400
param_scheduler = []
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=256)
