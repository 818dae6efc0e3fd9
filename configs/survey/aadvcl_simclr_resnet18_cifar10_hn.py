# Asym-AdvCL with hard negatives only: the official
# shell/cifar10/advcl-HN-cifar10.sh (beta 1.0, tau+ 0.12, the attack on
# AdvCL's own SupCon, no inferior positives, 400 epochs, lr 1.2).
_base_ = ['./aadvcl_simclr_resnet18_cifar10.py']

model = dict(inferior_positive=False, adaptive=None, adv_weight=1.0,
             hard_negatives=dict(beta=1.0, tau_plus=0.12),
             attack_original=True)
optim_wrapper = dict(optimizer=dict(lr=1.2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01 / 1.2, by_epoch=True, begin=0,
         end=10, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=400, eta_min=1.2 * 0.1**3,
         by_epoch=True, begin=0, end=400, convert_to_iter_based=True)
]
