"""ADIOS's masking network: a small U-Net and a softmax over N mask slots.

ADIOS (Shi et al., ICML 2022) learns the masks of its occluded views with an
occlusion ("masking") model: a U-Net encodes the augmented view and a 1x1
convolution followed by a softmax over ``N`` channels assigns every pixel
softly to one of ``N`` masks, so the masks of an image sum to one at each
pixel. The U-Net is the official code's (``src/utils/unet.py``, itself from
GENESIS): 3x3 conv-norm-ReLU blocks, nearest-neighbour halving and doubling
of the resolution between them, skip connections, and a three-layer MLP at
the lowest resolution. It is written here with torch and mmcv's
``build_norm_layer``: neither mmseg's ``UNet`` (not installed, and without
the MLP bottleneck) nor the segmentation libraries on PyPI
(segmentation_models_pytorch, MONAI) offer this shape.

Registered in mmpretrain's ``MODELS`` as ``MaskingUNet``; the ADIOS model
builds it from ``mask_net=dict(type='MaskingUNet', ...)``.
"""
import math
from typing import List, Optional

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmpretrain.registry import MODELS
from ...utils.checks import is_int

#: ``norm`` -> mmcv norm config (``None``: convolution with bias, no norm).
#: Group norm has 8 groups, as the official ``ConvGNReLU``.
NORMS = {
    'instance': dict(type='IN', affine=True),
    'group': dict(type='GN', num_groups=8),
    'none': None,
}


def _block(in_channels: int, out_channels: int,
           norm: Optional[dict]) -> nn.Sequential:
    """3x3 convolution (stride 1, padding 1), norm, ReLU."""
    layers: List[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=norm is None)
    ]
    if norm is not None:
        layers.append(build_norm_layer(norm, out_channels)[1])
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


@MODELS.register_module()
class MaskingUNet(BaseModule):
    """U-Net + 1x1 conv + softmax: ``N`` soft masks of an image.

    Channel widths follow the official U-Net for any depth: the encoder
    blocks give ``mask_fbase`` channels but for the last three
    (``2 * mask_fbase``), the decoder's first two give ``2 * mask_fbase``
    and the rest ``mask_fbase`` (4, 5 and 6 blocks are the official
    layouts).

    Args:
        num_masks: ``N``, the mask slots (the softmax's channels). ADIOS sets
            it from its own ``num_masks``.
        img_size: Side of the (square) input; the MLP bottleneck's width
            depends on it.
        mask_fbase: Base width of the U-Net (official ``--mask_fbase``).
        norm: ``'instance'`` (affine), ``'group'`` (8 groups) or ``'none'``
            (official ``--unet_norm in | gn | no``).
        num_blocks: U-Net blocks per side (>= 3); ``None``: the official
            SimCLR / BYOL rule ``int(log2(img_size) - 1)`` (4 at 32 px, 5 at
            96 px). ``img_size`` must be divisible by ``2 ** (num_blocks -
            1)``.
        mlp_channels: Hidden width of the bottleneck MLP (official: 128).
        in_channels: Channels of the input image.
        init_cfg: mmengine initialisation config (``None``: PyTorch's
            default initialisation, as the official code).

    Raises:
        ValueError: For a bad option, naming it.
    """

    def __init__(self,
                 num_masks: int = 4,
                 img_size: int = 32,
                 mask_fbase: int = 32,
                 norm: str = 'instance',
                 num_blocks: Optional[int] = None,
                 mlp_channels: int = 128,
                 in_channels: int = 3,
                 init_cfg: Optional[dict] = None) -> None:
        for name, value, low in (('num_masks', num_masks, 1),
                                 ('img_size', img_size, 1),
                                 ('mask_fbase', mask_fbase, 1),
                                 ('mlp_channels', mlp_channels, 1),
                                 ('in_channels', in_channels, 1)):
            if not is_int(value) or value < low:
                raise ValueError(f'MaskingUNet: {name} must be an int >= '
                                 f'{low}, got {value!r}.')
        if norm not in NORMS:
            raise ValueError(f'MaskingUNet: norm must be one of '
                             f'{tuple(NORMS)}, got {norm!r}.')
        if num_blocks is None:
            num_blocks = int(math.log2(img_size) - 1)
        if not is_int(num_blocks) or num_blocks < 3:
            raise ValueError('MaskingUNet: num_blocks must be an int >= 3 '
                             f'(or None), got {num_blocks!r} (img_size '
                             f'{img_size}).')
        if img_size % 2**(num_blocks - 1):
            raise ValueError(
                f'MaskingUNet: img_size ({img_size}) must be divisible by '
                f'2 ** (num_blocks - 1) = {2**(num_blocks - 1)}: the U-Net '
                'halves the resolution between its blocks.')
        norm_cfg = NORMS[norm]
        if norm == 'group' and mask_fbase % norm_cfg['num_groups']:
            raise ValueError('MaskingUNet: with norm=\'group\' (8 groups), '
                             f'mask_fbase must be a multiple of 8, got '
                             f'{mask_fbase}.')
        super().__init__(init_cfg=init_cfg)
        self.num_masks = num_masks
        self.img_size = img_size
        self.num_blocks = num_blocks
        c = mask_fbase
        enc_out = [c] * (num_blocks - 3) + [2 * c] * 3
        dec_out = [2 * c, 2 * c] + [c] * (num_blocks - 2)
        self.down = nn.ModuleList(
            _block(i, o, norm_cfg)
            for i, o in zip([in_channels] + enc_out[:-1], enc_out))
        # each decoder block takes the upsampled path and a skip connection
        dec_in = [2 * c + enc_out[-1]] + [
            dec_out[i - 1] + enc_out[-1 - i] for i in range(1, num_blocks)
        ]
        self.up = nn.ModuleList(
            _block(i, o, norm_cfg) for i, o in zip(dec_in, dec_out))
        self.feature_size = img_size // 2**(num_blocks - 1)
        flat = 2 * c * self.feature_size**2
        self.mlp = nn.Sequential(
            nn.Flatten(), nn.Linear(flat, mlp_channels), nn.ReLU(inplace=True),
            nn.Linear(mlp_channels, mlp_channels), nn.ReLU(inplace=True),
            nn.Linear(mlp_channels, flat), nn.ReLU(inplace=True))
        #: the mask head: one logit per slot and pixel (softmax in forward)
        self.head = nn.Conv2d(c, num_masks, 1)

    def forward(self, x: Tensor) -> Tensor:
        """The ``N`` soft masks of ``x``.

        Args:
            x: Images (B, C, img_size, img_size), normalised as the views.

        Returns:
            Masks (B, N, H, W), each pixel's N values summing to 1.

        Raises:
            ValueError: For an input of another size.
        """
        if x.dim() != 4 or tuple(x.shape[-2:]) != (self.img_size, ) * 2:
            raise ValueError(
                f'MaskingUNet: expects (B, C, {self.img_size}, '
                f'{self.img_size}) images (img_size), got '
                f'{tuple(x.shape)}; set mask_net.img_size to the views\' '
                'size.')
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            skips.append(x)
            if i < len(self.down) - 1:
                x = F.interpolate(x, scale_factor=0.5, mode='nearest')
        x = self.mlp(x).view(x.shape[0], -1, self.feature_size,
                             self.feature_size)
        for i, block in enumerate(self.up):
            x = block(torch.cat([x, skips[-1 - i]], dim=1))
            if i < len(self.up) - 1:
                x = F.interpolate(x, scale_factor=2.0, mode='nearest')
        return self.head(x).softmax(dim=1)
