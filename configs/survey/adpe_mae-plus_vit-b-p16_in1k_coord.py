# AdPE, adversarial coordinates, on MAE+ ViT-B/16 (ImageNet-1K, the README
# of maple-research-lab/AdPE, "MAE+ APE adversarial coordinate"):
# mae-plus_vit-b-p16_in1k.py with the masked patches' sin-cos coordinates
# shifted by a shared, persistent (d_row, d_col) that climbs the loss inside
# an L-inf ball of 1 patch (argparse default --eps 1; the paper's
# supplementary Table A.2 values are not verified: docs/adpe.md), by the
# network's AdamW in a param group of learning rate -adv_lr (adv_lr = blr =
# 1.5e-4 x 4096 / 256: lr_mult -1), no weight decay, projected after every
# optimiser step by AdversarialPositionsHook.
#
#   tools/dist_train.sh configs/survey/adpe_mae-plus_vit-b-p16_in1k_coord.py 8
_base_ = ['./mae-plus_vit-b-p16_in1k.py']

model = dict(backbone=dict(adversarial_positions=dict(
    mode='coordinates', eps=1.0, norm='linf')))

optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
    'adversarial_positions': dict(lr_mult=-1.0, decay_mult=0.0)}))

# the ascent's bookkeeping; the position map every 1000 iterations
# (<work_dir>/<timestamp>/vis_data/vis_image/adpe_positions_<iter>.png)
custom_hooks = [dict(type='AdversarialPositionsHook'),
                dict(type='PositionMapHook', vis_interval=1000)]
