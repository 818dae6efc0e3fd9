"""AdPE's adversary: positions of the masked patches, perturbed by a state
shared by every image and kept across iterations (Wang, Wang, Xuan, Qi,
"Adversarial Positional Embeddings for MIM", 2023; official code
``maple-research-lab/AdPE``, ``model/ad_ape.py``).

Two modes, as the original's ``--adv_type``:

* ``'coordinates'`` (``adv_type 2``): ``adv_coord`` = (d_row, d_col), in
  patches, is added to the grid coordinates of the **masked** patches
  before the 2-D sin-cos encoding; visible patches keep theirs;
* ``'embedding'`` (``adv_type 1``): ``adv_embedding`` (1, 1, D) is added to
  the mask token that the masked patches carry into the encoder.

The state is an ``nn.Parameter`` trained by the network's own optimiser in a
param group of **negative** learning rate (gradient ascent on the MIM loss,
the original's ``lr = -adv_lr``) and projected onto its ball after every
optimiser step (L2: rescaled; L-inf: clamped), which
:class:`~aemim_mm.engine.hooks.AdversarialPositionsHook` arranges and checks.
With ``eps`` 0 the state stays 0 and the encoder is the plain one.

The embedding mode deviates from the original on purpose: there the
adversarial vector *replaces* the mask token (no mask token is learnt by
descent); here it is a bounded perturbation of the algorithm's mask token,
so that eps 0 is the plain algorithm. docs/adpe.md says more.
"""
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..utils.checks import is_number

#: AdPE's modes (the original's ``--adv_type`` 2 and 1).
MODES = ('coordinates', 'embedding')
#: The balls the state is projected onto (the original's ``--norm`` 1, 2).
NORMS = ('l2', 'linf')


def sincos_position_embedding(patch_resolution: Tuple[int, int],
                              embed_dims: int,
                              shift: Optional[Tensor] = None,
                              temperature: float = 10000.,
                              dtype: torch.dtype = torch.float32) -> Tensor:
    """The 2-D sin-cos position embedding (1, H * W, D) of a row-major patch
    grid, differentiable in ``shift``.

    For square grids it is mmpretrain's
    ``build_2d_sincos_position_embedding`` (without the class token):
    ``[sin(r w), cos(r w), sin(c w), cos(c w)]`` for row ``r``, column ``c``
    and ``w = 1 / temperature ** (arange(D / 4) / (D / 4))``.

    Args:
        patch_resolution: (H, W) patches.
        embed_dims: D, a multiple of 4.
        shift: (2,) added to every (row, column); ``None``: no shift.
        temperature: The frequencies' base.
        dtype: The result's dtype (``shift``'s when given).
    """
    h, w = patch_resolution
    if shift is not None:
        dtype = shift.dtype
    device = None if shift is None else shift.device
    index = torch.arange(h * w, device=device, dtype=dtype)
    rows, cols = torch.div(index, w, rounding_mode='floor'), index % w
    if shift is not None:
        rows, cols = rows + shift[0], cols + shift[1]
    quarter = embed_dims // 4
    omega = 1. / temperature**(torch.arange(quarter, device=device,
                                            dtype=dtype) / quarter)
    out_r, out_c = rows[:, None] * omega, cols[:, None] * omega
    return torch.cat([out_r.sin(), out_r.cos(), out_c.sin(), out_c.cos()],
                     dim=1)[None]


def check_adversarial_positions(mode: str, eps: float, norm: str) -> None:
    """Refuse a bad mode, budget or ball, naming the option.

    Raises:
        ValueError: If ``mode`` is not in :data:`MODES`, ``eps`` not a
            number >= 0 or ``norm`` not in :data:`NORMS`.
    """
    if mode not in MODES:
        raise ValueError(f'adversarial_positions.mode must be one of '
                         f'{list(MODES)}, got {mode!r}.')
    if not is_number(eps) or eps < 0:
        raise ValueError(f'adversarial_positions.eps must be a number >= 0 '
                         f'(coordinates: patches; embedding: the '
                         f'perturbation\'s norm), got {eps!r}.')
    if norm not in NORMS:
        raise ValueError(f'adversarial_positions.norm must be one of '
                         f'{list(NORMS)}, got {norm!r}.')


