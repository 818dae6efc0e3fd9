# Asym-RoCL (IP + HN, the official IPHN shell's options) on
# rocl_simclr_resnet50_in1k.py (mmpretrain's SimCLR ResNet-50 ImageNet
# recipe). A setting of this package, not of the paper (docs/survey.md).
#
#   tools/dist_train.sh configs/survey/arocl_simclr_resnet50_in1k.py 16
_base_ = ['./rocl_simclr_resnet50_in1k.py']

model = dict(
    type='ARoCL',
    inferior_positive=True,
    stop_grad_degree=0.2,
    adv_weight=1.0,
    hard_negatives=dict(beta=1.0, tau_plus=0.12))
