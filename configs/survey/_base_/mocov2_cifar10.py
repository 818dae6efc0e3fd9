# MoCo v2 on CIFAR-10 with mmpretrain's CIFAR ResNet-18 (3x3 stem, no max
# pooling; 512 features): the base of the survey's memory-based and
# feature-level methods on MoCo (AdCo, IFM, MoCHi, HCL), so that they compare
# with the instance-wise ones on one data set.
#
# The MoCo authors' CIFAR-10 recipe (facebookresearch/moco, the CIFAR-10
# demo notebook): K = 4096 negatives, m = 0.99, T = 0.1, SGD lr 0.06 for a
# batch of 512, weight decay 5e-4, 200 epochs, cosine; with MoCo v2's MLP
# projector (512 -> 512 -> 128) and the views of ./cifar10_two_views.py.
# Shuffled BatchNorm as MoCo's (BN, not SyncBN: the key encoder's batch is
# shuffled across processes instead).
_base_ = ['./cifar10_two_views.py', './runtime.py']

model = dict(
    type='MoCo',
    queue_len=4096,
    feat_dim=128,
    # mmengine's EMA momentum is MoCo's 1 - m: m = 0.99
    momentum=0.01,
    backbone=dict(type='ResNet_CIFAR', depth=18, norm_cfg=dict(type='BN'),
                  zero_init_residual=False),
    neck=dict(type='MoCoV2Neck', in_channels=512, hid_channels=512,
              out_channels=128, with_avg_pool=True),
    head=dict(type='ContrastiveHead', loss=dict(type='CrossEntropyLoss'),
              temperature=0.1))

num_gpus = 2
train_dataloader = dict(batch_size=256)     # per GPU: 2 x 256 = 512

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.06, momentum=0.9, weight_decay=5e-4))
max_epochs = 200
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=max_epochs, by_epoch=True,
         begin=0, end=max_epochs, convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=512)
