# Ablation (paper Table 8(a), perturbation budget): AEMIM ViT-S/16 300e with
# eps = 1/255.
# Everything else as aemim_vit-s_300e.py (the paper's standard settings:
# _base_/aemim.py).
_base_ = ['./aemim_vit-s_300e.py']

model = dict(attack=dict(eps=1))
