# MAE baseline, ViT-S/16, 300 epochs (no adversarial examples): the paper's
# ablation setting (Table 8) and its ViT-S row of Tables 4, 5 and 7.
#
# ViT-S/16 is the DeiT-small shape: 384 dims, 12 layers, 6 heads
# (mmpretrain arch `deit-small`; mmpretrain's arch `s` is a different,
# 768-dim network). The decoder (8 x 512, 16 heads) is the ViT-B one; only its
# input projection follows the encoder width (`embed_dim=384`).
_base_ = ['./mae_vit-b_300e.py']

model = dict(
    backbone=dict(arch='deit-small'),
    neck=dict(embed_dim=384))
