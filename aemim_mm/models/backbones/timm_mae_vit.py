"""An MAE encoder made of timm layers with mmpretrain's ``MAEViT`` interface.

AEMIM is not tied to one implementation of the encoder: everything the
adversarial wrapper needs from an MAE-style backbone is (see
``docs/design.md``, "MAE-style backbones")

* a ``random_masking(x, mask_ratio) -> (x_masked, mask, ids_restore)`` method,
  called exactly once per masked forward through ``self.random_masking`` (the
  wrapper overrides it on the instance to fix the mask),
* its normalisation layers as plain :class:`torch.nn.LayerNorm` instances,
* its class token as the parameter ``cls_token``.

:class:`TimmMAEViT` provides exactly that with :class:`timm.layers.PatchEmbed`
and :class:`timm.models.vision_transformer.Block`, so mmpretrain's ``MAE``
algorithm (``MAEPretrainDecoder`` neck, ``MAEPretrainHead`` head) uses it
unchanged, and its weights export to timm's ``VisionTransformer`` key names
(:meth:`TimmMAEViT.timm_state_dict`) for fine-tuning with timm.
"""
from functools import partial
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmpretrain.models import MAEViT
from mmpretrain.models.utils import build_2d_sincos_position_embedding
from mmpretrain.registry import MODELS
from ...utils.checks import is_int, is_number
from ..adapters import is_adversarial_key
from timm.layers import PatchEmbed
from timm.models import named_apply
from timm.models.vision_transformer import Block

# Standard ViT shapes. ``deit-small`` is the paper's ViT-S/16 (384 dims);
# mmpretrain's arch ``s`` is a different, 768-dim network and is deliberately
# not offered here.
_ARCH_SETTINGS: Dict[str, Dict[str, int]] = {
    'deit-tiny':
    dict(embed_dims=192, num_layers=12, num_heads=3, feedforward_channels=768),
    'deit-small':
    dict(
        embed_dims=384, num_layers=12, num_heads=6, feedforward_channels=1536),
    'b':
    dict(
        embed_dims=768, num_layers=12, num_heads=12,
        feedforward_channels=3072),
    'l':
    dict(
        embed_dims=1024,
        num_layers=24,
        num_heads=16,
        feedforward_channels=4096),
    'h':
    dict(
        embed_dims=1280,
        num_layers=32,
        num_heads=16,
        feedforward_channels=5120),
}
_ARCH_ALIASES: Dict[str, str] = {
    'deit-t': 'deit-tiny',
    'deit-s': 'deit-small',
    'base': 'b',
    'large': 'l',
    'huge': 'h',
}
_REQUIRED_ARCH_KEYS: Tuple[str, ...] = ('embed_dims', 'num_layers',
                                        'num_heads')


