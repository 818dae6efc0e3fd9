# Ablation (paper Table 8(b), attack steps): AEMIM ViT-S/16 300e with
# T = 1 attack step (adversarial ratio stays 100 %).
# Everything else as aemim_vit-s_300e.py (the paper's standard settings:
# _base_/aemim.py).
_base_ = ['./aemim_vit-s_300e.py']

model = dict(attack=dict(steps=1))
