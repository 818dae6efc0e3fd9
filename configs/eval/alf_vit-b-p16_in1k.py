# ALF (adversarial linear fine-tuning) of a ViT-B/16 encoder on ImageNet-1K:
# ./slf_vit-b-p16_in1k.py with the head trained on PGD examples crafted
# through encoder and head (cross-entropy, L-inf 4/255, 20 steps of 1/255,
# random start).
_base_ = ['./slf_vit-b-p16_in1k.py']

model = dict(
    type='AdversarialImageClassifier',
    objective='pgd_at',
    attack=dict(eps=4, steps=20, step_size=1))
