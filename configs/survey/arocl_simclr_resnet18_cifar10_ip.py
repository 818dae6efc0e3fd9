# Asym-RoCL with inferior positives only: the official
# Asym-RoCL/shell/rocl-IP-cifar10.sh (d 0.2, lr 0.1, no hard negatives).
_base_ = ['./arocl_simclr_resnet18_cifar10.py']

model = dict(hard_negatives=None)
optim_wrapper = dict(optimizer=dict(lr=0.1 * 15))
