# AFF (adversarial full fine-tuning) with TRADES of a ResNet-50 encoder on
# ImageNet-1K: the whole network, TRADES (beta 6) with 10 KL-ascent steps of
# 1/255 at L-inf 4/255, and the CIFAR protocol's schedule
# (./_base_/resnet18_cifar10_protocol.py): 25 epochs, SGD momentum 0.9,
# weight decay 2e-4, lr / 10 at epochs 15 and 20, its lr 0.1 for batch 512
# scaled linearly to this config's 8 x 512 (--auto-scale-lr for other
# batches). A decision of this package: no ImageNet AFF schedule is
# published by the survey's papers (docs/evaluation.md).
_base_ = ['./slf_resnet50_in1k.py']

model = dict(
    type='AdversarialImageClassifier',
    objective='trades',
    beta=6.0,
    attack=dict(eps=4, steps=10, step_size=1),
    backbone=dict(frozen_stages=-1))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.1 * 4096 / 512, momentum=0.9,
                   weight_decay=2e-4))
max_epochs = 25
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, milestones=[15, 20], gamma=0.1)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=4096)
