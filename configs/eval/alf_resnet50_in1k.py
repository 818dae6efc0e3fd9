# ALF (adversarial linear fine-tuning) of a ResNet-50 encoder on ImageNet-1K:
# ./slf_resnet50_in1k.py with the linear head trained on PGD examples
# crafted through encoder and head (cross-entropy, L-inf 4/255, 20 steps of
# 1/255 from a random start: the CIFAR ALF attack at ImageNet's budget).
_base_ = ['./slf_resnet50_in1k.py']

model = dict(
    type='AdversarialImageClassifier',
    objective='pgd_at',
    attack=dict(eps=4, steps=20, step_size=1))
