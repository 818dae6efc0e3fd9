# MAE with a ViT-T/4 encoder for 32-px images (CIFAR-10).
#
# Encoder: DeiT-tiny shape (mmpretrain arch `deit-tiny`: 192 dims, 12 layers,
# 3 heads), patch 4 -> 8 x 8 = 64 patches, 16 of them visible at mask 0.75.
# Decoder: MAE's 8 x 512 decoder scaled down with the encoder (ViT-B 768 ->
# ViT-T 192, i.e. / 4): 4 blocks of 128 dims, 4 heads (head dim 32), the input
# projection from the encoder width 192, 64 patches.
model = dict(
    type='MAE',
    backbone=dict(
        type='MAEViT',
        arch='deit-tiny',
        img_size=32,
        patch_size=4,
        mask_ratio=0.75),
    neck=dict(
        type='MAEPretrainDecoder',
        num_patches=64,
        patch_size=4,
        in_chans=3,
        embed_dim=192,
        decoder_embed_dim=128,
        decoder_depth=4,
        decoder_num_heads=4,
        mlp_ratio=4.,
    ),
    head=dict(
        type='MAEPretrainHead',
        norm_pix=True,
        patch_size=4,
        loss=dict(type='PixelReconstructionLoss', criterion='L2')),
    init_cfg=[
        dict(type='Xavier', layer='Linear', distribution='uniform'),
        dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0)
    ])
