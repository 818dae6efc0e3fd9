# RoCL (Kim, Tack, Hwang, NeurIPS 2020) on SimCLR, CIFAR-10, ResNet-18: the
# paper's main setting, from the official code (Kim-Minseon/RoCL:
# src/argument.py, README's command, src/rocl_train.py).
#
#   PGD on view 1 toward view 2: eps 8/255, step 0.007 (x 255 = 1.785 in
#   0-255 units), 7 steps, random start; BatchNorm in eval mode during the
#   attack. Loss: 3-view NT-Xent over {t(x), t'(x), x_adv} + (1/256) *
#   NT-Xent(x_adv, t'(x)), temperature 0.5, similarities z @ sg(z).T.
#   Projector 512 -> 2048 -> 128 (no BatchNorm). LARS (trust 0.001),
#   momentum 0.9, wd 1e-6, batch 512 (2 GPUs x 256), 1000 epochs; the
#   official GradualWarmupScheduler (multiplier 15, 10 epochs) takes the lr
#   from 0.1 to 1.5, then cosine.
#
#   tools/dist_train.sh configs/survey/rocl_simclr_resnet18_cifar10.py 2
#
# Deviations from the official code and why: docs/survey.md (RoCL).
_base_ = [
    './_base_/simclr_resnet18_cifar.py',
    './_base_/cifar10_two_views.py',
    './_base_/runtime.py',
]

model = dict(
    _delete_=True,
    type='RoCL',
    algorithm={{_base_.model}},
    data_preprocessor={{_base_.data_preprocessor}},
    attack=dict(type='PixelPGD', eps=8, steps=7, step_size=0.007 * 255),
    lamda=256.,
    adversarial_contrast=True,
    stop_grad_others=True)

num_gpus = 2
train_dataloader = dict(batch_size=256)     # per GPU: 2 x 256 = 512

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='LARS', lr=0.1 * 15, momentum=0.9,
                   weight_decay=1e-6, eta=0.001))

max_epochs = 1000
warmup_epochs = 10
param_scheduler = [
    dict(type='LinearLR', start_factor=1 / 15, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs,
         by_epoch=True, begin=warmup_epochs, end=max_epochs,
         convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=512)
