# AEMIM demo: pre-train a small MAE ViT with adversarial examples on the
# photos embedded in scikit-image, on CPU, in a few minutes. Runs offline.
#
#   python tools/demo.py                       # this config, work_dirs/demo
#   python tools/train.py configs/aemim_demo_skimage.py
#
# Not a paper setting: a 64 px ViT (192 dims, 6 layers, 3 heads, patch 8) and
# a 2-layer, 128-dim MAE decoder on 8 photos (random 64 px crops). The AEMIM
# part is the paper's: FeatureDistancePGD, eps 2/255, 2 steps, L2 feature
# distance, LayerNorm adapters, lambda = 0.5, alpha = 100 %; the eps is warmed
# up from 0 by FeatureDistancePGDHook (a demo of the hook's schedule).
# Outputs in the work dir: the checkpoint, the log (rec_clean / rec_adv),
# loss_curves.png/.json (LossCurveHook) and
# <timestamp>/vis_data/vis_image/aemim_grid_<iter>.png (the attack, drawn).
# Self-contained on purpose (no mmpretrain:: base configs), so it is fast;
# its one base piece picks AEMIM's DDP step for multi-process runs.
# `tools/demo.py --iters N` rescales every iteration count below to N.
_base_ = ['./_base_/aemim_ddp.py']

custom_imports = dict(imports=['aemim_mm'], allow_failed_imports=False)
default_scope = 'mmpretrain'

# ------------------------------------------------------------------ sizes
img_size = 64
patch_size = 8
embed_dims = 192
max_iters = 300
warmup_iters = 30          # learning-rate warm-up
eps_warmup_iters = 60      # eps: 0 -> 2 over the first 60 iterations
vis_interval = 100         # image grid every 100 iterations (and at the end)
batch_size = 32

# ------------------------------------------------------------------ model
model = dict(
    type='AdversarialMIMWrapper',
    algorithm=dict(
        type='MAE',
        backbone=dict(
            type='MAEViT',
            arch=dict(
                embed_dims=embed_dims,
                num_layers=6,
                num_heads=3,
                feedforward_channels=embed_dims * 4),
            img_size=img_size,
            patch_size=patch_size,
            mask_ratio=0.75),
        neck=dict(
            type='MAEPretrainDecoder',
            num_patches=(img_size // patch_size)**2,
            patch_size=patch_size,
            in_chans=3,
            embed_dim=embed_dims,
            decoder_embed_dim=128,
            decoder_depth=2,
            decoder_num_heads=4,
            mlp_ratio=4.),
        head=dict(
            type='MAEPretrainHead',
            norm_pix=True,
            patch_size=patch_size,
            loss=dict(type='PixelReconstructionLoss', criterion='L2')),
        data_preprocessor=dict(
            type='SelfSupDataPreprocessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            to_rgb=True),  # SkimagePhotos gives BGR, like LoadImageFromFile
        init_cfg=[
            dict(type='Xavier', layer='Linear', distribution='uniform'),
            dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0)
        ]),
    attack=dict(
        type='FeatureDistancePGD',
        eps=2,
        steps=2,
        step_size=None,
        distance='l2',
        random_start=True,
        # attack precision: None = fp32, like the training; 'bfloat16'
        # speeds the attack up on a CPU with native bf16 (README,
        # Performance)
        amp_dtype=None),
    adapter='ln',
    loss_ratio=0.5,
    adv_ratio=1.0)

# ------------------------------------------------------------------ data
train_pipeline = [
    dict(
        type='RandomResizedCrop',
        scale=img_size,
        crop_ratio_range=(0.2, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs')
]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='SkimagePhotos',
        names=None,          # all 8 natural RGB photos that load offline
        repeat=64,           # 512 samples per epoch
        max_size=256,        # shrink large photos, so crops show objects
        pipeline=train_pipeline))

# ------------------------------------------------------------------ schedule
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1.5e-3, betas=(0.9, 0.95), weight_decay=0.05),
    clip_grad=dict(max_norm=3.0),
    paramwise_cfg=dict(
        custom_keys={
            'ln': dict(decay_mult=0.0),
            'norm': dict(decay_mult=0.0),
            'bias': dict(decay_mult=0.0),
            'pos_embed': dict(decay_mult=0.),
            'mask_token': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.)
        }))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=False,
        begin=0,
        end=warmup_iters),
    dict(
        type='CosineAnnealingLR',
        T_max=max_iters - warmup_iters,
        eta_min=1e-5,
        by_epoch=False,
        begin=warmup_iters,
        end=max_iters)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)

# ------------------------------------------------------------------ hooks
default_hooks = dict(
    runtime_info=dict(type='RuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10),   # progress + ETA
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook',
        interval=max_iters,
        by_epoch=False,
        max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'))
custom_hooks = [
    dict(
        type='FeatureDistancePGDHook',
        eps_schedule=dict(
            type='linear', start=0, end=2, warmup_iters=eps_warmup_iters),
        steps_schedule=None,       # keep the attack's 2 steps
        adv_ratio_schedule=None,   # keep the wrapper's alpha = 1.0
        vis_interval=vis_interval,
        vis_num_samples=4),
    dict(type='LossCurveHook', interval=50, smooth=10),
]
# Log the attack's scheduled values as they are now (mean over 1 iter; the
# 'current' method clashes with by_epoch=False in mmengine 0.10).
log_processor = dict(
    window_size=10,
    by_epoch=False,
    custom_cfg=[
        dict(data_src='eps', method_name='mean', window_size=1),
        dict(data_src='steps', method_name='mean', window_size=1),
        dict(data_src='adv_ratio', method_name='mean', window_size=1),
    ])

# ------------------------------------------------------------------ runtime
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='gloo'))
visualizer = dict(
    type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
