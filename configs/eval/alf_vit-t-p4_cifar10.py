# ALF (adversarial linear fine-tuning) of a ViT-T/4 encoder on CIFAR-10: the
# linear probe of ./slf_vit-t-p4_cifar10.py (frozen encoder, its schedule)
# with the head trained on PGD examples crafted through encoder and head
# (cross-entropy, L-inf 8/255, 20 steps of 2/255, random start: the ALF
# attack of ./alf_resnet18_cifar10.py).
_base_ = ['./slf_vit-t-p4_cifar10.py']

model = dict(
    type='AdversarialImageClassifier',
    objective='pgd_at',
    attack=dict(eps=8, steps=20, step_size=2))
