# What the CIFAR-10 fine-tuning (../vit-t-p4_cifar10_ft.py) and linear-probe
# (../../linear_probe/vit-t-p4_cifar10_lp.py) configs share: the data
# (cifar10_cls.py), mmpretrain's default runtime, a ViT-T/4 ImageClassifier
# loading the exported pre-trained encoder, an fp32 optimiser wrapper, and the
# loop, checkpoint and seed settings. Each config adds its own recipe (model
# head and encoder options, optimiser, schedule, epochs, batch).
#
# The pre-trained encoder: export it first (decoder and adversarial adapters
# dropped), then point the config at the `_mmpretrain.pth` file with
# `--cfg-options model.backbone.init_cfg.checkpoint=PATH`
# (`--cfg-options pretrained=PATH` would NOT work: the variable below is
# already substituted into the model when the file is read).
_base_ = [
    './cifar10_cls.py',
    'mmpretrain::_base_/default_runtime.py',
]

custom_imports = dict(imports=['aemim_mm'], allow_failed_imports=False)

pretrained = 'work_dirs/aemim_vit-t-p4_cifar10/export/epoch_200_mmpretrain.pth'

# ViT-T/4 (DeiT-tiny shape: 192 dims, 12 layers, 3 heads) at 32 px, as in
# pre-training; 10 classes
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='VisionTransformer',
        arch='deit-tiny',
        img_size=32,
        patch_size=4,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    head=dict(num_classes=10, in_channels=192))

optim_wrapper = dict(type='OptimWrapper')  # fp32: also runs on a CPU

train_cfg = dict(type='EpochBasedTrainLoop', val_interval=10)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(
        type='CheckpointHook', interval=10, max_keep_ckpts=3,
        save_best='accuracy/top1', rule='greater'))
randomness = dict(seed=0, diff_rank_seed=True)
