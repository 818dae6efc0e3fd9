# SLF (standard linear fine-tuning) of a ResNet-50 encoder on ImageNet-1K
# (the survey configs' *_resnet50_in1k.py exports, SparK's ResNet-50):
# mmpretrain's SimCLR linear evaluation, unchanged (frozen encoder with its
# exported BatchNorm statistics, LARS lr 1.6 for batch 4096, 90 epochs,
# cosine; RandomResizedCrop 224 + flip). The literature's ImageNet protocols
# publish no schedule of their own: the ResNet-50 ones here keep mmpretrain's
# linear evaluation (SLF, ALF) and the CIFAR protocol's fine-tuning schedule
# (AFF), with ImageNet's budget, L-inf 4/255 (docs/evaluation.md).
#
#   python tools/train.py configs/eval/slf_resnet50_in1k.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=ENCODER.pth
#   python tools/eval_robust_accuracy.py configs/eval/slf_resnet50_in1k.py \
#       work_dirs/slf_resnet50_in1k/epoch_90.pth --dataset-name imagenet \
#       --out-dir work_dirs/robust
_base_ = ['mmpretrain::simclr/benchmarks/resnet50_8xb512-linear-coslr-90e_in1k.py']

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
