# AFF (adversarial full fine-tuning) with TRADES of a CIFAR ResNet-18 encoder
# on CIFAR-10: the whole network trained on CE(f(x), y) + 6 KL(f(x) || f(x')),
# x' maximising the KL in the L-inf 8/255 ball by 10 steps of 2/255 from
# x + N(0, 0.001^2) (Asym-AdvCL's trades.py, beta 6). Schedule and data:
# ./_base_/resnet18_cifar10_protocol.py.
#
#   python tools/train.py configs/eval/aff-trades_resnet18_cifar10.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=ENCODER.pth
_base_ = ['./_base_/resnet18_cifar10_protocol.py']

model = dict(
    type='AdversarialImageClassifier',
    objective='trades',
    beta=6.0,
    attack=dict(eps=8, steps=10, step_size=2))
