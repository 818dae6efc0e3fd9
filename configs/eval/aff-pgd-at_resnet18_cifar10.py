# AFF (adversarial full fine-tuning) with PGD-AT (Madry et al., 2018) of a
# CIFAR ResNet-18 encoder on CIFAR-10: the whole network trained on the
# cross-entropy of PGD examples (L-inf 8/255, 10 steps of 2/255 from a
# uniform random start: the TRADES protocol's attack budget, so that the two
# AFF variants differ only in the objective). Schedule and data:
# ./_base_/resnet18_cifar10_protocol.py.
#
#   python tools/train.py configs/eval/aff-pgd-at_resnet18_cifar10.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=ENCODER.pth
_base_ = ['./_base_/resnet18_cifar10_protocol.py']

model = dict(
    type='AdversarialImageClassifier',
    objective='pgd_at',
    attack=dict(eps=8, steps=10, step_size=2))
