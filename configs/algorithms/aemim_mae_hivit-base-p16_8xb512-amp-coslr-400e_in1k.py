# AEMIM on MAE with a HiViT-B encoder (MAEHiViT).
#
# mmpretrain's config mae/mae_hivit-base-p16_8xb512-amp-coslr-400e_in1k.py,
# unchanged, wrapped with the paper's standard AEMIM settings
# (../_base_/aemim.py). What the target and the mask are, and which
# checkpoints the algorithm needs: docs/algorithms.md.
_base_ = [
    'mmpretrain::mae/mae_hivit-base-p16_8xb512-amp-coslr-400e_in1k.py',
    '../_base_/aemim.py'
]

# the paper's standard AEMIM settings (../_base_/aemim.py) around the
# upstream model
model = dict(_base_.pop('aemim_wrapper'), _delete_=True,
             algorithm={{_base_.model}})

# mmpretrain:: configs put a `_scope_` key into collate_fn; default_collate
# rejects it
train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))

# the upstream config's find_unused_parameters=True (parameters that get no
# gradient: the frozen target generator, unused norms), kept under AEMIM's
# DDP wrapper
model_wrapper_cfg = dict(find_unused_parameters=True)

# Automatic resume, as in the upstream config: a run whose work directory
# holds a checkpoint continues from the latest one, and a finished run trains
# nothing more. Start a new run in a new --work-dir, or pass
# `--cfg-options resume=False`.
resume = True
