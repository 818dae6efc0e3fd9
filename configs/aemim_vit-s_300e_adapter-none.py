# Ablation (paper Table 8(c), adapter): AEMIM ViT-S/16 300e with
# no adapter: clean and adversarial inputs share
# every parameter.
# Everything else as aemim_vit-s_300e.py (the paper's standard settings:
# _base_/aemim.py).
_base_ = ['./aemim_vit-s_300e.py']

model = dict(adapter='none')
