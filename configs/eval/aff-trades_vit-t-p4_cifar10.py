# AFF (adversarial full fine-tuning) with TRADES of a ViT-T/4 encoder on
# CIFAR-10: the package's fine-tuning recipe
# (../finetune/vit-t-p4_cifar10_ft.py: AdamW, layer decay, 100 epochs) on the
# TRADES objective of
# ./aff-trades_resnet18_cifar10.py (beta 6, L-inf 8/255, 10 steps of 2/255).
# What adversarial training does not combine with is left out: Mixup / CutMix
# (soft labels), label smoothing (the attack and TRADES use the hard label's
# cross-entropy) and RandAugment / RandomErasing (the crop and flip of the
# ResNet protocol instead).
_base_ = ['../finetune/vit-t-p4_cifar10_ft.py']

model = dict(
    type='AdversarialImageClassifier',
    objective='trades',
    beta=6.0,
    attack=dict(eps=8, steps=10, step_size=2),
    head=dict(loss=dict(_delete_=True, type='CrossEntropyLoss')),
    train_cfg=None)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomCrop', crop_size=32, padding=4, padding_mode='reflect'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
