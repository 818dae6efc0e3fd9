# AdPE, adversarial embedding (the original's --adv_type 1), on MAE+: a
# vector added to the mask token of the masked patches, shared by every
# image and kept across iterations, climbs the MAE loss inside an L2 ball of
# radius 1 (the original's argparse default --eps 1; the original replaces
# the mask token by the vector instead of adding it: docs/adpe.md). Ascent
# and projection as adpe_mae-plus_vit-t-p4_cifar10_coord.py.
#
#   tools/dist_train.sh configs/survey/adpe_mae-plus_vit-t-p4_cifar10_embed.py 1
_base_ = ['./adpe_mae-plus_vit-t-p4_cifar10_coord.py']

model = dict(backbone=dict(adversarial_positions=dict(
    mode='embedding', eps=1.0, norm='l2')))
