# Plain MoCo v2 on CIFAR-10 with the CIFAR ResNet-18: the baseline of the
# survey's MoCo-based methods (AdCo, IFM, MoCHi), as ./_base_/mocov2_cifar10.py
# gives it (the MoCo authors' CIFAR-10 recipe), without the per-sample seeds
# of the methods' attacks (SampleSeedHook needs a model with an attack).
#
#   tools/dist_train.sh configs/survey/mocov2_resnet18_cifar10.py 2
_base_ = ['./_base_/mocov2_cifar10.py']

custom_hooks = []
