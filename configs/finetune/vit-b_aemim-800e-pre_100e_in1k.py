# ImageNet-1K fine-tuning of a ViT-B/16 pre-trained for 800 epochs with AEMIM
# (aemim_vit-b_800e.py / fast_aemim_vit-b_800e.py / mae_vit-b_800e.py): the
# paper's Table 2, ViT-B/16 after 800-epoch pre-training.
#
# mmpretrain's MAE fine-tuning recipe (read from the installed package), with
# the paper's values: ImageClassifier + VisionTransformer with global average
# pooling (`out_type='avg_featmap'`, a fresh norm `ln2` after pooling, no final
# norm), drop path 0.1, AdamW betas (0.9, 0.999), wd 0.05 (0 for LayerNorms,
# biases, cls_token, pos_embed), layer-wise lr decay through
# `LearningRateDecayOptimWrapperConstructor`, 5 linear warm-up epochs then
# cosine, RandAugment(9, 0.5) (`magnitude_level=9, magnitude_std=0.5`, timm's
# rand-m9-mstd0.5-inc1), label smoothing 0.1, mixup 0.8 / cutmix 1.0,
# 224 px. Random erasing 0.25 is MAE's (the paper follows MAE; not in Table 2).
#
# lr: the paper's linear scaling rule, lr = base_lr x batch / 256 with base lr
# 5e-4 and batch 2048 (8 GPUs x 256), layer decay 0.65. On another number of
# GPUs use `--auto-scale-lr` (base batch 2048 below) or gradient accumulation
# (`--cfg-options optim_wrapper.accumulative_counts=N`).
#
# The pre-trained encoder: export it first (decoder and adversarial adapters
# dropped), then point the config at the `_mmpretrain.pth` file:
#   python tools/export_encoder.py work_dirs/aemim_vit-b_800e/epoch_800.pth \
#       --out-dir work_dirs/aemim_vit-b_800e/export
#   tools/dist_train.sh configs/finetune/vit-b_aemim-800e-pre_100e_in1k.py 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH
# (`--cfg-options pretrained=PATH` would NOT work: the variable below is
# already substituted into the model when the file is read.)
_base_ = ['mmpretrain::mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py']

custom_imports = dict(imports=['aemim_mm'], allow_failed_imports=False)

pretrained = 'work_dirs/aemim_vit-b_800e/export/epoch_800_mmpretrain.pth'
base_lr = 5e-4
layer_decay_rate = 0.65
num_gpus = 8
batch_per_gpu = 256  # 8 x 256 = 2048

model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.1,
        out_type='avg_featmap',
        final_norm=False,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    head=dict(
        in_channels=768,
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')),
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0)
    ]))

# The collate function is defined here, not inherited: `mmpretrain::` configs
# put a `_scope_` key into every typed dict, which the Runner would pass on to
# the function (this base has none, so no `_delete_` is needed either).
train_dataloader = dict(
    batch_size=batch_per_gpu, collate_fn=dict(type='default_collate'))
val_dataloader = dict(
    batch_size=batch_per_gpu, collate_fn=dict(type='default_collate'))
test_dataloader = val_dataloader

optim_wrapper = dict(
    optimizer=dict(
        type='AdamW',
        lr=base_lr * batch_per_gpu * num_gpus / 256,
        weight_decay=0.05,
        betas=(0.9, 0.999)),
    constructor='LearningRateDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=layer_decay_rate))

auto_scale_lr = dict(base_batch_size=batch_per_gpu * num_gpus)
