# ImageNet-1K fine-tuning of a Swin-B pre-trained for 100 epochs with AEMIM on
# SimMIM (aemim_simmim_swin-b_100e.py / simmim_swin-b_100e.py): the paper's
# Table 9.
#
# The paper gives no fine-tuning settings for Swin-B (its Table 2 is for
# ViT-S / ViT-B) and follows SimMIM; so this is mmpretrain's SimMIM Swin-B
# fine-tuning benchmark, unchanged, read from the installed package: 224 px
# with window 7 (the pre-training's 192 px / window 6 position tables are
# interpolated at load time by SwinTransformer), 100 epochs, AdamW lr
# 1.25e-3 x 2048 / 512 = 5e-3, wd 0.05, betas (0.9, 0.999), layer decay 0.9,
# grad clip 5, 20 warm-up epochs then cosine, drop path 0.1,
# RandAugment(9, 0.5), random erasing 0.25, label smoothing 0.1, mixup 0.8 /
# cutmix 1.0, global average pooling, batch 2048 (8 GPUs x 256), AMP.
# Differences to Table 2 (ViT): lr, layer decay and 20 (not 5) warm-up epochs.
#
#   python tools/export_encoder.py \
#       work_dirs/aemim_simmim_swin-b_100e/epoch_100.pth \
#       --out-dir work_dirs/aemim_simmim_swin-b_100e/export \
#       --formats mmpretrain
#   tools/dist_train.sh configs/finetune/swin-b_aemim-simmim-100e-pre_100e_in1k.py 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = [
    'mmpretrain::simmim/benchmarks/swin-base-w7_8xb256-coslr-100e_in1k.py'
]

custom_imports = dict(imports=['aemim_mm'], allow_failed_imports=False)

pretrained = ('work_dirs/aemim_simmim_swin-b_100e/export/'
              'epoch_100_mmpretrain.pth')

model = dict(
    backbone=dict(
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')))

# see vit-b_aemim-800e-pre_100e_in1k.py: no `_scope_` in collate_fn
train_dataloader = dict(
    collate_fn=dict(_delete_=True, type='default_collate'))
val_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
test_dataloader = val_dataloader

auto_scale_lr = dict(base_batch_size=2048)
