# AdPE, adversarial embedding (a bounded vector added to SimMIM's mask
# token, L2 radius 1), on SimMIM with a ViT-T/4. As
# adpe_simmim_vit-t-p4_cifar10_coord.py otherwise.
#
#   tools/dist_train.sh configs/survey/adpe_simmim_vit-t-p4_cifar10_embed.py 1
_base_ = ['./adpe_simmim_vit-t-p4_cifar10_coord.py']

model = dict(backbone=dict(adversarial_positions=dict(
    mode='embedding', eps=1.0, norm='l2')))
