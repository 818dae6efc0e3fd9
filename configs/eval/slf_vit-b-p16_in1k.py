# SLF (standard linear fine-tuning) of a ViT-B/16 encoder on ImageNet-1K
# (AEMIM's and MAE's ViT-B exports): mmpretrain's MAE linear probe,
# unchanged (frozen encoder, class token, BatchNorm neck, LARS, 90 epochs,
# batch 16384). ALF and AFF keep it and the package's ViT-B fine-tuning
# recipe and change only what the protocol is, at ImageNet's budget
# (docs/evaluation.md).
#
#   python tools/train.py configs/eval/slf_vit-b-p16_in1k.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=ENCODER.pth
_base_ = ['mmpretrain::mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py']

custom_imports = dict(imports=['aemim_mm'], allow_failed_imports=False)

pretrained = 'work_dirs/export/encoder_mmpretrain.pth'
model = dict(
    backbone=dict(
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')))

# mmpretrain:: configs put a `_scope_` key into collate_fn; default_collate
# rejects it
train_dataloader = dict(collate_fn=dict(type='default_collate'))
val_dataloader = dict(collate_fn=dict(type='default_collate'))
test_dataloader = val_dataloader
