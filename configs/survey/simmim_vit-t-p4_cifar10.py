# Plain SimMIM on CIFAR-10 with a ViT-T/4 (SimMIMViT: mmpretrain's ViT with
# the mask token inside the encoder and MAE's fixed sin-cos positions;
# mmpretrain 1.2 has SimMIM for Swin only): the baseline of
# adpe_simmim_vit-t-p4_cifar10_*.py. SimMIM's mask (ratio 0.6, blocks of
# 2 x 2 patches, SimMIMMaskGenerator) and one-layer linear decoder with an
# L1 loss on the masked pixels; the data, 200-epoch schedule and AdamW of
# configs/mae_vit-t-p4_cifar10.py (not a paper setting: the small stand-in
# of SimMIM's ImageNet runs).
#
#   tools/dist_train.sh configs/survey/simmim_vit-t-p4_cifar10.py 1
_base_ = [
    '../_base_/datasets/cifar10_mim.py',
    '../_base_/schedules/cifar10_mim_200e.py',
    './_base_/runtime.py',
]

model = dict(
    type='SimMIM',
    backbone=dict(type='SimMIMViT', arch='deit-tiny', img_size=32,
                  patch_size=4),
    neck=dict(type='SimMIMLinearDecoder', in_channels=192, encoder_stride=4),
    head=dict(type='SimMIMHead', patch_size=4,
              loss=dict(type='PixelReconstructionLoss', criterion='L1',
                        channel=3)),
    data_preprocessor={{_base_.data_preprocessor}},
    init_cfg=[
        dict(type='Xavier', layer='Linear', distribution='uniform'),
        dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0)
    ])

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=32, crop_ratio_range=(0.67, 1.0),
         backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='SimMIMMaskGenerator', input_size=32, mask_patch_size=8,
         model_patch_size=4, mask_ratio=0.6),
    dict(type='PackInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

# no attack, so no per-sample seeds (survey runtime's SampleSeedHook)
custom_hooks = []
