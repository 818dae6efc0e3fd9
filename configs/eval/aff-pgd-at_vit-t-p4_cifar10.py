# AFF (adversarial full fine-tuning) with PGD-AT of a ViT-T/4 encoder on
# CIFAR-10: ./aff-trades_vit-t-p4_cifar10.py with the cross-entropy of PGD
# examples (L-inf 8/255, 10 steps of 2/255, random start) as the objective.
_base_ = ['./aff-trades_vit-t-p4_cifar10.py']

model = dict(objective='pgd_at')
