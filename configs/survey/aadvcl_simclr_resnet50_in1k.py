# Asym-AdvCL (IP + HN, the official IPHN shell's options) on
# advcl_simclr_resnet50_in1k.py (mmpretrain's SimCLR ResNet-50 ImageNet
# recipe). A setting of this package, not of the paper (docs/survey.md).
#
#   tools/dist_train.sh configs/survey/aadvcl_simclr_resnet50_in1k.py 16
_base_ = ['./advcl_simclr_resnet50_in1k.py']

model = dict(
    type='AAdvCL',
    inferior_positive=True,
    stop_grad_degree=0.2,
    adv_weight=0.7,
    # the shell anneals from epoch 30 of 400 (7.5 %): 15 of 200 here
    adaptive=dict(from_epoch=15, d_min=0.4),
    hard_negatives=dict(beta=1.0, tau_plus=0.1),
    attack_original=True)
