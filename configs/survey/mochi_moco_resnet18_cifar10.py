# MoCHi (Kalantidis et al., NeurIPS 2020) on MoCo v2, CIFAR-10, ResNet-18:
# the survey's common data set (./_base_/mocov2_cifar10.py, K 4096), with
# the paper's ImageNet MoCHi(1024, 1024, 128). A setting of this package,
# not of the paper (docs/survey.md).
#
#   tools/dist_train.sh configs/survey/mochi_moco_resnet18_cifar10.py 2
_base_ = ['./_base_/mocov2_cifar10.py']

model = dict(
    _delete_=True,
    type='MoCHi',
    algorithm=_base_.model,
    num_hard=1024,
    num_mixed=1024,
    num_query_mixed=128)
