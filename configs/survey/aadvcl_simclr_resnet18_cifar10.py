# Asym-AdvCL (A-InfoNCE; Yu et al., ECCV 2022) with inferior positives AND
# hard negatives, on SimCLR, CIFAR-10, ResNet-18: the official
# shell/cifar10/advcl-IPHN-cifar10.sh (yqy2001/A-InfoNCE):
#
#   AdvCL (advcl_simclr_resnet18_cifar10.py) with the asymmetric InfoNCE:
#   stop-gradient degree d 0.2, adversarial weight 0.7, d annealed towards
#   0.5 from epoch 30 (d_min 0.4), hard negatives beta 1.0, tau+ 0.1 (the
#   shell's default), the attack on AdvCL's own SupCon (--attack_ori),
#   400 epochs, lr 2.0.
#
# The other shells: aadvcl_simclr_resnet18_cifar10_ip.py (IP only),
# ..._hn.py (HN only). Deviations: docs/survey.md (A-InfoNCE).
_base_ = ['./advcl_simclr_resnet18_cifar10.py']

model = dict(
    type='AAdvCL',
    inferior_positive=True,
    stop_grad_degree=0.2,
    adv_weight=0.7,
    adaptive=dict(from_epoch=30, d_min=0.4),
    hard_negatives=dict(beta=1.0, tau_plus=0.1),
    attack_original=True)

optim_wrapper = dict(optimizer=dict(lr=2.0))
max_epochs = 400
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01 / 2.0, by_epoch=True, begin=0,
         end=10, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=2.0 * 0.1**3,
         by_epoch=True, begin=0, end=max_epochs,
         convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs)
