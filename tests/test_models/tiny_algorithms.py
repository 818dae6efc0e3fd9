"""Tiny configs of every algorithm AdversarialMIMWrapper supports, for CPU
tests (seconds each).

Target generators keep their real loading code: ``CLIPGenerator`` reads a
checkpoint from ``tokenizer_path`` (here a randomly initialised tiny CLIP
written by :func:`tiny_clip_checkpoint`).
"""
import copy
import os
from typing import Callable, Dict, List, Optional

import torch

from tiny_models import (IMG, MAE_VIT, PATCH, PREPROCESSOR, TIMM_VIT,
                         mae_cfg, simmim_cfg, simmim_samples, valid_images)

HIVIT_IMG = 64          # HiViT: patch 16 (4x4 inner patches) -> 4x4 tokens
CLIP_DIMS = 32          # CLIP output dims (the feature target's channels)
DIMS = 64


def tiny_clip_checkpoint(path: str, img: int = IMG, patch: int = PATCH,
                         embed_dim: int = CLIP_DIMS) -> str:
    """Write a randomly initialised tiny CLIP state dict to ``path`` (once):
    ``img`` px, ``patch`` px patches, ``embed_dim`` output features."""
    from mmpretrain.models.utils.clip_generator_helper import CLIP
    if not os.path.exists(path):
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(0)
        clip = CLIP(embed_dim=embed_dim, image_resolution=img,
                    vision_layers=1, vision_width=64,
                    vision_patch_size=patch, context_length=4, vocab_size=8,
                    transformer_width=64, transformer_heads=1,
                    transformer_layers=1)
        torch.random.set_rng_state(gen_state)
        torch.save(clip.state_dict(), path)
    return path


def _hivit(kind: str, **kwargs) -> dict:
    return dict(type=kind, arch=dict(embed_dims=DIMS, depths=[1, 1, 2],
                                     num_heads=2),
                img_size=HIVIT_IMG, patch_size=16, mask_ratio=0.75,
                **kwargs)


def mae_hivit_cfg() -> dict:
    return dict(
        type='MAE', backbone=_hivit('MAEHiViT'),
        neck=dict(type='MAEPretrainDecoder', num_patches=16, patch_size=16,
                  in_chans=3, embed_dim=DIMS, decoder_embed_dim=32,
                  decoder_depth=1, decoder_num_heads=2),
        head=dict(type='MAEPretrainHead', norm_pix=True, patch_size=16,
                  loss=dict(type='PixelReconstructionLoss', criterion='L2')),
        data_preprocessor=PREPROCESSOR)


def mff_cfg() -> dict:
    cfg = mae_cfg(dict(MAE_VIT, type='MFFViT', out_indices=[0, 1]))
    cfg['type'] = 'MFF'
    return cfg


def _clip(clip_dir: str, img: int = IMG, patch: int = PATCH) -> str:
    return tiny_clip_checkpoint(
        os.path.join(clip_dir, f'clip_{img}px_p{patch}.pth'), img, patch)


def eva_cfg(clip_dir: str) -> dict:
    clip_path = _clip(clip_dir)
    cfg = mae_cfg()
    cfg.update(
        type='EVA',
        head=dict(type='MIMHead', loss=dict(type='CosineSimilarityLoss',
                                            shift_factor=2.0,
                                            scale_factor=2.0)),
        target_generator=dict(type='CLIPGenerator', tokenizer_path=clip_path))
    cfg['neck']['predict_feature_dim'] = CLIP_DIMS
    return cfg


