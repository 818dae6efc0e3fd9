# AdPE, adversarial coordinates (the original's --adv_type 2), on MAE+
# (mae-plus_vit-t-p4_cifar10.py, unchanged otherwise): a shift (d_row,
# d_col) of the masked patches' sin-cos coordinates, shared by every image
# and kept across iterations, climbs the MAE loss inside an L-inf ball of
# 1 patch (the original's argparse default --eps 1; its per-setting values
# are in the paper's supplementary Table A.2, not verified: docs/adpe.md).
#
# The ascent is the original's: the network's AdamW with the state in a
# param group of negative learning rate (adv_lr = blr = 1.5e-4 x batch / 256
# in the README commands: lr_mult -1, the same warm-up and cosine), no
# weight decay, projected after every optimiser step by
# AdversarialPositionsHook.
#
#   tools/dist_train.sh configs/survey/adpe_mae-plus_vit-t-p4_cifar10_coord.py 1
_base_ = ['./mae-plus_vit-t-p4_cifar10.py']

model = dict(backbone=dict(adversarial_positions=dict(
    mode='coordinates', eps=1.0, norm='linf')))

optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
    'adversarial_positions': dict(lr_mult=-1.0, decay_mult=0.0)}))

# the ascent's bookkeeping; the position map every 1000 iterations
# (<work_dir>/<timestamp>/vis_data/vis_image/adpe_positions_<iter>.png)
custom_hooks = [dict(type='AdversarialPositionsHook'),
                dict(type='PositionMapHook', vis_interval=1000)]
