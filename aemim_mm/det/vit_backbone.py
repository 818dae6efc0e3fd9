"""A plain ViT backbone for mmdet (ViTDet-style) that loads MAE / AEMIM encoders.

:class:`ViTDetBackbone` is mmpretrain's :class:`VisionTransformer` with three
changes for detection, and none to the parameters: its state-dict keys are
those of mmpretrain's ``VisionTransformer`` / ``MAEViT`` (``patch_embed.…``,
``pos_embed``, ``layers.N.…``, ``ln1.…``), so an encoder exported as
``{'state_dict': {'backbone.<key>': tensor}}`` (``tools/export_encoder.py``)
loads with ``init_cfg=dict(type='Pretrained', checkpoint=PATH,
prefix='backbone.')``.

* No class token: the output is the patch-token map ``(B, C, H/p, W/p)``. A
  checkpoint's ``cls_token`` is dropped on load, and so is the class-token
  entry of its ``pos_embed``.
* Any input size: the position embedding is kept at the pre-training grid
  (``img_size``) and interpolated to each input's token grid in the forward
  pass (mmpretrain's ``resize_pos_embed``). A checkpoint made at another size
  is resized on load by mmpretrain's load-state-dict pre-hook.
* Windowed attention as in ViTDet (Li et al., 2022): every block not listed in
  ``global_attn_indexes`` attends within non-overlapping ``window_size`` ×
  ``window_size`` windows of the token grid. The grid is zero-padded on the
  bottom / right to a multiple of the window size after the block's first
  norm, as in ViTDet, and the padding is removed after the attention. This is
  done with forward hooks on the blocks' unchanged attention modules, so no
  key changes. The attention branch's drop path is applied after the windows
  are merged back, per image, as in ViTDet (not per window).

ViTDet's relative position biases are not used: MAE / AEMIM encoders do not
have them.
"""
import math
import os.path as osp
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import MMLogger
from mmpretrain.models.backbones import VisionTransformer
from timm.models.vision_transformer_sam import (window_partition,
                                                window_unpartition)

from mmdet.registry import MODELS

from ..utils.checks import is_int


def _is_square(n: int) -> bool:
    return n > 0 and math.isqrt(n)**2 == n


