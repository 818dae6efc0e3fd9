# MAE's optimisation recipe for CIFAR-10 pre-training: AdamW, betas
# (0.9, 0.95), wd 0.05, lr = 1.5e-4 x batch / 256 (batch 512 on one GPU),
# 10 linear warm-up epochs, then cosine to 0 at epoch 200.
#
# fp32 `OptimWrapper` (not AMP): the model is small, and the config then also
# runs on a CPU-only machine (mmengine's AmpOptimWrapper requires a device).
# To shorten a run, override `train_cfg.max_epochs` AND the schedulers, e.g.
#   --cfg-options train_cfg.max_epochs=50 param_scheduler.1.T_max=40 \
#                 param_scheduler.1.end=50
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1.5e-4 * 512 / 256, betas=(0.9, 0.95),
        weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'ln': dict(decay_mult=0.0),
            'bias': dict(decay_mult=0.0),
            'pos_embed': dict(decay_mult=0.),
            'mask_token': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.)
        }))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=10,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=190,
        by_epoch=True,
        begin=10,
        end=200,
        convert_to_iter_based=True)
]

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=200)

# `--auto-scale-lr` rescales the lr from this total batch
auto_scale_lr = dict(base_batch_size=512)