def milan_cfg(clip_dir: str) -> dict:
    clip_path = _clip(clip_dir)
    return dict(
        type='MILAN', backbone=dict(MAE_VIT, type='MILANViT'),
        neck=dict(type='MILANPretrainDecoder', num_patches=(IMG // PATCH)**2,
                  patch_size=PATCH, in_chans=3, embed_dim=DIMS,
                  decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2,
                  predict_feature_dim=CLIP_DIMS),
        head=dict(type='MIMHead', loss=dict(type='CosineSimilarityLoss',
                                            shift_factor=2.0,
                                            scale_factor=2.0)),
        target_generator=dict(type='CLIPGenerator', tokenizer_path=clip_path),
        data_preprocessor=PREPROCESSOR)


def itpn_cfg() -> dict:
    return dict(
        type='iTPN', backbone=_hivit('iTPNHiViT', reconstruction_type='pixel'),
        neck=dict(type='iTPNPretrainDecoder', num_patches=16, patch_size=16,
                  in_chans=3, embed_dim=DIMS, decoder_embed_dim=32,
                  decoder_depth=1, decoder_num_heads=2, mlp_ratio=2.,
                  reconstruction_type='pixel', fpn_dim=16, fpn_depth=1,
                  num_outs=3),
        head=dict(type='MAEPretrainHead', norm_pix=True, patch_size=16,
                  loss=dict(type='PixelReconstructionLoss', criterion='L2')),
        data_preprocessor=PREPROCESSOR)


def simmim_cfg_deterministic() -> dict:
    """The tiny SimMIM without stochastic depth (Swin's default is 0.1), so
    that two passes with one mask give the same tokens."""
    cfg = simmim_cfg()
    cfg['backbone']['drop_path_rate'] = 0.0
    return cfg


TWO_NORM = dict(type='TwoNormDataPreprocessor', mean=PREPROCESSOR['mean'],
                std=PREPROCESSOR['std'], second_mean=[-31.875] * 3,
                second_std=[318.75] * 3, to_rgb=True)
VIT_ARCH = dict(embed_dims=DIMS, num_layers=2, num_heads=2,
                feedforward_channels=2 * DIMS)
MASKED = 6              # masked patches of 16 (CAE needs a fixed count)
MASKFEAT_IMG = 112      # HOGGenerator cuts its map into 14 x 14 patches


def fixed_count_samples(batch: int, seed: int = 0, grid: int = 4,
                        masked: int = MASKED):
    """Data samples carrying (grid, grid) masks with ``masked`` patches
    each (as ``BEiTMaskGenerator`` puts into the data)."""
    from mmpretrain.structures import DataSample
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(batch):
        mask = torch.zeros(grid * grid)
        mask[torch.randperm(grid * grid, generator=gen)[:masked]] = 1
        sample = DataSample()
        sample.set_mask(mask.reshape(grid, grid))
        samples.append(sample)
    return samples


def dalle_cfg() -> dict:
    """A tiny DALL-E encoder (8x down-sampling, 16 codes)."""
    return dict(type='DALL-E', n_hid=8, n_blk_per_group=1, vocab_size=16)


def maskfeat_cfg() -> dict:
    return dict(
        type='MaskFeat',
        backbone=dict(type='MaskFeatViT', arch=VIT_ARCH,
                      img_size=MASKFEAT_IMG, patch_size=PATCH),
        # HOG of 8-px cells: 9 bins x 3 channels per 8-px patch
        neck=dict(type='LinearNeck', in_channels=DIMS, out_channels=27,
                  norm_cfg=None),
        head=dict(type='MIMHead', loss=dict(type='PixelReconstructionLoss',
                                            criterion='L2')),
        target_generator=dict(type='HOGGenerator', nbins=9, pool=8,
                              gaussian_window=16),
        data_preprocessor=PREPROCESSOR)


def beit_v1_cfg() -> dict:
    return dict(
        type='BEiT',
        backbone=dict(type='BEiTPretrainViT', arch=VIT_ARCH, img_size=IMG,
                      patch_size=PATCH, drop_path_rate=0.0, final_norm=True,
                      out_type='raw', layer_scale_init_value=0.1),
        neck=None,
        head=dict(type='BEiTV1Head', embed_dims=DIMS, num_embed=16,
                  loss=dict(type='CrossEntropyLoss')),
        target_generator=dalle_cfg(),
        data_preprocessor=TWO_NORM)


def beit_v2_cfg() -> dict:
    vqkd_encoder = dict(arch=VIT_ARCH, img_size=IMG, patch_size=PATCH,
                        out_type='featmap', with_cls_token=True,
                        final_norm=True)
    return dict(
        type='BEiT',
        backbone=dict(type='BEiTPretrainViT', arch=VIT_ARCH, img_size=IMG,
                      patch_size=PATCH, out_indices=[-2, -1],
                      drop_path_rate=0.0, final_norm=False, out_type='raw',
                      layer_scale_init_value=0.1),
        neck=dict(type='BEiTV2Neck', num_layers=1, early_layers=1,
                  backbone_arch=dict(VIT_ARCH, depth=2),
                  layer_scale_init_value=0.1),
        head=dict(type='BEiTV2Head', embed_dims=DIMS, num_embed=16,
                  loss=dict(type='CrossEntropyLoss')),
        target_generator=dict(type='VQKD', encoder_config=vqkd_encoder,
                              num_embed=16, embed_dims=8,
                              quantize_kmeans_init=False),
        data_preprocessor=TWO_NORM)


def cae_cfg(base_momentum: float = 0.0) -> dict:
    return dict(
        type='CAE',
        backbone=dict(type='CAEPretrainViT', arch=VIT_ARCH, img_size=IMG,
                      patch_size=PATCH, layer_scale_init_value=0.1,
                      bias='qv_bias'),
        neck=dict(type='CAENeck', num_classes=16, embed_dims=DIMS,
                  num_heads=2, regressor_depth=1, decoder_depth=1,
                  mlp_ratio=2, layer_scale_init_value=0.1,
                  mask_tokens_num=MASKED),
        head=dict(type='CAEHead', loss=dict(type='CAELoss', lambd=2)),
        target_generator=dalle_cfg(),
        base_momentum=base_momentum,
        data_preprocessor=TWO_NORM)


def itpn_clip_cfg(clip_dir: str) -> dict:
    clip_path = _clip(clip_dir, HIVIT_IMG, 16)
    return dict(
        type='iTPN',
        backbone=_hivit('iTPNHiViT', reconstruction_type='clip', rpe=True,
                        layer_scale_init_value=0.1),
        neck=dict(type='iTPNPretrainDecoder', num_patches=16, patch_size=16,
                  in_chans=3, embed_dim=DIMS, decoder_embed_dim=DIMS,
                  mlp_ratio=2., reconstruction_type='clip', fpn_dim=16,
                  fpn_depth=1, num_outs=3),
        head=dict(type='iTPNClipHead', embed_dims=DIMS, num_embed=CLIP_DIMS,
                  loss=dict(type='CosineSimilarityLoss')),
        target_generator=dict(type='CLIPGenerator', tokenizer_path=clip_path),
        data_preprocessor=TWO_NORM)


def mixmim_cfg() -> dict:
    """A tiny MixMIM (64 px, 4 stages, 2 x 2 output tokens)."""
    return dict(
        type='MixMIM',
        backbone=dict(type='MixMIMPretrainTransformer',
                      arch=dict(embed_dims=16, depths=[1, 1, 1, 1],
                                num_heads=[1, 2, 2, 4]),
                      img_size=HIVIT_IMG, window_size=[4, 4, 4, 2],
                      mask_ratio=0.5),
        neck=dict(type='MixMIMPretrainDecoder', num_patches=4,
                  encoder_stride=32, embed_dim=128, decoder_embed_dim=32,
                  decoder_depth=1, decoder_num_heads=2),
        head=dict(type='MixMIMPretrainHead', norm_pix=True,
                  loss=dict(type='PixelReconstructionLoss', criterion='L2')),
        data_preprocessor=PREPROCESSOR)


class Case:
    """One supported algorithm in the parametrised tests.

    Args:
        name: Test id.
        cfg: ``cfg(clip_dir) -> algorithm config`` (tiny CLIP checkpoints
            are written to ``clip_dir``).
        img: Image size.
        samples: ``samples(batch) -> data samples`` (pipeline masks).
        two_views: Whether inputs are [model view, tokenizer view].
        float64: Whether the upstream algorithm runs in float64.
        mask_per_sample: False where one mask serves the batch (MixMIM).
    """

    def __init__(self, name: str, cfg: Callable[[str], dict], img: int = IMG,
                 samples: Optional[Callable[[int], List]] = None,
                 two_views: bool = False, float64: bool = True,
                 mask_per_sample: bool = True) -> None:
        self.name = name
        self.mask_per_sample = mask_per_sample
        self.float64 = float64
        self.cfg = cfg
        self.img = img
        self.samples = samples or (lambda batch: None)
        self.two_views = two_views

    def inputs(self, batch: int, seed: int = 0):
        """Normalised inputs: images, or [model view, tokenizer view]."""
        images = valid_images(batch, seed, self.img)
        if not self.two_views:
            return images
        return [images, valid_images(batch, seed + 100, self.img)]

    def view(self, inputs):
        """The view the model masks and the attack perturbs."""
        return inputs[0] if self.two_views else inputs

    def raw_inputs(self, seed: int):
        """One sample's uint8 image(s), as a data pipeline gives them."""
        gen = torch.Generator().manual_seed(seed)
        views = [torch.randint(0, 256, (3, self.img, self.img),
                               generator=gen, dtype=torch.uint8)
                 for _ in range(2 if self.two_views else 1)]
        return views if self.two_views else views[0]

    def __repr__(self) -> str:
        return self.name


#: Every supported algorithm (and backbone), once.
CASES: List[Case] = [
    Case('MAE-MAEViT', lambda clip: mae_cfg(MAE_VIT)),
    Case('MAE-TimmMAEViT', lambda clip: mae_cfg(TIMM_VIT)),
    Case('MAE-MAEHiViT', lambda clip: mae_hivit_cfg(), img=HIVIT_IMG),
    Case('MFF', lambda clip: mff_cfg()),
    Case('EVA', eva_cfg),
    Case('MILAN', milan_cfg),
    Case('iTPN-pixel', lambda clip: itpn_cfg(), img=HIVIT_IMG),
    Case('iTPN-CLIP', itpn_clip_cfg, img=HIVIT_IMG,
         samples=fixed_count_samples, two_views=True),
    Case('MixMIM', lambda clip: mixmim_cfg(), img=HIVIT_IMG,
         mask_per_sample=False),
    Case('SimMIM', lambda clip: simmim_cfg_deterministic(),
         samples=simmim_samples),
    Case('MaskFeat', lambda clip: maskfeat_cfg(), img=MASKFEAT_IMG,
         samples=lambda batch: fixed_count_samples(batch, grid=14,
                                                   masked=60),
         float64=False),
    Case('BEiT-v1', lambda clip: beit_v1_cfg(), samples=fixed_count_samples,
         two_views=True),
    Case('BEiT-v2', lambda clip: beit_v2_cfg(), samples=fixed_count_samples,
         two_views=True),
    Case('CAE', lambda clip: cae_cfg(), samples=fixed_count_samples,
         two_views=True),
]
CASE_IDS: Dict[str, Case] = {case.name: case for case in CASES}


def case_cfg(case: Case, clip_dir: str) -> dict:
    """The algorithm config of ``case`` (a tiny CLIP written if needed)."""
    return copy.deepcopy(case.cfg(clip_dir))