@MODELS.register_module()
class ViTDetBackbone(VisionTransformer):
    """Plain ViT for detection: patch-token map out, windowed attention.

    Args:
        arch (str | dict): mmpretrain ``VisionTransformer`` arch: a name
            (``'deit-small'`` is ViT-S/16's 384-dim shape, ``'base'``
            ViT-B/16's) or a dict with ``embed_dims``, ``num_layers``,
            ``num_heads`` and ``feedforward_channels``.
        img_size (int | tuple): The pre-training image size: the grid the
            ``pos_embed`` parameter is kept at. Inputs may have any size.
            Defaults to 224.
        patch_size (int): Patch size. Defaults to 16.
        window_size (int): Side of the attention windows, in tokens. 0 makes
            every block global. Defaults to 0.
        global_attn_indexes (Sequence[int]): The blocks with global attention
            when ``window_size > 0`` (ViTDet ViT-B: ``(2, 5, 8, 11)``).
            Negative indexes count from the end. Defaults to ``()``.
        out_indices (int | Sequence[int]): Blocks whose outputs are returned
            as feature maps. Defaults to -1 (the last).
        drop_path_rate (float): Stochastic depth rate, increasing linearly
            over the blocks. Defaults to 0.
        final_norm (bool): Whether the last block's output goes through the
            encoder's final norm ``ln1`` (which MAE encoders have and export).
            Defaults to True.
        **kwargs: Other arguments of mmpretrain's ``VisionTransformer``
            (``qkv_bias``, ``norm_cfg``, ``interpolate_mode``,
            ``frozen_stages``, ``layer_scale_init_value``, ``init_cfg``, ...).
            ``with_cls_token`` and ``out_type`` are fixed (False,
            ``'featmap'``).

    Raises:
        ValueError: A bad ``window_size``, ``global_attn_indexes`` or a fixed
            argument set to another value.
    """

    def __init__(self,
                 arch: Union[str, Dict[str, int]] = 'base',
                 img_size: Union[int, Tuple[int, int]] = 224,
                 patch_size: int = 16,
                 window_size: int = 0,
                 global_attn_indexes: Sequence[int] = (),
                 out_indices: Union[int, Sequence[int]] = -1,
                 drop_path_rate: float = 0.,
                 final_norm: bool = True,
                 **kwargs: Any) -> None:
        for key, fixed in (('with_cls_token', False), ('out_type', 'featmap')):
            if kwargs.pop(key, fixed) != fixed:
                raise ValueError(f'ViTDetBackbone: `{key}` is fixed to '
                                 f'{fixed!r} (detection uses the patch-token map)')
        if not is_int(window_size) or window_size < 0:
            raise ValueError('ViTDetBackbone: `window_size` must be an int >= 0 '
                             f'(0: all blocks global), got {window_size!r}')
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        super().__init__(
            arch=arch,
            img_size=img_size,
            patch_size=patch_size,
            out_indices=list(out_indices),
            drop_path_rate=drop_path_rate,
            final_norm=final_norm,
            with_cls_token=False,
            out_type='featmap',
            **kwargs)

        global_ids = set()
        for index in global_attn_indexes:
            if not (is_int(index)
                    and -self.num_layers <= index < self.num_layers):
                raise ValueError(
                    'ViTDetBackbone: `global_attn_indexes` must hold block '
                    f'indexes in [-{self.num_layers}, {self.num_layers - 1}], '
                    f'got {list(global_attn_indexes)}')
            global_ids.add(index % self.num_layers)
        self.window_size = window_size
        self.window_block_indexes = tuple(
            i for i in range(self.num_layers)
            if window_size > 0 and i not in global_ids)

        # The token grid of the current input and its padded size, for the
        # window hooks (bound methods, so that deepcopy gives a working copy).
        self._grid_hw: Optional[Tuple[int, int]] = None
        self._window_pad_hw: Optional[Tuple[int, int]] = None
        self.patch_embed.register_forward_hook(self._record_grid)
        for i in self.window_block_indexes:
            attn = self.layers[i].attn
            # The attention's drop path moves behind the window merge. DropPath
            # has no parameters: the state dict does not change.
            attn.window_drop_path = attn.out_drop
            attn.out_drop = nn.Identity()
            attn.register_forward_pre_hook(self._partition_windows)
            attn.register_forward_hook(self._merge_windows)

    # --- window attention hooks ---------------------------------------------

    def _record_grid(self, module: nn.Module, args: Tuple,
                     output: Tuple[torch.Tensor, Tuple[int, int]]) -> None:
        self._grid_hw = tuple(output[1])

    def _partition_windows(self, module: nn.Module,
                           args: Tuple[torch.Tensor]) -> Tuple[torch.Tensor]:
        """(B, H*W, C) tokens -> (B * num_windows, ws*ws, C) windows."""
        x, = args
        B, N, C = x.shape
        H, W = self._grid_hw
        windows, self._window_pad_hw = window_partition(
            x.view(B, H, W, C), self.window_size)
        return (windows.view(-1, self.window_size**2, C), )

    def _merge_windows(self, module: nn.Module, args: Tuple,
                       output: torch.Tensor) -> torch.Tensor:
        """(B * num_windows, ws*ws, C) -> (B, H*W, C), then the drop path."""
        C = output.shape[-1]
        windows = output.view(-1, self.window_size, self.window_size, C)
        x = window_unpartition(windows, self.window_size, self._grid_hw,
                               self._window_pad_hw)
        return module.window_drop_path(x.flatten(1, 2))

    # --- checkpoint loading ---------------------------------------------------

    def _prepare_pos_embed(self, state_dict: Dict[str, torch.Tensor],
                           prefix: str, *args: Any, **kwargs: Any) -> None:
        """Load-state-dict pre-hook (registered by ``VisionTransformer``).

        Drops the checkpoint's class token and the class-token entry of its
        position embedding, then lets mmpretrain resize the grid part to
        ``img_size``'s grid.

        Raises:
            ValueError: The checkpoint's ``pos_embed`` is neither a square
                grid nor a square grid plus one class-token entry.
        """
        logger = MMLogger.get_current_instance()
        if state_dict.pop(prefix + 'cls_token', None) is not None:
            logger.info(f'{type(self).__name__}: the checkpoint\'s '
                        f'{prefix}cls_token is not used in detection: dropped')
        name = prefix + 'pos_embed'
        if name in state_dict:
            pos_embed = state_dict[name]
            num_tokens = pos_embed.shape[1] if pos_embed.ndim == 3 else -1
            if num_tokens > 1 and not _is_square(num_tokens) and _is_square(
                    num_tokens - 1):
                state_dict[name] = pos_embed[:, 1:]
            elif not _is_square(num_tokens):
                raise ValueError(
                    f'{name} in the checkpoint has shape {tuple(pos_embed.shape)}: '
                    'expected (1, N, C) with N a square number of grid positions, '
                    'optionally plus 1 class-token position')
        super()._prepare_pos_embed(state_dict, prefix, *args, **kwargs)

    def init_weights(self) -> None:
        """Checks that a local pre-trained checkpoint exists, then loads it.

        Raises:
            FileNotFoundError: ``init_cfg`` is ``Pretrained`` with a local
                ``checkpoint`` path that does not exist.
        """
        init_cfg = self.init_cfg
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            checkpoint = str(init_cfg.get('checkpoint'))
            if '://' not in checkpoint and not osp.isfile(checkpoint):
                raise FileNotFoundError(
                    f'model.backbone.init_cfg.checkpoint: no file {checkpoint!r}. '
                    'Export a pre-trained encoder with tools/export_encoder.py and '
                    'pass it with --cfg-options model.backbone.init_cfg.checkpoint='
                    'PATH, or set model.backbone.init_cfg=None to start from '
                    'random weights.')
        super().init_weights()
