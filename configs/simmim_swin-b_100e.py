# SimMIM baseline, Swin-B, 100 epochs: the "SimMIM" row of paper Table 9.
#
# mmpretrain's SimMIM Swin-B recipe, unchanged: 192 px, window 6, mask ratio
# 0.6 with 32-px mask patches, AdamW lr 2e-4 x 2048 / 512, betas
# (0.9, 0.999), wd 0.05, grad clip 5.0, 10 warm-up epochs, cosine to
# 1e-5 x 2048 / 512, batch 2048 (8 GPUs x 256), AMP.
_base_ = [
    'mmpretrain::simmim/'
    'simmim_swin-base-w6_8xb256-amp-coslr-100e_in1k-192px.py'
]

# see mae_vit-b_800e.py: drop the `_scope_` key that `mmpretrain::` adds
train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))

# see mae_vit-b_800e.py: the data preprocessor stays with the algorithm
model = dict(data_preprocessor={{_base_.data_preprocessor}})
