# Plain MAE+ on ImageNet-1K, ViT-B/16, AdPE's setting (the README of
# maple-research-lab/AdPE, "MAE+ APE baseline"): each image gives 4
# independent 112 px crops (RandomResizedCrop scale 0.08-1, bicubic, flip:
# --input_size 112 --num_crop 4), each a sample of the loss; 8 GPUs x 128
# images x 4 accumulated steps = 4096 images per update; AdamW lr
# 1.5e-4 x 4096 / 256, betas (0.9, 0.95), wd 0.05; 400 epochs, 20 of linear
# warm-up, then cosine; mask ratio 0.75, normalised-pixel L2 loss. The
# baseline of adpe_mae-plus_vit-b-p16_in1k_*.py; everything else is
# mmpretrain's 400-epoch MAE ViT-B config.
#
#   tools/dist_train.sh configs/survey/mae-plus_vit-b-p16_in1k.py 8
_base_ = ['mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-400e_in1k.py']

custom_imports = dict(imports=['aemim_mm'], allow_failed_imports=False)

model = dict(
    backbone=dict(type='MAEPlusViT', img_size=112),
    neck=dict(type='MAEPlusPretrainDecoder', num_patches=49),
    # the 4 crops of each image as 4 batch entries
    data_preprocessor=dict(
        type='ViewsAsBatchDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True))
data_preprocessor = None

view_pipeline = [
    dict(type='RandomResizedCrop', scale=112, crop_ratio_range=(0.08, 1.0),
         backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiView', num_views=4, transforms=[view_pipeline]),
    dict(type='PackInputs')
]
train_dataloader = dict(
    batch_size=128,
    collate_fn=dict(_delete_=True, type='default_collate'),
    dataset=dict(pipeline=train_pipeline))

optim_wrapper = dict(accumulative_counts=4)

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=20,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=380, by_epoch=True, begin=20,
         end=400, convert_to_iter_based=True)
]

# Automatic resume, as in the upstream config: a run whose work directory
# holds a checkpoint continues from the latest one, and a finished run trains
# nothing more. Start a new run in a new --work-dir, or pass
# `--cfg-options resume=False`.
resume = True
