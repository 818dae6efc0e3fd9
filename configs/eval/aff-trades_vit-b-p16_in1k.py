# AFF (adversarial full fine-tuning) with TRADES of a ViT-B/16 encoder on
# ImageNet-1K: the package's ViT-B fine-tuning recipe
# (../finetune/vit-b_aemim-800e-pre_100e_in1k.py: AdamW, layer decay, 100
# epochs) on TRADES (beta 6, 10 KL-ascent steps of 1/255 at L-inf 4/255).
# Left out, as in ./aff-trades_vit-t-p4_cifar10.py: Mixup / CutMix, label
# smoothing, RandAugment and RandomErasing (RandomResizedCrop + flip
# instead).
_base_ = ['../finetune/vit-b_aemim-800e-pre_100e_in1k.py']

pretrained = 'work_dirs/export/encoder_mmpretrain.pth'
model = dict(
    type='AdversarialImageClassifier',
    objective='trades',
    beta=6.0,
    attack=dict(eps=4, steps=10, step_size=1),
    backbone=dict(init_cfg=dict(checkpoint=pretrained)),
    head=dict(loss=dict(_delete_=True, type='CrossEntropyLoss')),
    train_cfg=None)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, backend='pillow',
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
