# RUSH (Pang, Liu, Zhou, 2022), step 2 of 3: the pre-trained encoder
# fine-tuned with Gaussian noise (randomized smoothing's base classifier,
# Cohen et al., 2019), sigma 0.25 in [0, 1] pixel units.
#
# Step 1 is any contrastive pre-training of a CIFAR ResNet-18 in this package
# (./rush_simclr_resnet18_cifar10.py is RUSH's plain one; a survey method's
# or AEMIM's encoder works alike), exported with tools/export_encoder.py.
# Step 3 certifies the smoothed classifier:
#
#   python tools/train.py configs/survey/rush_resnet18_cifar10_noise0.25_ft.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=ENCODER_mmpretrain.pth
#   python tools/certify.py configs/survey/rush_resnet18_cifar10_noise0.25_ft.py \
#       work_dirs/rush_resnet18_cifar10_noise0.25_ft/epoch_90.pth \
#       --sigma 0.25 --out-dir work_dirs/rush_certify
#
# RUSH's fine-tuning recipe is not published (abstract only); this is Cohen
# et al.'s CIFAR-10 training of the base classifier: the whole network, SGD
# lr 0.1, momentum 0.9, weight decay 1e-4, batch 256, 90 epochs with the lr
# divided by 10 every 30, crop + flip, every training image with fresh
# N(0, sigma^2) pixel noise (GaussianNoiseClsDataPreprocessor; evaluation
# images stay clean, the smoothed classifier adds its own noise). Other
# sigmas: --cfg-options data_preprocessor.sigma=0.5 (and the same --sigma for
# tools/certify.py).
_base_ = ['../eval/_base_/resnet18_cifar10_protocol.py']

pretrained = ('work_dirs/rush_simclr_resnet18_cifar10/export/'
              'epoch_500_mmpretrain.pth')
sigma = 0.25

data_preprocessor = dict(type='GaussianNoiseClsDataPreprocessor', sigma=sigma)

# the whole network (the protocol base's ResNet_CIFAR-18, global pooling,
# linear head), initialised from the export
model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))

train_dataloader = dict(batch_size=256)
optim_wrapper = dict(optimizer=dict(weight_decay=1e-4))
max_epochs = 90
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, milestones=[30, 60], gamma=0.1)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=10)
auto_scale_lr = dict(base_batch_size=256)
default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=3))
