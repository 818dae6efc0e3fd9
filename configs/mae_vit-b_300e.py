# MAE baseline, ViT-B/16, 300 epochs (no adversarial examples).
#
# mmpretrain's 300-epoch MAE recipe with the AEMIM paper's warm-up: the paper
# (Table 1, Sec. 4) uses 15 warm-up epochs for 300-epoch pre-training, while
# mmpretrain's config uses 40.
_base_ = ['mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py']

# lists are replaced, not merged: the whole scheduler is restated
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.0001,
        by_epoch=True,
        begin=0,
        end=15,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=285,
        by_epoch=True,
        begin=15,
        end=300,
        convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=300)

# see mae_vit-b_800e.py: drop the `_scope_` key that `mmpretrain::` adds
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
