# RUSH (Pang, Liu, Zhou, 2022; arXiv 2207.05127), step 1 of 3: standard
# contrastive pre-training, no adversary: SimCLR on CIFAR-10 with the CIFAR
# ResNet-18 of the other survey configs (./_base_/simclr_resnet18_cifar.py:
# 512 -> 2048 -> 128 projector, temperature 0.5; the views of
# ./_base_/cifar10_two_views.py; RoCL's LARS schedule, 500 epochs).
# No official code exists; the paper's abstract names "standard contrastive
# pre-training" without a recipe: this is the package's plain SimCLR
# setting, and any other pre-trained ResNet_CIFAR-18 encoder of the package
# can take its place (docs/survey.md, RUSH).
#
#   tools/dist_train.sh configs/survey/rush_simclr_resnet18_cifar10.py 2
#   python tools/export_encoder.py work_dirs/rush_simclr_resnet18_cifar10/epoch_500.pth \
#       --out-dir work_dirs/rush_simclr_resnet18_cifar10/export --formats mmpretrain
#
# Step 2: configs/survey/rush_resnet18_cifar10_noise0.25_ft.py (fine-tuning
# with Gaussian noise); step 3: tools/certify.py (randomized smoothing).
_base_ = [
    './_base_/simclr_resnet18_cifar.py',
    './_base_/cifar10_two_views.py',
    './_base_/runtime.py',
]

model = dict(data_preprocessor={{_base_.data_preprocessor}})
# plain SimCLR: no attack, so no per-sample seeds (SampleSeedHook)
custom_hooks = []

max_epochs = 500
train_dataloader = dict(batch_size=256)     # per GPU: 2 x 256 = 512
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='LARS', lr=0.1 * 15, momentum=0.9,
                   weight_decay=1e-6, eta=0.001))
param_scheduler = [
    dict(type='LinearLR', start_factor=1 / 15, by_epoch=True, begin=0,
         end=10, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 10, by_epoch=True,
         begin=10, end=max_epochs, convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=512)
