# AEMIM on SimMIM with Swin-B, 100 epochs: paper Table 9.
#
# SimMIM's own recipe (simmim_swin-b_100e.py = mmpretrain's 100e config:
# 192 px, window 6, mask 0.6 with 32-px mask patches, AdamW
# lr 2e-4 x 2048 / 512, betas (0.9, 0.999), wd 0.05, clip 5.0, 10 warm-up
# epochs, cosine,
# batch 2048 = 8 GPUs x 256), unchanged, wrapped by AEMIM with the paper's
# attack defaults but T = 1 step for efficiency: eps 2/255, L2 feature
# distance, LayerNorm adapters, loss ratio 0.5, adversarial ratio 100 %.
_base_ = ['./simmim_swin-b_100e.py', './_base_/aemim_ddp.py']

custom_imports = dict(imports=['aemim_mm'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='AdversarialMIMWrapper',
    algorithm={{_base_.model}},
    attack=dict(
        type='FeatureDistancePGD',
        eps=2,  # 0-255 pixel units
        steps=1,
        step_size=None,  # eps / steps (not in the paper)
        distance='l2',
        random_start=True,
        # attack precision: None = the training step's (the AMP
        # autocast of the base config)
        amp_dtype=None),
    adapter='ln',
    adapter_scope=('backbone', 'neck'),
    loss_ratio=0.5,
    adv_ratio=1.0)

# The algorithm carries its own data preprocessor (see the base config); with
# none at the top level, mmengine's Runner passes none to the wrapper, which
# uses the algorithm's.
data_preprocessor = None
