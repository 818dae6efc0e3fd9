# HCL (Robinson, Chuang, Sra, Jegelka, ICLR 2021) on SimCLR, STL-10,
# ResNet-50: the official code's default run (joshr17/HCL: image/main.py,
# image/utils.py, image/model.py; STL-10 linear accuracy 87.44 at beta 1.0).
#
#   Negatives re-weighted by w_j = exp(beta s_j / T) / mean, debiased with
#   tau+ (the weights carry gradient): beta 1.0, tau+ 0.1, T 0.5. SimCLR
#   with a CIFAR-stem ResNet-50 (3x3 conv, no max pooling), projector
#   2048 -> 512 (BatchNorm, no bias) -> 128; the STL-10 train+unlabeled
#   images (105,000) at 32 px with CIFAR-10's normalisation, as the code
#   does; Adam lr 1e-3, wd 1e-6, batch 256, 400 epochs, constant rate.
#
# Put the images under data/stl10/train+unlabeled/ (any image files;
# docs/survey.md shows how with torchvision), or set
# `train_dataloader.dataset.data_root`.
#
#   tools/dist_train.sh configs/survey/hcl_simclr_resnet50_stl10.py 1
#
# Deviations from the official code and why: docs/survey.md (HCL).
_base_ = ['./hcl_simclr_resnet18_cifar10.py']

model = dict(
    algorithm=dict(
        backbone=dict(depth=50),
        neck=dict(in_channels=2048)))

train_dataloader = dict(
    dataset=dict(data_root='{{$STL10_ROOT:data/stl10}}',
                 data_prefix='train+unlabeled'))
