"""ViT encoders that keep mask tokens, the encoders AdPE perturbs.

* :class:`MAEPlusViT` with :class:`MAEPlusPretrainDecoder`: AdPE's "MAE+"
  (``maple-research-lab/AdPE``, ``model/ad_ape.py``): MAE whose encoder
  receives every patch, the masked ones replaced by a learnable mask token,
  and whose decoder therefore inserts none. mmpretrain's ``MAEViT`` drops
  the masked patches before the encoder, so a masked patch's position has
  nowhere to act there.
* :class:`SimMIMViT`: SimMIM's encoder as a plain ViT (mmpretrain 1.2 has
  SimMIM for Swin only): the mask comes with the data, masked patches carry
  the mask token, the output is the (B, C, H, W) patch map that SimMIM's
  linear decoder reads.

Both use mmpretrain's fixed 2-D sin-cos positions (``MAEViT``) and take
``adversarial_positions=dict(mode=..., eps=..., norm=...)``
(:class:`~aemim_mm.models.adversarial_positions.AdversarialPositions`);
without it they are the plain encoders. Both export as mmpretrain's
``VisionTransformer`` (the mask token and the adversarial state are
pre-training only).
"""
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from mmpretrain.models.necks import MAEPretrainDecoder
from mmpretrain.models.selfsup import MAEViT
from mmpretrain.registry import MODELS
from ..adversarial_positions import AdversarialPositions, embed_masked


@MODELS.register_module()
class MAEPlusViT(MAEViT):
    """MAE+ encoder: the masked patches stay in the sequence as a mask token.

    Args:
        adversarial_positions: AdPE's adversary (``mode``, ``eps``, ``norm``);
            ``None``: none.
        *args, **kwargs: ``MAEViT``'s.

    The masked forward returns ``(tokens, mask, ids_restore)`` as
    ``MAEViT``'s, with every patch's token (B, 1 + L, C).
    """

    def __init__(self, *args, adversarial_positions: Optional[dict] = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, self.embed_dims))
        self.adversarial_positions = None
        if adversarial_positions is not None:
            self.adversarial_positions = AdversarialPositions(
                **adversarial_positions, embed_dims=self.embed_dims,
                patch_resolution=self.patch_resolution)

    def init_weights(self) -> None:
        """``MAEViT``'s, and the mask token as MAE's (normal, std 0.02)."""
        super().init_weights()
        torch.nn.init.normal_(self.mask_token, std=.02)

    def embed_tokens(self, tokens: Tensor, mask: Tensor) -> Tensor:
        """Patch embeddings (B, L, C) -> the encoder's input (B, 1 + L, C):
        masked patches carry the mask token (and the adversary), every patch
        its position, the class token leads."""
        pos_embed = self.pos_embed[:, 1:]
        if self.adversarial_positions is None:
            tokens = embed_masked(tokens, mask, self.mask_token, pos_embed)
        else:
            tokens = self.adversarial_positions.embed(
                tokens, mask, self.mask_token, pos_embed)
        cls_token = self.cls_token + self.pos_embed[:, :1]
        return torch.cat([cls_token.expand(len(tokens), -1, -1), tokens],
                         dim=1)

    def encode(self, tokens: Tensor) -> Tensor:
        """The transformer layers and the final norm."""
        for layer in self.layers:
            tokens = layer(tokens)
        return self.norm1(tokens)

    def forward(self, x: Tensor, mask: Optional[bool] = True
                ) -> Tuple[Tensor, Tensor, Tensor]:
        """Masked forward (MAE's mask), or the plain ViT with ``mask``
        ``None`` / ``False``."""
        if mask is None or mask is False:
            return super().forward(x, None)
        tokens = self.patch_embed(x)[0]
        # the mask of MAEViT's (overridable) random_masking
        _, mask, ids_restore = self.random_masking(tokens, self.mask_ratio)
        return self.encode(self.embed_tokens(tokens, mask)), mask, ids_restore


@MODELS.register_module()
class MAEPlusPretrainDecoder(MAEPretrainDecoder):
    """MAE's decoder for :class:`MAEPlusViT`: the encoder's tokens already
    hold every patch, so no mask token is inserted (``ids_restore`` is
    unused). The inherited decoder mask token is frozen and unused."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.mask_token.requires_grad_(False)

    def forward(self, x: Tensor, ids_restore: Tensor) -> Tensor:
        x = self.decoder_embed(x) + self.decoder_pos_embed
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]


@MODELS.register_module()
class SimMIMViT(MAEPlusViT):
    """SimMIM's encoder as a ViT: ``forward(x, mask)`` with the data's
    (B, H, W) patch mask returns ``((B, C, H, W), )``; ``mask=None`` is the
    plain ViT. ``mask_ratio`` is unused (the mask comes with the data)."""

    def forward(self, x: Tensor, mask: Optional[Tensor] = None
                ) -> Tuple[Tensor]:
        if mask is None:
            return super().forward(x, None)
        tokens = self.encode(self.embed_tokens(self.patch_embed(x)[0],
                                               mask.flatten(1)))
        h, w = self.patch_resolution
        patches = tokens[:, 1:].transpose(1, 2)
        return (patches.reshape(len(x), -1, h, w), )
