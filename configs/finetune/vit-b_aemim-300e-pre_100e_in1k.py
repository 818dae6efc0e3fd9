# ImageNet-1K fine-tuning of a ViT-B/16 pre-trained for 300 epochs with AEMIM
# (aemim_vit-b_300e.py / fast_aemim_vit-b_300e.py / mae_vit-b_300e.py): the
# paper's Table 2, ViT-B/16 after 300-epoch pre-training: base lr 1e-3
# (lr = 1e-3 x 2048 / 256), layer decay 0.7. Everything else as
# vit-b_aemim-800e-pre_100e_in1k.py (100 epochs, 5 warm-up, batch 2048, ...).
#
#   python tools/export_encoder.py work_dirs/aemim_vit-b_300e/epoch_300.pth \
#       --out-dir work_dirs/aemim_vit-b_300e/export
#   tools/dist_train.sh configs/finetune/vit-b_aemim-300e-pre_100e_in1k.py 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = ['./vit-b_aemim-800e-pre_100e_in1k.py']

pretrained = 'work_dirs/aemim_vit-b_300e/export/epoch_300_mmpretrain.pth'
base_lr = 1e-3
layer_decay_rate = 0.7

model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
optim_wrapper = dict(
    optimizer=dict(lr=base_lr * 2048 / 256),  # batch 8 x 256
    paramwise_cfg=dict(layer_decay_rate=layer_decay_rate))
