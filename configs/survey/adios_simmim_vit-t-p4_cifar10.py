# ADIOS-style learned masks on SimMIM (CIFAR-10, ViT-T/4): the SimMIM of
# simmim_vit-t-p4_cifar10.py whose mask ADIOS's masking network chooses
# against it (AdversarialMaskSimMIM). The U-Net (base width 16, instance
# norm, two slots: masked / visible) scores each 8 x 8 px block by its mean
# masked probability; the top 60 % (SimMIM's ratio and blocks) are masked,
# with the straight-through gradient to the scores. The masking network
# climbs the SimMIM loss by the network's AdamW in a param group of learning
# rate -lr (lr_mult -1, no weight decay; AdversarialMaskHook checks it);
# the fixed ratio takes the place of ADIOS's sparsity penalty. Not a setting
# of any paper: docs/adios.md, "ADIOS-style masks in MIM".
#
#   tools/dist_train.sh configs/survey/adios_simmim_vit-t-p4_cifar10.py 1
_base_ = ['./simmim_vit-t-p4_cifar10.py']

model = dict(
    type='AdversarialMaskSimMIM',
    mask_net=dict(type='MaskingUNet', img_size=32, mask_fbase=16,
                  norm='instance'),
    mask_ratio=0.6,
    mask_patch_size=8)

# the data's mask is not used: SimMIM's augmentation without it
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

# the ascent's check; the learned masks every 1000 iterations
# (<work_dir>/<timestamp>/vis_data/vis_image/adios_masks_<iter>.png)
custom_hooks = [dict(type='AdversarialMaskHook'),
                dict(type='MaskGridHook', vis_interval=1000)]
