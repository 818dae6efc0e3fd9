# AEMIM + AdPE on MAE+ (CIFAR-10, ViT-T/4): configs/aemim_vit-t-p4_cifar10.py
# (AEMIM's auxiliary task with the standard settings: reconstruct the clean
# image from adversarial pixels) on the encoder of
# adpe_mae-plus_vit-t-p4_cifar10_coord.py, whose masked patches carry
# adversarial coordinates. Two adversaries in one step: the pixel attack is
# crafted per image (PGD on the feature distance, fresh each iteration), the
# coordinate shift is shared and persistent; the clean and the adversarial
# reconstructions both run with the shifted coordinates, and the shift
# climbs their weighted sum lambda * L_c + (1 - lambda) * L_a, the loss the
# network descends. docs/adpe.md.
#
#   tools/dist_train.sh configs/survey/adpe_aemim_mae-plus_vit-t-p4_cifar10.py 1
_base_ = ['../aemim_vit-t-p4_cifar10.py']

model = dict(algorithm=dict(
    backbone=dict(type='MAEPlusViT', adversarial_positions=dict(
        mode='coordinates', eps=1.0, norm='linf')),
    neck=dict(type='MAEPlusPretrainDecoder')))

optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
    'adversarial_positions': dict(lr_mult=-1.0, decay_mult=0.0)}))

# the ascent's bookkeeping; the position map every 1000 iterations
# (<work_dir>/<timestamp>/vis_data/vis_image/adpe_positions_<iter>.png)
custom_hooks = [dict(type='AdversarialPositionsHook'),
                dict(type='PositionMapHook', vis_interval=1000)]
