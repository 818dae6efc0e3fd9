# ImageNet-1K fine-tuning of a HiViT-B pre-trained with AEMIM on iTPN with
# CLIP targets (algorithms/aemim_itpn-clip-b_hivit-base-p16_8xb256-amp-
# coslr-300e_in1k.py or its fast_ variant). Not a setting of the AEMIM paper.
#
# The backbone is mmpretrain's HiViT-B (configs/hivit/hivit-base-p16_16xb64_
# in1k.py: 224 px, patch 16, absolute and relative position embeddings)
# built with the pre-training's layer scale (layer_scale_init_value=0.1, as
# iTPN-CLIP pre-trains): mmpretrain's own HiViT-B config has none, and its
# non-strict loader would drop the 56 exported gamma_1 / gamma_2 tensors
# without an error (`tools/export_encoder.py --finetune-config` reports such
# losses).
#
# Schedule: mmpretrain ships no iTPN fine-tuning config and iTPN publishes
# its fine-tuning command for iTPN-L only (50 epochs, layer decay 0.55, base
# lr 2e-4, drop path 0.25). This config keeps mmpretrain's HiViT-B recipe
# (AdamW lr 5e-4 x batch / 512, wd 0.05, grad clip 5, its augmentation,
# mixup / cutmix and label smoothing; batch 1024 = 16 GPUs x 64) with the
# changes of a fine-tuning from a pre-trained encoder: 100 epochs with 5
# warm-up epochs (not 300 with 20) and drop path 0.1 (not 0.5). No layer
# decay: mmpretrain 1.2's HiViT.get_layer_depth looks for `layers.N` while
# HiViT names its blocks `blocks.N`, so LearningRateDecayOptimWrapperConstructor
# would give every block the head's lr and the patch embedding lr x 0.65^29.
# Not tuned, not a setting of either paper.
#
#   python tools/export_encoder.py \
#       work_dirs/aemim_itpn-clip-b_hivit-base-p16_8xb256-amp-coslr-300e_in1k/epoch_300.pth \
#       --out-dir work_dirs/aemim_itpn-clip/export --formats mmpretrain \
#       --finetune-config configs/finetune/hivit-b_aemim-itpn-clip-pre_100e_in1k.py
#   tools/dist_train.sh configs/finetune/hivit-b_aemim-itpn-clip-pre_100e_in1k.py 16 \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = ['mmpretrain::hivit/hivit-base-p16_16xb64_in1k.py']

custom_imports = dict(imports=['aemim_mm'], allow_failed_imports=False)

pretrained = ('work_dirs/aemim_itpn-clip/export/'
              'epoch_300_mmpretrain.pth')
base_lr = 5e-4
num_gpus = 16
batch_per_gpu = 64  # 16 x 64 = 1024
max_epochs = 100
warmup_epochs = 5

model = dict(
    backbone=dict(
        layer_scale_init_value=0.1,
        drop_path_rate=0.1,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')))

# see vit-b_aemim-800e-pre_100e_in1k.py: no `_scope_` in collate_fn
train_dataloader = dict(
    batch_size=batch_per_gpu,
    collate_fn=dict(type='default_collate'))
val_dataloader = dict(
    batch_size=batch_per_gpu,
    collate_fn=dict(type='default_collate'))
test_dataloader = val_dataloader

optim_wrapper = dict(
    type='AmpOptimWrapper',
    optimizer=dict(lr=base_lr * batch_per_gpu * num_gpus / 512))

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True,
         begin=warmup_epochs, end=max_epochs,
         T_max=max_epochs - warmup_epochs, convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs)

auto_scale_lr = dict(base_batch_size=batch_per_gpu * num_gpus)