def _resolve_arch(arch: Union[str, dict]) -> Tuple[int, int, int, float]:
    """Turn ``arch`` into ``(embed_dims, depth, num_heads, mlp_ratio)``.

    Args:
        arch: An architecture name (see ``_ARCH_SETTINGS`` and
            ``_ARCH_ALIASES``) or a dict with ``embed_dims``, ``num_layers``,
            ``num_heads`` and one of ``feedforward_channels`` / ``mlp_ratio``.

    Returns:
        The embedding width, the number of blocks, the number of attention
        heads and the MLP ratio that timm's ``Block`` expects.

    Raises:
        ValueError: For an unknown name, a dict without the feed-forward
            width, inconsistent values, or an ``arch`` of another type.
        KeyError: For a dict without one of the required keys.
    """
    if isinstance(arch, str):
        name = _ARCH_ALIASES.get(arch.lower(), arch.lower())
        if name not in _ARCH_SETTINGS:
            allowed = sorted(set(_ARCH_SETTINGS) | set(_ARCH_ALIASES))
            raise ValueError(f'Unknown arch {arch!r} for TimmMAEViT; `arch` '
                             f'must be one of {allowed} or a dict.')
        cfg = dict(_ARCH_SETTINGS[name])
    elif isinstance(arch, dict):
        cfg = dict(arch)
    else:
        raise ValueError('`arch` must be a str or a dict, got '
                         f'{type(arch).__name__}.')

    for key in _REQUIRED_ARCH_KEYS:
        if key not in cfg:
            raise KeyError(f'The `arch` dict misses the key {key!r}; it needs '
                           f'{list(_REQUIRED_ARCH_KEYS)} and one of '
                           "'feedforward_channels' / 'mlp_ratio'.")
    embed_dims = int(cfg['embed_dims'])
    num_layers = int(cfg['num_layers'])
    num_heads = int(cfg['num_heads'])
    if embed_dims % num_heads != 0:
        raise ValueError(f'embed_dims ({embed_dims}) must be divisible by '
                         f'num_heads ({num_heads}).')
    if embed_dims % 4 != 0:
        raise ValueError(f'embed_dims ({embed_dims}) must be divisible by 4 '
                         'for the 2-D sin-cos position embedding.')

    if 'feedforward_channels' in cfg:
        ffn = int(cfg['feedforward_channels'])
        mlp_ratio = ffn / embed_dims
        # timm's Block builds its MLP with int(dim * mlp_ratio) hidden units.
        if int(embed_dims * mlp_ratio) != ffn:
            raise ValueError(
                f'feedforward_channels={ffn} cannot be expressed as a timm '
                f'mlp_ratio for embed_dims={embed_dims}; use mlp_ratio.')
    elif 'mlp_ratio' in cfg:
        mlp_ratio = float(cfg['mlp_ratio'])
    else:
        raise KeyError("The `arch` dict misses the key 'feedforward_channels'"
                       " (or 'mlp_ratio').")
    return embed_dims, num_layers, num_heads, mlp_ratio


def _mae_init_module(module: nn.Module, name: str = '') -> None:
    """MAE's per-module initialisation (used with timm's ``named_apply``).

    Args:
        module: The module to initialise.
        name: Its qualified name (unused; ``named_apply`` passes it).
    """
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        if module.weight is not None:
            nn.init.ones_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _check_options(img_size, patch_size, in_channels, mask_ratio,
                   drop_path_rate, qkv_bias, norm_eps) -> None:
    """Raise a ValueError naming the first bad option of TimmMAEViT."""
    if not is_int(patch_size) or patch_size < 1:
        raise ValueError(f'patch_size must be an int >= 1, got {patch_size!r}.')
    sizes = (img_size, img_size) if is_int(img_size) else img_size
    if not (isinstance(sizes, (list, tuple)) and len(sizes) == 2
            and all(is_int(s) for s in sizes)):
        raise ValueError('img_size must be an int or a pair of ints, got '
                         f'{img_size!r}.')
    if min(sizes) <= 0:
        raise ValueError(f'img_size must be > 0, got {img_size!r}.')
    if any(s % patch_size for s in sizes):
        raise ValueError(f'img_size {img_size!r} must be divisible by '
                         f'patch_size {patch_size}.')
    if not is_int(in_channels) or in_channels < 1:
        raise ValueError(
            f'in_channels must be an int >= 1, got {in_channels!r}.')
    if not is_number(mask_ratio) or not 0. <= mask_ratio < 1.:
        raise ValueError(
            f'mask_ratio must be a number in [0, 1), got {mask_ratio!r}.')
    if not is_number(drop_path_rate) or not 0. <= drop_path_rate < 1.:
        raise ValueError(
            f'drop_path_rate must be in [0, 1), got {drop_path_rate!r}.')
    if not isinstance(qkv_bias, bool):
        raise ValueError(f'qkv_bias must be a bool, got {qkv_bias!r}.')
    if not is_number(norm_eps) or not norm_eps > 0:
        raise ValueError(f'norm_eps must be a number > 0, got {norm_eps!r}.')


