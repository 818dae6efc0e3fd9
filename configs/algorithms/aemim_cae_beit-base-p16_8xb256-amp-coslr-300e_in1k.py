# AEMIM on CAE (DALL-E tokens and a momentum teacher), ViT-B.
#
# mmpretrain's config cae/cae_beit-base-p16_8xb256-amp-coslr-300e_in1k.py,
# unchanged, wrapped with the paper's standard AEMIM settings (eps 2/255,
# T = 2 PGD steps, L2 feature distance, LayerNorm adapters, loss ratio 0.5,
# adversarial ratio 100 %). What the target and the mask are, and which
# checkpoints the algorithm needs: docs/algorithms.md.
_base_ = [
    'mmpretrain::cae/cae_beit-base-p16_8xb256-amp-coslr-300e_in1k.py',
    '../_base_/aemim_ddp.py'
]

custom_imports = dict(imports=['aemim_mm'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='AdversarialMIMWrapper',
    algorithm={{_base_.model}},
    attack=dict(type='FeatureDistancePGD', eps=2, steps=2, distance='l2'),
    adapter='ln',
    loss_ratio=0.5,
    adv_ratio=1.0)

# mmpretrain:: configs put a `_scope_` key into collate_fn; default_collate
# rejects it
train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))

# the upstream config's find_unused_parameters=True (parameters that get no
# gradient: the frozen target generator, unused norms), kept under AEMIM's
# DDP wrapper
model_wrapper_cfg = dict(find_unused_parameters=True)
