# ImageNet-1K fine-tuning of a ViT-S/16 pre-trained for 300 epochs with AEMIM
# (aemim_vit-s_300e.py, the ablations of Table 8, fast_aemim_vit-s_300e.py,
# mae_vit-s_300e.py): the paper's Table 2, ViT-S/16: 200 epochs (5 warm-up),
# base lr 1e-3 (lr = 1e-3 x 2048 / 256), layer decay 0.8, drop path 0.1.
# Everything else as vit-b_aemim-800e-pre_100e_in1k.py.
#
# ViT-S/16 is the DeiT-small shape (mmpretrain arch `deit-small`: 384 dims,
# 12 layers, 6 heads), as in the pre-training configs.
#
#   python tools/export_encoder.py work_dirs/aemim_vit-s_300e/epoch_300.pth \
#       --out-dir work_dirs/aemim_vit-s_300e/export
#   tools/dist_train.sh configs/finetune/vit-s_aemim-300e-pre_200e_in1k.py 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = ['./vit-b_aemim-800e-pre_100e_in1k.py']

pretrained = 'work_dirs/aemim_vit-s_300e/export/epoch_300_mmpretrain.pth'
base_lr = 1e-3
layer_decay_rate = 0.8
max_epochs = 200
warmup_epochs = 5

model = dict(
    backbone=dict(
        arch='deit-small', init_cfg=dict(checkpoint=pretrained)),
    head=dict(in_channels=384))

optim_wrapper = dict(
    optimizer=dict(lr=base_lr * 2048 / 256),  # batch 8 x 256
    paramwise_cfg=dict(layer_decay_rate=layer_decay_rate))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - warmup_epochs,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        eta_min=1e-6,
        convert_to_iter_based=True)
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs)
