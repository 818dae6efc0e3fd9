"""AdPE's perturbed position map: where the adversary tells the encoder a
masked patch is, as a uint8 RGB picture.

For every patch ``p`` of the grid, the encoder's input for a masked patch at
``p`` (the mask token plus its position, with the adversary) is compared
with the clean inputs of every position ``q`` (the mask token plus ``q``'s
position, no adversary). The picture shows

* as colour (magma, black: 0, pale yellow: the largest, written in the
  title), how far the masked patch's input at ``p`` moved,
  ``1 - cos(adversarial(p), clean(p))``;
* as a line from the patch's centre, where it is told it is: the shifted
  coordinates ``p + (d_row, d_col)`` for the coordinates mode, the clean
  position whose input is nearest (cosine) for the embedding mode (no line
  where that is ``p`` itself);

titled with the mode and the state's size. Drawn with mmengine's
:class:`~mmengine.visualization.Visualizer`.
"""
from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from mmengine.visualization import Visualizer
from torch import Tensor

from ..models.adversarial_positions import AdversarialPositions


@torch.no_grad()
def position_shift(positions: AdversarialPositions, pos_embed: Tensor,
                   mask_token: Tensor) -> Tuple[Tensor, Tensor]:
    """How far each masked patch's input moved, and where it points.

    Args:
        positions: The adversary.
        pos_embed: The patches' positions (1, L, D).
        mask_token: The encoder's mask token (1, 1, D).

    Returns:
        ``moved`` (H, W): ``1 - cos`` of the adversarial and the clean input
        at each patch; ``target`` (H, W, 2): the (row, column) each patch is
        told it is at.
    """
    h, w = positions.patch_resolution
    tokens = torch.zeros_like(pos_embed)
    everything = torch.ones(pos_embed.shape[:2], device=pos_embed.device)
    was_training = positions.training
    positions.eval()
    try:
        adversarial = positions.embed(tokens, everything, mask_token,
                                      pos_embed)[0]
    finally:
        positions.train(was_training)
    clean = (pos_embed + mask_token)[0]
    moved = 1 - F.cosine_similarity(adversarial, clean, dim=-1)
    index = torch.arange(h * w, device=pos_embed.device)
    grid = torch.stack([index // w, index % w], dim=1).to(pos_embed.dtype)
    if positions.mode == 'coordinates':
        target = grid + positions.adv_coord.detach().to(grid.dtype)
    else:
        nearest = (F.normalize(adversarial, dim=-1) @
                   F.normalize(clean, dim=-1).t()).argmax(dim=1)
        target = grid[nearest]
    return moved.view(h, w), target.view(h, w, 2)


def draw_position_map(positions: AdversarialPositions, pos_embed: Tensor,
                      mask_token: Tensor, cell: int = 24) -> np.ndarray:
    """The picture (see the module), ``cell`` pixels per patch, uint8 RGB
    (title band on top)."""
    moved, target = position_shift(positions, pos_embed.float(),
                                   mask_token.float())
    h, w = moved.shape
    top = float(moved.max())
    colours = colormaps['magma']((moved / (top or 1.0)).clamp(0, 1).cpu()
                                 .numpy())[..., :3]
    image = np.kron(colours, np.ones((cell, cell, 1)))
    title = 34
    canvas = np.full((h * cell + title, max(w * cell, 360), 3), 255,
                     np.uint8)
    canvas[title:, :w * cell] = np.round(image * 255).astype(np.uint8)
    vis = Visualizer(image=canvas)
    centre = (torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w),
                                         indexing='ij'), -1).float() + 0.5)
    src = centre.view(-1, 2).numpy() * cell
    dst = (target.float().cpu() + 0.5).view(-1, 2).numpy() * cell
    lines = np.abs(dst - src).max(1) > 1e-3
    if lines.any():
        # Visualizer takes x (column) then y (row)
        vis.draw_lines(np.stack([src[lines, 1], dst[lines, 1]], 1),
                       np.stack([src[lines, 0], dst[lines, 0]], 1) + title,
                       colors='c', line_widths=1)
        vis.draw_points(np.stack([dst[lines, 1], dst[lines, 0] + title], 1),
                        colors='c', sizes=np.full(int(lines.sum()), 6))
    size = float(positions.delta.detach().norm())
    text = (f'AdPE {positions.mode}: ' + (
        'shift (%.3f, %.3f) patches' % tuple(positions.adv_coord.tolist())
        if positions.mode == 'coordinates' else f'|delta| = {size:.3g}') +
        f'\nmasked inputs moved (1 - cos): max {top:.2g}')
    vis.draw_texts(text, np.array([4, 2]), colors='k', font_sizes=9)
    return vis.get_image()
