# The fine-tuning protocols of the adversarial pre-training literature
# (SLF / ALF / AFF) for a CIFAR ResNet-18 encoder on CIFAR-10: what the
# survey's methods report (Asym-AdvCL's finetuning_advCL_SLF.py, whose
# shells run all three; AdvCL's own script is the SLF one). Shared here:
#
#   * the encoder: mmpretrain's ResNet_CIFAR-18 (512 features), loaded from
#     an export of any CIFAR-10 survey config (tools/export_encoder.py
#     --formats mmpretrain), global average pooling, a linear head;
#   * data: CIFAR-10 class folders (../../finetune/_base_/cifar10_cls.py),
#     crop 32 with 4 px padding and horizontal flip, as the originals;
#   * schedule: 25 epochs, SGD lr 0.1 (the shells' value for all three
#     protocols; AdvCL's own SLF default is 0.01), momentum 0.9, weight
#     decay 2e-4, batch 512, lr / 10 at epochs 15 and 20.
#
# Each protocol file sets the classifier type, the frozen stages and the
# attack. Evaluate the result with tools/eval_robust_accuracy.py (PGD-20 and
# AutoAttack at 8/255).
_base_ = [
    '../../finetune/_base_/cifar10_cls.py',
    'mmpretrain::_base_/default_runtime.py',
]

custom_imports = dict(imports=['aemim_mm'], allow_failed_imports=False)

# the export of the pre-trained encoder; set it on the command line:
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
pretrained = 'work_dirs/export/encoder_mmpretrain.pth'

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ResNet_CIFAR',
        depth=18,
        zero_init_residual=False,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=512,
        loss=dict(type='CrossEntropyLoss')))

train_dataloader = dict(batch_size=512)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=2e-4))
max_epochs = 25
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, milestones=[15, 20], gamma=0.1)
]
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=5)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=512)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=5, max_keep_ckpts=2))
randomness = dict(seed=0, diff_rank_seed=True)
