# AdCo (Hu, Wang, Hu, Qi, CVPR 2021) on MoCo v2, CIFAR-10, ResNet-18: the
# survey's common data set (./_base_/mocov2_cifar10.py). AdCo was published
# on ImageNet only; the official README's recipe for its smallest bank
# (8192 negatives: T 0.14, T_m 0.03, memory_lr 3) is taken for CIFAR's
# K = 4096, with momentum 0.9 and weight decay 1e-4 for the bank. A setting
# of this package, not of the paper (docs/survey.md).
#
#   tools/dist_train.sh configs/survey/adco_moco_resnet18_cifar10.py 2
_base_ = ['./_base_/mocov2_cifar10.py']

model = dict(
    _delete_=True,
    type='AdCo',
    algorithm=dict(_base_.model,
                   head=dict(_base_.model.head, temperature=0.14)),
    memory_lr=3.,
    memory_temperature=0.03,
    memory_momentum=0.9,
    memory_weight_decay=1e-4)
