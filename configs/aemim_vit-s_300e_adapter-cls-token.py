# Ablation (paper Table 8(c), adapter): AEMIM ViT-S/16 300e with
# a separate class token as the adversarial adapter
# (LayerNorms shared between clean and adversarial inputs).
# Everything else as aemim_vit-s_300e.py (the paper's standard settings:
# _base_/aemim.py).
_base_ = ['./aemim_vit-s_300e.py']

model = dict(adapter='cls_token')
