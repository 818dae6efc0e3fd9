# SLF (standard linear fine-tuning) of a CIFAR ResNet-18 encoder on CIFAR-10:
# the whole encoder frozen (stem and four stages: no gradient, BatchNorms in
# eval mode with the exported running statistics), a linear head trained on
# clean images. Schedule and data: ./_base_/resnet18_cifar10_protocol.py.
#
#   python tools/train.py configs/eval/slf_resnet18_cifar10.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=ENCODER.pth
#   python tools/eval_robust_accuracy.py configs/eval/slf_resnet18_cifar10.py \
#       work_dirs/slf_resnet18_cifar10/epoch_25.pth --out-dir work_dirs/robust
_base_ = ['./_base_/resnet18_cifar10_protocol.py']

model = dict(backbone=dict(frozen_stages=4))
