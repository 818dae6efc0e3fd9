# CLAE (Ho & Vasconcelos, NeurIPS 2020) on SimCLR, CIFAR-10, ResNet-18: the
# paper's main setting, from the official code (chihhuiho/CLAE:
# SimCLR/main.py, SimCLR/run_cifar10.sh, SimCLR/modules/).
#
#   One FGSM step from view 1 against its own embedding, no random start,
#   eps 0.03 in CLAE's [-1, 1] input space (mean = std = 0.5), i.e.
#   0.03 x 0.5 x 255 = 3.825 in 0-255 units; the attack and the adversarial
#   term through the auxiliary BatchNorms (momentum 0.01), in training mode.
#   Loss: NT-Xent(t(x), t'(x)) + 1.0 * NT-Xent(t(x), x_adv), temperature 0.5.
#   Projector 512 -> 512 -> 64. Adam lr 3e-4, wd 1e-6, batch 256,
#   100 epochs, constant lr. Augmentation: colour-jitter strength 1
#   (0.8 / 0.8 / 0.8 / 0.2, p 0.8), grayscale 0.2, crop, flip; inputs
#   normalised with mean = std = 0.5 as CLAE's.
#
#   python tools/train.py configs/survey/clae_simclr_resnet18_cifar10.py
#
# Deviations from the official code and why: docs/survey.md (CLAE).
_base_ = [
    './_base_/simclr_resnet18_cifar.py',
    './_base_/cifar10_two_views.py',
    './_base_/runtime.py',
]

data_preprocessor = dict(mean=[127.5, 127.5, 127.5],
                         std=[127.5, 127.5, 127.5])

model = dict(
    _delete_=True,
    type='CLAE',
    algorithm=dict(
        _base_.model,
        neck=dict(type='MoCoV2Neck', in_channels=512, hid_channels=512,
                  out_channels=64, with_avg_pool=True)),
    data_preprocessor=dict(
        _base_.data_preprocessor, mean=[127.5, 127.5, 127.5],
        std=[127.5, 127.5, 127.5]),
    attack=dict(type='PixelPGD', eps=0.03 * 0.5 * 255, steps=1,
                random_start=False),
    alpha=1.0,
    adapter='bn',
    adv_bn_momentum=0.01)

view_pipeline = [
    dict(type='RandomResizedCrop', scale=32, crop_ratio_range=(0.08, 1.0),
         backend='pillow'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomApply',
         transforms=[dict(type='HueWrapColorJitter',
                         brightness=0.8, contrast=0.8,
                         saturation=0.8, hue=0.2)],
         prob=0.8),
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True,
         channel_weights=(0.114, 0.587, 0.2989)),
]
train_dataloader = dict(
    batch_size=256,
    dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='MultiView', num_views=2, transforms=[view_pipeline]),
        dict(type='PackInputs')
    ]))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=3e-4, weight_decay=1e-6))
param_scheduler = []
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=100)
auto_scale_lr = dict(base_batch_size=256)
