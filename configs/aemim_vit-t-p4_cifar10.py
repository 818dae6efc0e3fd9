# AEMIM (standard) on CIFAR-10: ViT-T/4 at 32 px, 200 epochs, batch 512 on
# ONE GPU. Not a paper setting: the small counterpart of aemim_vit-b_800e.py,
# compared against mae_vit-t-p4_cifar10.py (whose model it wraps, unchanged).
# Attack as the paper's Table 1: eps 2/255, T = 2 steps, L2 feature distance,
# LayerNorm adapters, loss ratio 0.5, adversarial ratio 100 %.
_base_ = ['./mae_vit-t-p4_cifar10.py', './_base_/aemim_ddp.py']

custom_imports = dict(imports=['aemim_mm'], allow_failed_imports=False)

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
        # attack precision: None = fp32, like the training; 'bfloat16'
        # speeds the attack up on a CPU with native bf16 (README,
        # Performance)
        amp_dtype=None),
    adapter='ln',
    adapter_scope=('backbone', 'neck'),
    loss_ratio=0.5,
    adv_ratio=1.0)

# The algorithm carries its own data preprocessor (see the base config); with
# none at the top level, mmengine's Runner passes none to the wrapper, which
# uses the algorithm's.
data_preprocessor = None