class AdversarialPositions(nn.Module):
    """AdPE's persistent adversarial state for a ViT of sin-cos positions.

    Args:
        mode: ``'coordinates'`` or ``'embedding'`` (see the module).
        eps: The ball's radius: in patches (coordinates) or in the mask
            token's units (embedding).
        norm: ``'l2'`` (rescaled onto the ball) or ``'linf'`` (clamped).
        embed_dims: The encoder's width.
        patch_resolution: The encoder's (H, W) patch grid.

    Attributes:
        guarded: Set by :class:`~aemim_mm.engine.hooks.
            AdversarialPositionsHook` once the optimiser is checked to climb
            and project the state; training without it is refused.
    """

    def __init__(self, mode: str, eps: float, norm: str, embed_dims: int,
                 patch_resolution: Sequence[int]) -> None:
        super().__init__()
        check_adversarial_positions(mode, eps, norm)
        if mode == 'coordinates' and embed_dims % 4:
            raise ValueError('adversarial_positions.mode "coordinates" needs '
                             'a width divisible by 4 (2-D sin-cos), got '
                             f'{embed_dims}.')
        self.mode, self.eps, self.norm = mode, float(eps), norm
        self.patch_resolution = tuple(patch_resolution)
        self.guarded = False
        if mode == 'coordinates':
            self.adv_coord = nn.Parameter(torch.zeros(2))
        else:
            self.adv_embedding = nn.Parameter(torch.zeros(1, 1, embed_dims))

    @property
    def delta(self) -> Tensor:
        """The adversarial state (``adv_coord`` or ``adv_embedding``)."""
        return self.adv_coord if self.mode == 'coordinates' else \
            self.adv_embedding

    @torch.no_grad()
    def project_(self) -> None:
        """Project the state onto its ball, in place."""
        delta = self.delta
        if self.norm == 'linf':
            delta.clamp_(-self.eps, self.eps)
        else:
            norm = delta.norm()
            if norm > self.eps:
                delta.mul_(self.eps / norm)

    def check_guarded(self) -> None:
        """Refuse a training forward that no optimiser climbs and projects.

        Raises:
            RuntimeError: If :attr:`guarded` is not set.
        """
        if not self.guarded:
            raise RuntimeError(
                'AdversarialPositions: training needs '
                "dict(type='AdversarialPositionsHook') in custom_hooks and "
                'the adversarial state in a param group of negative '
                "learning rate (paramwise_cfg custom_keys="
                "{'adversarial_positions': dict(lr_mult=-1.0, "
                "decay_mult=0.0)}); without them the state would descend "
                'and leave its ball.')

    def embed(self, tokens: Tensor, mask: Tensor, mask_token: Tensor,
              pos_embed: Tensor) -> Tensor:
        """Patch tokens (B, L, D) -> the encoder's input: masked patches
        carry the mask token, every patch its position, with the adversary
        on the masked ones.

        Args:
            tokens: Patch embeddings (B, L, D).
            mask: (B, L), 1 where the patch is masked.
            mask_token: (1, 1, D).
            pos_embed: The patches' positions (1, L, D) (no class token).
        """
        if self.training and torch.is_grad_enabled():
            self.check_guarded()
        masked_pos = pos_embed
        if self.mode == 'coordinates':
            shift = self.adv_coord.to(pos_embed.dtype)
            masked_pos = pos_embed + (
                sincos_position_embedding(self.patch_resolution,
                                          pos_embed.shape[-1], shift) -
                sincos_position_embedding(self.patch_resolution,
                                          pos_embed.shape[-1],
                                          torch.zeros_like(shift)))
        else:
            mask_token = mask_token + self.adv_embedding.to(mask_token.dtype)
        return embed_masked(tokens, mask, mask_token, pos_embed, masked_pos)

    def extra_repr(self) -> str:
        return f'mode={self.mode!r}, eps={self.eps:g}, norm={self.norm!r}'


def embed_masked(tokens: Tensor, mask: Tensor, mask_token: Tensor,
                 pos_embed: Tensor,
                 masked_pos: Optional[Tensor] = None) -> Tensor:
    """Masked patches -> ``mask_token``; positions added (``masked_pos`` at
    the masked patches, default ``pos_embed``): the input of an encoder that
    keeps mask tokens (MAE+, SimMIM)."""
    w = mask.unsqueeze(-1).to(tokens.dtype)
    x = tokens * (1 - w) + mask_token.to(tokens.dtype) * w
    if masked_pos is None:
        return x + pos_embed
    return x + pos_embed * (1 - w) + masked_pos * w
