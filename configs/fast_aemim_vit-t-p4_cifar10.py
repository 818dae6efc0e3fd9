# Fast AEMIM on CIFAR-10: ViT-T/4 at 32 px, 200 epochs, batch 512 on ONE GPU.
# Not a paper setting: aemim_vit-t-p4_cifar10.py with the fast attack of
# Table 1: T = 1 step (FGSM with random start) on a random 25 % of each batch.
_base_ = ['./aemim_vit-t-p4_cifar10.py']

model = dict(attack=dict(steps=1), adv_ratio=0.25)
