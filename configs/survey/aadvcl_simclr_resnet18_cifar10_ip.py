# Asym-AdvCL with inferior positives only: the official
# shell/cifar10/advcl-IP-cifar10.sh (d 0.2, adversarial weight 1.2, d
# annealed from epoch 30, no hard negatives, 400 epochs, lr 1.0).
_base_ = ['./aadvcl_simclr_resnet18_cifar10.py']

model = dict(adv_weight=1.2, hard_negatives=None, attack_original=False)
optim_wrapper = dict(optimizer=dict(lr=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01 / 1.0, by_epoch=True, begin=0,
         end=10, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=400, eta_min=1.0 * 0.1**3,
         by_epoch=True, begin=0, end=400, convert_to_iter_based=True)
]
