# AEMIM + ADIOS-style learned masks (CIFAR-10, ViT-T/4): AEMIM's wrapper
# with the standard settings of configs/aemim_vit-t-p4_cifar10.py
# (reconstruct the clean image from adversarial pixels) around the
# learned-mask SimMIM of adios_simmim_vit-t-p4_cifar10.py. Two adversaries in
# one step: the masking network picks, from the clean image, the blocks
# SimMIM masks (climbing the clean reconstruction loss); the pixel attack
# then perturbs the image under that mask (the clean pass, the attack and
# the adversarial pass share it; the adversarial pass takes it as data).
# docs/adios.md, "ADIOS-style masks in MIM".
#
#   tools/dist_train.sh configs/survey/adios_aemim_simmim_vit-t-p4_cifar10.py 1
_base_ = ['../aemim_vit-t-p4_cifar10.py']

# the algorithm of adios_simmim_vit-t-p4_cifar10.py (simmim_vit-t-p4_cifar10.py
# with the masking network), with the CIFAR-10 data preprocessor
model = dict(algorithm=dict(
    _delete_=True,
    type='AdversarialMaskSimMIM',
    backbone=dict(type='SimMIMViT', arch='deit-tiny', img_size=32,
                  patch_size=4),
    neck=dict(type='SimMIMLinearDecoder', in_channels=192, encoder_stride=4),
    head=dict(type='SimMIMHead', patch_size=4,
              loss=dict(type='PixelReconstructionLoss', criterion='L1',
                        channel=3)),
    data_preprocessor=_base_.model.algorithm.data_preprocessor,
    init_cfg=[
        dict(type='Xavier', layer='Linear', distribution='uniform'),
        dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0)
    ],
    mask_net=dict(type='MaskingUNet', img_size=32, mask_fbase=16,
                  norm='instance'),
    mask_ratio=0.6,
    mask_patch_size=8))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=32, crop_ratio_range=(0.67, 1.0),
         backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
    'mask_net': dict(lr_mult=-1.0, decay_mult=0.0)}))

# the learned mask's ascent check; AEMIM's grid (clean, adversarial,
# perturbation, reconstruction under the learned mask) every 1000 iterations
custom_hooks = [dict(type='AdversarialMaskHook'),
                dict(type='MaskGridHook', vis_interval=1000,
                     grid_name='aemim_learned_mask_grid')]
