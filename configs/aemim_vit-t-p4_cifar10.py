# AEMIM (standard) on CIFAR-10: ViT-T/4 at 32 px, 200 epochs, batch 512 on
# ONE GPU. Not a paper setting: the small counterpart of aemim_vit-b_800e.py,
# compared against mae_vit-t-p4_cifar10.py (whose model it wraps, unchanged).
# Attack as the paper's Table 1 (_base_/aemim.py); it runs in fp32, like the
# training.
_base_ = ['./mae_vit-t-p4_cifar10.py', './_base_/aemim_explicit.py']

# The base config's model (the unchanged mmpretrain algorithm) becomes the
# wrapper's `algorithm`, with the paper's standard settings of
# _base_/aemim_explicit.py (see _base_/aemim.py for how).
model = dict(_base_.pop('aemim_wrapper'), _delete_=True,
             algorithm={{_base_.model}})

# The algorithm carries its own data preprocessor (see the base config); with
# none at the top level, mmengine's Runner passes none to the wrapper, which
# uses the algorithm's.
data_preprocessor = None
