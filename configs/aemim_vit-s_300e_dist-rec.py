# Ablation (paper Table 8(d), adversarial loss): AEMIM ViT-S/16 300e with
# the MIM reconstruction loss as the adversarial loss
# (attacks the pretext task itself, through the decoder).
# Everything else as aemim_vit-s_300e.py (the paper's standard settings:
# _base_/aemim.py).
_base_ = ['./aemim_vit-s_300e.py']

model = dict(attack=dict(distance='rec'))
