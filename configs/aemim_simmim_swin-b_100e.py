# AEMIM on SimMIM with Swin-B, 100 epochs: paper Table 9.
#
# SimMIM's own recipe (simmim_swin-b_100e.py = mmpretrain's 100e config:
# 192 px, window 6, mask 0.6 with 32-px mask patches, AdamW
# lr 2e-4 x 2048 / 512, betas (0.9, 0.999), wd 0.05, clip 5.0, 10 warm-up
# epochs, cosine,
# batch 2048 = 8 GPUs x 256), unchanged, wrapped by AEMIM with the paper's
# standard settings (_base_/aemim.py) but T = 1 step for efficiency.
_base_ = ['./simmim_swin-b_100e.py', './_base_/aemim_explicit.py']

# The base config's model (the unchanged mmpretrain algorithm) becomes the
# wrapper's `algorithm`, with the paper's standard settings of
# _base_/aemim_explicit.py (see _base_/aemim.py for how).
model = dict(_base_.pop('aemim_wrapper'), _delete_=True,
             algorithm={{_base_.model}})
# the one change to the standard settings: T = 1 attack step (Sec. 4.7)
model['attack']['steps'] = 1

# The algorithm carries its own data preprocessor (see the base config); with
# none at the top level, mmengine's Runner passes none to the wrapper, which
# uses the algorithm's.
data_preprocessor = None
