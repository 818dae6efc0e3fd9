# CaCo (Wang, Huang, Zeng, Qi; TPAMI, "AdCo-v2") on mmpretrain's MoCo v3
# ResNet-50, ImageNet: the official README's single-machine command
# (maple-research-lab/CaCo; ImageNet linear top-1 71.3 at batch 1024, 200
# epochs).
#
#   One bank of K = 65536 learnable entries: each query's positive is the
#   entry nearest the other view's momentum key, moved cooperatively; the
#   others adversarially. Network: T 0.08, no predictor, 3-layer projector
#   2048 -> 2048 -> 2048 -> 256 (BatchNorm between, none last, no bias),
#   momentum m 0.99 annealed to 1 (mmengine's CosineEMA 0.01), LARS lr 0.3
#   x batch / 256, wd 1.5e-6, batch 1024, 200 epochs (10 warm-up), cosine
#   to 0.003 x batch / 256. Bank: memory_lr 3 (warmed up over the same 10
#   epochs, then constant), T_m 0.08, momentum 0.9, no weight decay; filled
#   with keys first (ad_init). The views are MoCo v3's (BYOL's).
#
#   tools/dist_train.sh configs/survey/caco_mocov3_resnet50_in1k.py 8
#
# Deviations from the official code and why: docs/survey.md (CaCo).
_base_ = [
    'mmpretrain::mocov3/mocov3_resnet50_8xb512-amp-coslr-100e_in1k.py',
    './_base_/imagenet_mocov3_views.py',
    './_base_/survey.py',
]

model = dict(
    _delete_=True,
    type='CaCo',
    algorithm=dict(
        _base_.model,
        base_momentum=0.01,
        neck=dict(type='NonLinearNeck', in_channels=2048, hid_channels=2048,
                  out_channels=256, num_layers=3, with_bias=False,
                  with_last_bn=False, with_last_bias=False,
                  with_avg_pool=True),
        # (the predictor is replaced by an identity: predictor=False)
        head=dict(_base_.model.head,
                  loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
                  temperature=0.08)),
    bank_size=65536,
    memory_lr=3.,
    memory_lr_final=3.,
    memory_warmup_epochs=10,
    memory_temperature=0.08,
    memory_momentum=0.9,
    memory_weight_decay=0.)

train_dataloader = dict(
    batch_size=128,                 # 8 GPUs x 128 = 1024
    collate_fn=dict(_delete_=True, type='default_collate'),
    dataset=dict(pipeline={{_base_.mocov3_train_pipeline}}))

optim_wrapper = dict(optimizer=dict(lr=0.3 * 1024 / 256,
                                    weight_decay=1.5e-6))
max_epochs = 200
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0,
         end=10, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 10, by_epoch=True,
         begin=10, end=max_epochs, eta_min=0.003 * 1024 / 256,
         convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=1024)
