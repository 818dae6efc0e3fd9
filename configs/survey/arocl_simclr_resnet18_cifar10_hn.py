# Asym-RoCL with hard negatives only: the official
# Asym-RoCL/shell/rocl-HN-cifar10.sh (beta 1.0, tau+ 0.12, lr 0.2, no
# inferior positives).
_base_ = ['./arocl_simclr_resnet18_cifar10.py']

model = dict(inferior_positive=False)
optim_wrapper = dict(optimizer=dict(lr=0.2 * 15))
