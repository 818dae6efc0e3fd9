# Asym-RoCL (A-InfoNCE; Yu et al., ECCV 2022) with inferior positives AND
# hard negatives, on SimCLR, CIFAR-10, ResNet-18: the official
# Asym-RoCL/shell/rocl-IPHN-cifar10.sh (yqy2001/A-InfoNCE):
#
#   RoCL (rocl_simclr_resnet18_cifar10.py: the attack and the regulariser
#   unchanged) with the asymmetric 3-view NT-Xent: stop-gradient degree d
#   0.2, adversarial weight 1, hard negatives beta 1.0, tau+ 0.12; base lr
#   0.3 (x 15 after the warm-up, as RoCL's GradualWarmupScheduler).
#
# The other shells: arocl_simclr_resnet18_cifar10_ip.py (IP only, lr 0.1),
# ..._hn.py (HN only, lr 0.2). Deviations: docs/survey.md (A-InfoNCE).
_base_ = ['./rocl_simclr_resnet18_cifar10.py']

model = dict(
    type='ARoCL',
    inferior_positive=True,
    stop_grad_degree=0.2,
    adv_weight=1.0,
    hard_negatives=dict(beta=1.0, tau_plus=0.12))

optim_wrapper = dict(optimizer=dict(lr=0.3 * 15))
