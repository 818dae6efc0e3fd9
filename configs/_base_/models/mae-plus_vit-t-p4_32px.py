# MAE+ (AdPE's base, maple-research-lab/AdPE `model/ad_ape.py`) with the
# ViT-T/4 of mae_vit-t-p4_32px.py: the encoder receives all 64 patches, the
# 48 masked ones as a learnable mask token (MAEPlusViT), and the decoder
# inserts none (MAEPlusPretrainDecoder). Everything else is MAE's.
_base_ = ['./mae_vit-t-p4_32px.py']

model = dict(
    backbone=dict(type='MAEPlusViT'),
    neck=dict(type='MAEPlusPretrainDecoder'))
