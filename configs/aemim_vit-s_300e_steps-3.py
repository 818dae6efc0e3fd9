# Ablation (paper Table 8(b), attack steps): AEMIM ViT-S/16 300e with
# T = 3 attack steps.
# Everything else as aemim_vit-s_300e.py (eps 2, T = 2, L2, LN adapters,
# loss ratio 0.5, adversarial ratio 100 %).
_base_ = ['./aemim_vit-s_300e.py']

model = dict(attack=dict(steps=3))
