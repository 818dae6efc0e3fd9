"""Tiny MAE / SimMIM models and valid images for the model tests.

Imported by the tests of this folder (pytest puts it on ``sys.path``).
"""
import copy

import torch

MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]
PREPROCESSOR = dict(type='SelfSupDataPreprocessor', mean=MEAN, std=STD,
                    to_rgb=True)
IMG, PATCH, DIMS = 32, 8, 64

MAE_VIT = dict(
    type='MAEViT',
    arch=dict(embed_dims=DIMS, num_layers=2, num_heads=2,
              feedforward_channels=2 * DIMS),
    img_size=IMG, patch_size=PATCH, mask_ratio=0.75)
TIMM_VIT = dict(
    type='TimmMAEViT',
    arch=dict(embed_dims=DIMS, num_layers=2, num_heads=2,
              feedforward_channels=2 * DIMS),
    img_size=IMG, patch_size=PATCH, mask_ratio=0.75)


def mae_cfg(backbone: dict = MAE_VIT) -> dict:
    """A tiny mmpretrain MAE config (32 px, patch 8, 2+1 layers)."""
    return copy.deepcopy(dict(
        type='MAE',
        backbone=backbone,
        neck=dict(type='MAEPretrainDecoder', num_patches=(IMG // PATCH)**2,
                  patch_size=PATCH, in_chans=3, embed_dim=DIMS,
                  decoder_embed_dim=32, decoder_depth=1,
                  decoder_num_heads=2),
        head=dict(type='MAEPretrainHead', norm_pix=True, patch_size=PATCH,
                  loss=dict(type='PixelReconstructionLoss', criterion='L2')),
        data_preprocessor=PREPROCESSOR))


def simmim_cfg() -> dict:
    """A tiny mmpretrain SimMIM + Swin config (32 px, 2 stages)."""
    return copy.deepcopy(dict(
        type='SimMIM',
        backbone=dict(
            type='SimMIMSwinTransformer',
            arch=dict(embed_dims=32, depths=[2, 2], num_heads=[2, 2]),
            img_size=IMG, out_indices=(1, ),
            stage_cfgs=dict(block_cfgs=dict(window_size=4))),
        neck=dict(type='SimMIMLinearDecoder', in_channels=64,
                  encoder_stride=8),
        head=dict(type='SimMIMHead', patch_size=4,
                  loss=dict(type='PixelReconstructionLoss', criterion='L1',
                            channel=3)),
        data_preprocessor=PREPROCESSOR))


def simmim_samples(batch: int, seed: int = 0):
    """Data samples carrying SimMIM masks (8x8 grid of 4 px patches)."""
    from mmpretrain.structures import DataSample
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(batch):
        sample = DataSample()
        sample.set_mask((torch.rand(8, 8, generator=gen) > 0.4).float())
        samples.append(sample)
    return samples


def valid_images(batch: int, seed: int = 0, size: int = IMG) -> torch.Tensor:
    """Normalised images whose pixels lie in [0, 255], like real data."""
    gen = torch.Generator().manual_seed(seed)
    pixels = torch.rand(batch, 3, size, size, generator=gen) * 255
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (pixels - mean) / std


def build_wrapper(algorithm: dict = None, **kwargs):
    """An initialised AdversarialMIMWrapper around ``algorithm``."""
    from mmpretrain.registry import MODELS
    cfg = dict(type='AdversarialMIMWrapper',
               algorithm=algorithm or mae_cfg(), **kwargs)
    model = MODELS.build(cfg)
    model.init_weights()
    return model
