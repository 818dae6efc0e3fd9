# AdPE, adversarial coordinates, on SimMIM with a ViT-T/4
# (simmim_vit-t-p4_cifar10.py, unchanged otherwise): SimMIM's encoder keeps
# the mask tokens, so the masked patches' shifted coordinates act inside it
# as in the original's MAE+. Budget, ascent and projection as
# adpe_mae-plus_vit-t-p4_cifar10_coord.py.
#
#   tools/dist_train.sh configs/survey/adpe_simmim_vit-t-p4_cifar10_coord.py 1
_base_ = ['./simmim_vit-t-p4_cifar10.py']

model = dict(backbone=dict(adversarial_positions=dict(
    mode='coordinates', eps=1.0, norm='linf')))

optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
    'adversarial_positions': dict(lr_mult=-1.0, decay_mult=0.0)}))

# the ascent's bookkeeping; the position map every 1000 iterations
# (<work_dir>/<timestamp>/vis_data/vis_image/adpe_positions_<iter>.png)
custom_hooks = [dict(type='AdversarialPositionsHook'),
                dict(type='PositionMapHook', vis_interval=1000)]
