# AFF (adversarial full fine-tuning) with PGD-AT of a ResNet-50 encoder on
# ImageNet-1K: ./aff-trades_resnet50_in1k.py with the cross-entropy of PGD
# examples (L-inf 4/255, 10 steps of 1/255, random start) as the objective.
_base_ = ['./aff-trades_resnet50_in1k.py']

model = dict(objective='pgd_at')
