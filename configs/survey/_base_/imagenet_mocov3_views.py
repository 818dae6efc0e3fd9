# mmpretrain 1.2.0's MoCo v3 ImageNet views (_base_/datasets/
# imagenet_bs512_mocov3.py: asymmetric blur and solarisation), with
# HueWrapColorJitter for its ColorJitter: mmcv 2.1's hue shift fails under
# numpy 2 for a negative hue factor (aemim_mm/datasets/color_jitter.py).
# Everything else as upstream.
mocov3_view_common = [
    dict(type='RandomResizedCrop', scale=224, crop_ratio_range=(0.2, 1.),
         backend='pillow'),
    dict(type='RandomApply',
         transforms=[dict(type='HueWrapColorJitter', brightness=0.4,
                          contrast=0.4, saturation=0.2, hue=0.1)],
         prob=0.8),
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True,
         channel_weights=(0.114, 0.587, 0.2989)),
]
mocov3_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiView', num_views=[1, 1],
         transforms=[
             mocov3_view_common + [
                 dict(type='GaussianBlur', magnitude_range=(0.1, 2.0),
                      magnitude_std='inf', prob=1.),
                 dict(type='Solarize', thr=128, prob=0.),
                 dict(type='RandomFlip', prob=0.5)],
             mocov3_view_common + [
                 dict(type='GaussianBlur', magnitude_range=(0.1, 2.0),
                      magnitude_std='inf', prob=0.1),
                 dict(type='Solarize', thr=128, prob=0.2),
                 dict(type='RandomFlip', prob=0.5)]]),
    dict(type='PackInputs')
]
