# IFM (Robinson et al., NeurIPS 2021) on MoCo v2, CIFAR-10, ResNet-18: the
# survey's common data set (./_base_/mocov2_cifar10.py), with the official
# eps 0.1 and alpha 1.
#
#   tools/dist_train.sh configs/survey/ifm_moco_resnet18_cifar10.py 2
_base_ = ['./_base_/mocov2_cifar10.py']

model = dict(
    _delete_=True,
    type='IFM',
    algorithm=_base_.model,
    eps=0.1,
    alpha=1.)
