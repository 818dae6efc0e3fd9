# AEMIM (standard), ViT-B/16, 800 epochs: paper Tables 4, 5, 6, 7 (ViT-B rows).
#
# MAE ViT-B/16 800e recipe (mae_vit-b_800e.py) wrapped by AEMIM with the
# paper's standard (Table 1) settings: _base_/aemim.py.
_base_ = ['./mae_vit-b_800e.py', './_base_/aemim_explicit.py']

# The base config's model (the unchanged mmpretrain algorithm) becomes the
# wrapper's `algorithm`, with the paper's standard settings of
# _base_/aemim_explicit.py (see _base_/aemim.py for how).
model = dict(_base_.pop('aemim_wrapper'), _delete_=True,
             algorithm={{_base_.model}})

# The algorithm carries its own data preprocessor (see the base config); with
# none at the top level, mmengine's Runner passes none to the wrapper, which
# uses the algorithm's.
data_preprocessor = None
