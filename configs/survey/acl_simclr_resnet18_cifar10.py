# ACL (Jiang et al., NeurIPS 2020), dual stream, on SimCLR, CIFAR-10,
# ResNet-18: the paper's main setting, from the official code
# (VITA-Group/Adversarial-Contrastive-Learning: train_simCLR.py, utils.py,
# models/resnet_multi_bn.py).
#
#   PGD on both views jointly: eps 8/255, step 2/255, 5 steps, random start,
#   through the adversarial BatchNorms in eval mode. Loss: the mean of the
#   clean pair's NT-Xent (clean BatchNorms) and the adversarial pair's
#   (adversarial BatchNorms), temperature 0.5. Dual BatchNorms in encoder
#   AND projector (512 -> 512 -> 512 -> 512, BatchNorm after each layer).
#   LARS lr 5.0, wd 1e-6, batch 512, 1000 epochs, 10 warm-up epochs then
#   cosine. Augmentation: crop scale 0.1-1, colour jitter 0.4 / 0.4 / 0.4 /
#   0.1 (p 0.8), grayscale 0.2, flip.
#
#   python tools/train.py configs/survey/acl_simclr_resnet18_cifar10.py
#
# The other variants: model.variant='A2A' or 'A2S' with adapter='none'.
# Deviations from the official code and why: docs/survey.md (ACL).
_base_ = [
    './_base_/simclr_resnet18_cifar.py',
    './_base_/cifar10_two_views.py',
    './_base_/runtime.py',
]

model = dict(
    _delete_=True,
    type='ACL',
    algorithm=dict(
        _base_.model,
        neck=dict(type='NonLinearNeck', in_channels=512, hid_channels=512,
                  out_channels=512, num_layers=3, with_bias=False,
                  with_last_bn=True, with_avg_pool=True,
                  norm_cfg=dict(type='SyncBN'))),
    data_preprocessor={{_base_.data_preprocessor}},
    attack=dict(type='PixelPGD', eps=8, steps=5, step_size=2),
    variant='DS',
    adv_weight=0.5,
    adapter='bn')

view_pipeline = [
    dict(type='RandomResizedCrop', scale=32, crop_ratio_range=(0.1, 1.0),
         backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomApply',
         transforms=[dict(type='HueWrapColorJitter',
                         brightness=0.4, contrast=0.4,
                         saturation=0.4, hue=0.1)],
         prob=0.8),
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True,
         channel_weights=(0.114, 0.587, 0.2989)),
]
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='MultiView', num_views=2, transforms=[view_pipeline]),
    dict(type='PackInputs')
]))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='LARS', lr=5.0, momentum=0.9, weight_decay=1e-6))

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
