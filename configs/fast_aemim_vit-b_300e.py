# Fast AEMIM, ViT-B/16, 300 epochs: paper Tables 4, 5 ("Fast AEMIM" rows).
#
# aemim_vit-b_300e.py with the fast attack of Table 1: T = 1 step
# (FGSM with random start) on a random 25 % of each batch (alpha = 25 %).
_base_ = ['./aemim_vit-b_300e.py']

model = dict(attack=dict(steps=1), adv_ratio=0.25)
