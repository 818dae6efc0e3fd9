# MAE baseline, ViT-B/16, 800 epochs (no adversarial examples).
#
# mmpretrain's own MAE recipe, unchanged, which is also the AEMIM paper's
# pre-training setting (Table 1): mask 0.75, decoder 8 x 512, AdamW
# lr 1.5e-4 x 4096 / 256, wd 0.05, betas (0.9, 0.95), cosine, 40 warm-up
# epochs, batch 4096 (8 GPUs x 512), RandomResizedCrop + flip, 224 px.
_base_ = ['mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-800e_in1k.py']

# Configs read through `mmpretrain::` carry `_scope_` in every typed dict and
# the Runner passes every key of `collate_fn` on to the function
# (`default_collate() got an unexpected keyword '_scope_'`): redefine it.
train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))

# mmengine's Runner gives the top-level `data_preprocessor` to the top-level
# model only. Put it into the MIM model itself, so that it stays with the
# algorithm when an AEMIM config wraps this model.
model = dict(data_preprocessor={{_base_.data_preprocessor}})

# Automatic resume, as in the upstream config: a run whose work directory
# holds a checkpoint continues from the latest one, and a finished run trains
# nothing more. Start a new run in a new --work-dir, or pass
# `--cfg-options resume=False`.
resume = True
