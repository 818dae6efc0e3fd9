# mmpretrain 1.2.0's SimCLR ImageNet views (_base_/datasets/
# imagenet_bs32_simclr.py), with HueWrapColorJitter for its ColorJitter:
# mmcv 2.1's hue shift fails under numpy 2 for a negative hue factor
# (aemim_mm/datasets/color_jitter.py). Everything else as upstream.
simclr_view_pipeline = [
    dict(type='RandomResizedCrop', scale=224, backend='pillow'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomApply',
         transforms=[dict(type='HueWrapColorJitter', brightness=0.8,
                          contrast=0.8, saturation=0.8, hue=0.2)],
         prob=0.8),
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True,
         channel_weights=(0.114, 0.587, 0.2989)),
    dict(type='GaussianBlur', magnitude_range=(0.1, 2.0),
         magnitude_std='inf', prob=0.5),
]
simclr_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiView', num_views=2, transforms=[simclr_view_pipeline]),
    dict(type='PackInputs')
]