@MODELS.register_module()
class TimmMAEViT(BaseModule):
    """MAE encoder made of timm layers, interchangeable with ``MAEViT``.

    The forward pass is MAE's: patch embedding, fixed 2-D sin-cos position
    embedding, random masking of the patch tokens, a class token prepended,
    the transformer blocks and a final LayerNorm.

    Args:
        arch: ``'deit-tiny'``, ``'deit-small'`` (ViT-S/16), ``'b'``
            (ViT-B/16), ``'l'``, ``'h'`` (aliases ``'deit-t'``, ``'deit-s'``,
            ``'base'``, ``'large'``, ``'huge'``) or a dict with ``embed_dims``,
            ``num_layers``, ``num_heads`` and ``feedforward_channels`` or
            ``mlp_ratio``. Defaults to ``'b'``.
        img_size: Input image size (int or (H, W)). Defaults to 224.
        patch_size: Patch size. Defaults to 16.
        in_channels: Number of input channels. Defaults to 3.
        mask_ratio: Fraction of the patches removed in a masked forward.
            Defaults to 0.75.
        drop_path_rate: Stochastic depth rate, increased linearly over the
            blocks from 0. Defaults to 0.
        qkv_bias: Whether the qkv projections have a bias. Defaults to True.
        norm_eps: Epsilon of every LayerNorm. Defaults to 1e-6.
        init_cfg: mmengine initialisation config, e.g.
            ``dict(type='Pretrained', checkpoint=...)``; applied after MAE's
            own initialisation. Defaults to None.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'b',
                 img_size: Union[int, Sequence[int]] = 224,
                 patch_size: int = 16,
                 in_channels: int = 3,
                 mask_ratio: float = 0.75,
                 drop_path_rate: float = 0.,
                 qkv_bias: bool = True,
                 norm_eps: float = 1e-6,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        _check_options(img_size, patch_size, in_channels, mask_ratio,
                       drop_path_rate, qkv_bias, norm_eps)
        embed_dims, depth, num_heads, mlp_ratio = _resolve_arch(arch)
        self.embed_dims = embed_dims
        self.num_layers = depth
        self.mask_ratio = mask_ratio

        norm_layer = partial(nn.LayerNorm, eps=norm_eps)
        self.patch_embed = PatchEmbed(
            img_size=img_size,
            patch_size=patch_size,
            in_chans=in_channels,
            embed_dim=embed_dims)
        self.patch_resolution: Tuple[int, int] = tuple(
            self.patch_embed.grid_size)
        self.num_patches = self.patch_embed.num_patches

        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dims))
        # Fixed (not learnt) during MAE pre-training, as in MAE / MAEViT.
        self.pos_embed = nn.Parameter(
            torch.zeros(1, 1 + self.num_patches, embed_dims),
            requires_grad=False)

        # Stochastic depth rising linearly from 0 to drop_path_rate (plain
        # Python, so that the module can also be built on the meta device).
        dpr = [
            drop_path_rate * i / (depth - 1) if depth > 1 else 0.
            for i in range(depth)
        ]
        self.blocks = nn.ModuleList([
            Block(
                dim=embed_dims,
                num_heads=num_heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                drop_path=dpr[i],
                norm_layer=norm_layer) for i in range(depth)
        ])
        self.norm = norm_layer(embed_dims)

        # Usable before init_weights() is called (e.g. in unit tests).
        self._fill_pos_embed()

    def _fill_pos_embed(self) -> None:
        """Write the fixed 2-D sin-cos position embedding (cls slot = 0)."""
        # mmpretrain's helper flattens its grid as meshgrid(w, h, 'ij'), i.e.
        # with its "w" axis outermost, while timm's PatchEmbed flattens
        # row-major (H outermost). Passing (W, H) makes the two orders agree
        # for non-square grids; for square ones it is exactly MAEViT's call.
        grid_h, grid_w = self.patch_resolution
        pos = build_2d_sincos_position_embedding((grid_w, grid_h),
                                                 self.embed_dims,
                                                 cls_token=True)
        with torch.no_grad():
            self.pos_embed.copy_(pos.to(self.pos_embed))

    def init_weights(self) -> None:
        """Initialise as MAE does, then apply ``init_cfg`` (if any).

        MAE's recipe: Xavier-uniform for every ``nn.Linear`` (zero bias) and
        for the patch projection viewed as a 2-D matrix, ``normal(0.02)`` for
        the class token, LayerNorm weight 1 / bias 0 and the sin-cos position
        embedding. ``init_cfg`` (e.g. ``Pretrained``) is applied afterwards by
        ``BaseModule.init_weights`` so that a checkpoint overrides the recipe.
        """
        if not self.is_init:
            self._fill_pos_embed()
            w = self.patch_embed.proj.weight.data
            nn.init.xavier_uniform_(w.view(w.shape[0], -1))
            nn.init.normal_(self.cls_token, std=.02)
            named_apply(_mae_init_module, self)
        super().init_weights()

    def random_masking(
        self,
        x: torch.Tensor,
        mask_ratio: float = 0.75
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Randomly keep ``int(L * (1 - mask_ratio))`` tokens per sample.

        Reuses mmpretrain's implementation: ``MAEViT.random_masking`` reads
        nothing from ``self`` (only ``x`` and ``mask_ratio``), so calling it
        unbound with this instance is exactly MAEViT's masking, without a copy
        of the code and without inheriting the rest of ``MAEViT``.

        Args:
            x: Patch tokens (with position embedding), shape (B, L, C).
            mask_ratio: Fraction of the tokens to remove.

        Returns:
            ``x_masked`` (B, len_keep, C), ``mask`` (B, L) with 1 for removed
            tokens and 0 for kept ones, and ``ids_restore`` (B, L), the
            permutation that puts the shuffled tokens back in order.
        """
        return MAEViT.random_masking(self, x, mask_ratio)

    def forward(
        self,
        x: torch.Tensor,
        mask: Optional[bool] = True
    ) -> Union[Tuple[torch.Tensor, torch.Tensor, torch.Tensor],
               Tuple[torch.Tensor]]:
        """Encode images, with or without MAE's random masking.

        Args:
            x: Images, shape (B, C, H, W).
            mask: ``True`` for a masked (pre-training) forward; ``None`` or
                ``False`` for a forward on all patches. Note that, unlike
                mmpretrain's ``MAEViT`` (which masks for ``mask=False`` too),
                ``False`` here means "no mask".

        Returns:
            With ``mask=True``, the tuple ``(latent, mask, ids_restore)`` that
            ``MAEViT`` returns: ``latent`` (B, 1 + len_keep, C) after the final
            norm (class token first), ``mask`` (B, L) with 1 = removed and
            ``ids_restore`` (B, L). Otherwise a one-element tuple
            ``(features,)`` in mmpretrain backbone style, ``features`` being
            the full token sequence (B, 1 + L, C) after the final norm.
        """
        if mask is None or mask is False:
            return (self._encode(self._embed_patches(x)), )
        if mask is not True:
            raise TypeError(
                f'mask must be True, False or None, got {type(mask)}.')
        tokens = self._embed_patches(x)
        tokens, mask_out, ids_restore = self.random_masking(
            tokens, self.mask_ratio)
        return self._encode(tokens), mask_out, ids_restore

    def _embed_patches(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens plus their position embedding, shape (B, L, C)."""
        return self.patch_embed(x) + self.pos_embed[:, 1:, :]

    def _encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Prepend the class token, run the blocks and the final norm."""
        cls_token = self.cls_token + self.pos_embed[:, :1, :]
        x = torch.cat((cls_token.expand(tokens.shape[0], -1, -1), tokens),
                      dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def timm_state_dict(self) -> Dict[str, torch.Tensor]:
        """The encoder's weights under timm ``VisionTransformer`` key names.

        The submodules are named as in timm (``cls_token``, ``pos_embed``,
        ``patch_embed.proj.*``, ``blocks.N.*``, ``norm.*``), so this is the
        module's state dict without AEMIM's adversarial adapter parameters
        (any entry whose leaf name starts with ``adv_``), detached and cloned.

        Load it with ``load_state_dict(sd, strict=False)`` into e.g.
        ``timm.create_model('vit_base_patch16_224', num_classes=0)``: with
        ``global_pool='token'`` nothing is missing or unexpected; with
        ``global_pool='avg'`` timm replaces ``norm`` by a fresh ``fc_norm``
        (MAE's fine-tuning recipe), so ``fc_norm.*`` are reported missing and
        ``norm.*`` unexpected; a classifier head is always missing.

        Returns:
            An ordered mapping from timm key names to tensors.
        """
        return {
            key: value.detach().clone()
            for key, value in self.state_dict().items()
            if not is_adversarial_key(key)
        }
