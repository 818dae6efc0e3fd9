# SimCLR with mmpretrain's CIFAR ResNet-18 (3x3 stem, no max pooling; 512
# features) and SyncBN (one set of statistics over every process's batch),
# temperature 0.5 (RoCL's, CLAE's and ACL's). The projector is each
# method's: this piece has RoCL's (512 -> 2048 -> 128, ReLU, no BatchNorm).
model = dict(
    type='SimCLR',
    backbone=dict(type='ResNet_CIFAR', depth=18,
                  norm_cfg=dict(type='SyncBN'), zero_init_residual=False),
    neck=dict(type='MoCoV2Neck', in_channels=512, hid_channels=2048,
              out_channels=128, with_avg_pool=True),
    head=dict(type='ContrastiveHead', loss=dict(type='CrossEntropyLoss'),
              temperature=0.5))
