# AEMIM (standard), ViT-B/16, 800 epochs: paper Tables 4, 5, 6, 7 (ViT-B rows).
#
# MAE ViT-B/16 800e recipe (mae_vit-b_800e.py) wrapped by AEMIM with the
# paper's Table 1 attack settings: eps 2/255, T = 2 steps, L2 feature distance,
# LayerNorm adapters, loss ratio 0.5, adversarial ratio 100 %.
_base_ = ['./mae_vit-b_800e.py', './_base_/aemim_ddp.py']

custom_imports = dict(imports=['aemim_mm'], allow_failed_imports=False)

# The base config's model (the unchanged mmpretrain algorithm) becomes the
# wrapper's `algorithm`; `{{_base_.model}}` is mmengine's reference to a
# variable of the base config.
model = dict(
    _delete_=True,
    type='AdversarialMIMWrapper',
    algorithm={{_base_.model}},
    attack=dict(
        type='FeatureDistancePGD',
        eps=2,  # 0-255 pixel units
        steps=2,
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
