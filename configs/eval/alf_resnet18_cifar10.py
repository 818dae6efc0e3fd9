# ALF (adversarial linear fine-tuning) of a CIFAR ResNet-18 encoder on
# CIFAR-10: the encoder frozen as in SLF, the linear head trained on PGD
# examples crafted through encoder and head (cross-entropy, L-inf 8/255, 20
# steps of 2/255 from a uniform random start: the originals' ALF attack,
# Asym-AdvCL's AttackPGD called with train=False). Schedule and data:
# ./_base_/resnet18_cifar10_protocol.py.
#
#   python tools/train.py configs/eval/alf_resnet18_cifar10.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=ENCODER.pth
_base_ = ['./_base_/resnet18_cifar10_protocol.py']

model = dict(
    type='AdversarialImageClassifier',
    objective='pgd_at',
    attack=dict(eps=8, steps=20, step_size=2),
    backbone=dict(frozen_stages=4))
