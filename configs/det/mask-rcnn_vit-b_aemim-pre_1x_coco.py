# COCO Mask R-CNN, ViT-B/16 backbone from an AEMIM (or MAE) pre-trained
# encoder: the paper's Table 3 (ViT-B column). Everything else as the ViT-S
# config: docs/downstream.md, "COCO Mask R-CNN".
# - ViT-B/16 (768 dims, 12 layers, 12 heads), drop path 0.2;
# - AdamW base lr 3e-3 (lr = 3e-3 x 16 / 256 = 1.875e-4), layer-wise lr
#   decay 0.65.
_base_ = ['./mask-rcnn_vit-s_aemim-pre_1x_coco.py']

pretrained = 'checkpoints/aemim_vit-b_800e_encoder_det.pth'

model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained,
                      prefix='backbone.')),
    neck=dict(in_channels=768))

optim_wrapper = dict(
    optimizer=dict(lr=3e-3 * 16 / 256),    # base lr x batch / 256
    paramwise_cfg=dict(layer_decay_rate=0.65))
