# AdPE, adversarial embedding, on MAE+ ViT-B/16 (ImageNet-1K, "MAE+ APE
# adversarial embedding"): a vector added to the mask token of the masked
# patches (the original replaces the token: docs/adpe.md), shared and
# persistent, climbing the loss inside an L2 ball of radius 1 (argparse
# default --eps 1). As adpe_mae-plus_vit-b-p16_in1k_coord.py otherwise.
#
#   tools/dist_train.sh configs/survey/adpe_mae-plus_vit-b-p16_in1k_embed.py 8
_base_ = ['./adpe_mae-plus_vit-b-p16_in1k_coord.py']

model = dict(backbone=dict(adversarial_positions=dict(
    mode='embedding', eps=1.0, norm='l2')))
