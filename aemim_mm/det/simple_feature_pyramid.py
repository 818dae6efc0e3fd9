"""ViTDet's simple feature pyramid as an mmdet neck (replaces ``FPN``).

From the single stride-16 map of a plain ViT, :class:`SimpleFeaturePyramid`
builds the stride 4 / 8 / 16 / 32 maps as in ViTDet (Li et al., 2022,
"Exploring Plain Vision Transformer Backbones for Object Detection"):

* ×4: deconv 2×2 / 2 (C → C/2), norm, GELU, deconv 2×2 / 2 (C/2 → C/4);
* ×2: deconv 2×2 / 2 (C → C/2);
* ×1: identity;
* ×½: max-pool 2×2 / 2;

each followed by a 1×1 conv to ``out_channels`` and a 3×3 conv, both with a
norm and no bias. These two convs are ViTDet's version of FPN's lateral and
output convs (ViTDet has no top-down path), so the module takes FPN's place:
its outputs have FPN's interface (``num_outs`` maps of ``out_channels``, extra
levels by a 1×1 max-pool with stride 2, like mmdet's ``FPN`` without extra
convs), and mmdet's RPN and RoI heads work with it unchanged.
"""
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_activation_layer, build_norm_layer
from mmengine.model import BaseModule

from mmdet.registry import MODELS
from . import norm  # noqa: F401  (registers LN2d)

ConfigType = dict
SCALE_FACTORS = (4.0, 2.0, 1.0, 0.5)


def _resolve(cfg: Optional[dict]) -> Optional[dict]:
    """Looks a layer type name up in mmdet's registry (and its parents).

    mmcv's builders search the current default scope's registry; resolving
    the class here makes the neck build the same way with or without an
    mmdet default scope (e.g. in unit tests).
    """
    if cfg is None or not isinstance(cfg.get('type'), str):
        return cfg
    layer = MODELS.get(cfg['type'])
    if layer is None:
        raise KeyError(f'SimpleFeaturePyramid: layer type {cfg["type"]!r} is not '
                       'registered in mmdet\'s MODELS (or its parents)')
    return dict(cfg, type=layer)


@MODELS.register_module()
class SimpleFeaturePyramid(BaseModule):
    """ViTDet's simple feature pyramid; use it in place of ``FPN``.

    Args:
        in_channels (int): Channels of the backbone's map (its embed dims).
        out_channels (int): Channels of every output map. Defaults to 256.
        scale_factors (Sequence[float]): The pyramid's scales relative to the
            input map, a subsequence of ``(4.0, 2.0, 1.0, 0.5)`` in that
            order. Defaults to all four (strides 4, 8, 16, 32 from stride 16).
        num_outs (int): Number of output maps; those past
            ``len(scale_factors)`` are made by a 1×1 max-pool with stride 2 of
            the previous one. Defaults to 5 (mmdet's Mask R-CNN).
        norm_cfg (dict): Norm after each deconv and conv. Defaults to
            ``dict(type='LN2d', eps=1e-6)`` (timm's ``LayerNorm2d``).
        act_cfg (dict): Activation between the two deconvs of the ×4 branch.
            Defaults to ``dict(type='GELU')``.
        init_cfg (dict | list[dict], optional): Defaults to Xavier-uniform
            for the convs, as mmdet's ``FPN``.

    Raises:
        ValueError: Bad ``in_channels``, ``scale_factors`` or ``num_outs``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int = 256,
                 scale_factors: Sequence[float] = SCALE_FACTORS,
                 num_outs: int = 5,
                 norm_cfg: ConfigType = dict(type='LN2d', eps=1e-6),
                 act_cfg: ConfigType = dict(type='GELU'),
                 init_cfg: Optional[Union[dict, list]] = dict(
                     type='Xavier', layer='Conv2d', distribution='uniform')
                 ) -> None:
        super().__init__(init_cfg=init_cfg)
        scale_factors = tuple(float(s) for s in scale_factors)
        order = [SCALE_FACTORS.index(s) for s in scale_factors
                 if s in SCALE_FACTORS]
        if (not scale_factors or len(order) != len(scale_factors)
                or order != sorted(set(order))):
            raise ValueError(
                'SimpleFeaturePyramid: `scale_factors` must be a non-empty '
                f'subsequence of {SCALE_FACTORS}, got {scale_factors}')
        divisor = 4 if 4.0 in scale_factors else 2 if 2.0 in scale_factors else 1
        if in_channels % divisor:
            raise ValueError(
                f'SimpleFeaturePyramid: `in_channels` must be divisible by '
                f'{divisor} for scale factors {scale_factors}, got {in_channels}')
        if num_outs < len(scale_factors):
            raise ValueError(
                f'SimpleFeaturePyramid: `num_outs` ({num_outs}) must be >= '
                f'len(scale_factors) ({len(scale_factors)})')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.scale_factors = scale_factors
        self.num_outs = num_outs
        norm_cfg, act_cfg = _resolve(norm_cfg), _resolve(act_cfg)

        self.stages = nn.ModuleList()
        for scale in scale_factors:
            channels = in_channels
            if scale == 4.0:
                layers = [
                    nn.ConvTranspose2d(channels, channels // 2, 2, stride=2),
                    build_norm_layer(norm_cfg, channels // 2)[1],
                    build_activation_layer(act_cfg),
                    nn.ConvTranspose2d(channels // 2, channels // 4, 2, stride=2)
                ]
                channels //= 4
            elif scale == 2.0:
                layers = [nn.ConvTranspose2d(channels, channels // 2, 2, stride=2)]
                channels //= 2
            elif scale == 1.0:
                layers = []
            else:
                layers = [nn.MaxPool2d(kernel_size=2, stride=2)]
            layers += [
                ConvModule(channels, out_channels, 1, norm_cfg=norm_cfg,
                           act_cfg=None),
                ConvModule(out_channels, out_channels, 3, padding=1,
                           norm_cfg=norm_cfg, act_cfg=None)
            ]
            self.stages.append(nn.Sequential(*layers))

    def forward(self, inputs: Sequence[torch.Tensor]) -> Tuple[torch.Tensor]:
        """Builds the pyramid from the last of the backbone's maps.

        Args:
            inputs (Sequence[Tensor]): Backbone maps; the last, (B, C, H, W)
                with ``C == in_channels``, is used.

        Returns:
            tuple[Tensor]: ``num_outs`` maps, finest first.
        """
        x = inputs[-1]
        if x.shape[1] != self.in_channels:
            raise ValueError(f'SimpleFeaturePyramid: expected {self.in_channels} '
                             f'input channels, got a map of shape {tuple(x.shape)}')
        outs = [stage(x) for stage in self.stages]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return tuple(outs)
