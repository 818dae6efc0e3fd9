"""Image grids with column titles, as uint8 RGB arrays.

The cells are laid out by ``torchvision.utils.make_grid``; the titles are
drawn by mmengine's :class:`~mmengine.visualization.Visualizer`.
"""
import textwrap
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.visualization import Visualizer
from torchvision.utils import make_grid

ImageBatch = Union[torch.Tensor, np.ndarray]

#: Largest and smallest title font, in pixels.
_MAX_FONT_PX = 12.0
_MIN_FONT_PX = 6.0
#: Average glyph width of the title font relative to its size.
_CHAR_WIDTH = 0.6


def to_uint8_images(images: ImageBatch) -> np.ndarray:
    """Convert a float batch in [0, 1], ``(B, 3, H, W)`` RGB, to uint8 NHWC.

    Args:
        images: Float tensor or array in [0, 1] (values outside are clipped),
            shape ``(B, 3, H, W)`` (or ``(B, 1, H, W)``, repeated to RGB).

    Returns:
        np.ndarray: ``(B, H, W, 3)`` uint8.

    Raises:
        ValueError: If the shape is not ``(B, 1 or 3, H, W)``.
    """
    if isinstance(images, torch.Tensor):
        images = images.detach().float().cpu().numpy()
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError('to_uint8_images: expected a (B, 3, H, W) batch, got '
                         f'shape {tuple(images.shape)}.')
    if images.shape[1] == 1:
        images = np.repeat(images, 3, axis=1)
    images = np.nan_to_num(images, nan=0.0)
    out = np.round(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.ascontiguousarray(out.transpose(0, 2, 3, 1))


def _fit_title(text: str, width: int, height: int) -> Tuple[str, float]:
    """Wrap ``text`` and choose a font size so it fits ``width x height``.

    The font shrinks from ``_MAX_FONT_PX`` (or a third of ``height``) down to
    ``_MIN_FONT_PX`` until the wrapped lines fit the box.

    Returns:
        tuple: The text with line breaks, and the font size in pixels.
    """
    size = min(_MAX_FONT_PX, height / 3)
    while True:
        chars = max(1, int(width // (_CHAR_WIDTH * size)))
        lines: List[str] = textwrap.wrap(text, chars) or ['']
        if len(lines) * 1.2 * size <= height or size <= _MIN_FONT_PX:
            return '\n'.join(lines), size
        size = max(_MIN_FONT_PX, size - 1.0)


def _title_strip(titles: Sequence[str], cell_width: int, pad: int,
                 height: int, width: int, background: int,
                 text_color: Sequence[int]) -> np.ndarray:
    """The strip above the grid with each column's title centred over it."""
    strip = np.full((height, width, 3), background, dtype=np.uint8)
    vis = Visualizer(name='aemim_image_grid', image=strip)
    texts, sizes = zip(*(_fit_title(str(t), cell_width, height)
                         for t in titles))
    centres = [(pad + c * (cell_width + pad) + cell_width / 2, height / 2)
               for c in range(len(titles))]
    vis.draw_texts(
        list(texts),
        np.asarray(centres, dtype=np.float64),
        font_sizes=[s * 72.0 / vis.dpi for s in sizes],  # px -> points
        colors=tuple(int(c) for c in text_color),
        vertical_alignments='center',
        horizontal_alignments='center')
    return vis.get_image()


def make_image_grid(columns: Dict[str, ImageBatch],
                    max_rows: Optional[int] = 4,
                    min_cell_size: int = 128,
                    pad: int = 4,
                    title_height: int = 36,
                    background: int = 255,
                    text_color: Sequence[int] = (0, 0, 0)) -> np.ndarray:
    """Lay out image batches as a titled grid: one column per batch.

    Row ``i`` shows sample ``i`` of every batch; each column has its key as a
    title above it (wrapped to at most the cell's width, the font shrunk to
    fit the strip). Small images are enlarged by an integer factor (nearest
    neighbour, so pixels stay visible) until a cell is at least
    ``min_cell_size`` pixels on its shorter side. The titles are drawn by
    mmengine's ``Visualizer``, which draws on the main process only: call
    this there.

    Args:
        columns: Ordered mapping ``title -> batch``; every batch is
            ``(B, 3, H, W)`` float RGB in [0, 1] (tensor or array) with the
            same ``H, W``. Batches may differ in ``B``; the grid has the
            smallest ``B`` rows.
        max_rows: At most this many rows (samples); ``None`` for all.
        min_cell_size: Enlarge small images to at least this size.
        pad: Padding in pixels between and around cells.
        title_height: Height of the title strip in pixels (0: no titles).
        background: Gray level (0-255) of the padding and the title strip.
        text_color: RGB colour of the titles.

    Returns:
        np.ndarray: ``(H_grid, W_grid, 3)`` uint8 RGB, with
        ``W_grid = n_cols * (cell_w + pad) + pad`` and
        ``H_grid = title_height + n_rows * (cell_h + pad) + pad``.

    Raises:
        ValueError: If ``columns`` is empty or the batches' image sizes differ.
    """
    if not columns:
        raise ValueError('make_image_grid: `columns` is empty.')
    batches = {k: to_uint8_images(v) for k, v in columns.items()}
    sizes = {k: v.shape[1:3] for k, v in batches.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError('make_image_grid: all columns need the same image '
                         f'size, got {sizes}.')
    h, w = next(iter(sizes.values()))
    rows = min(v.shape[0] for v in batches.values())
    if max_rows is not None:
        rows = min(rows, max_rows)
    if rows == 0:
        raise ValueError('make_image_grid: the batches are empty.')
    factor = max(1, int(np.ceil(min_cell_size / max(1, min(h, w)))))
    # (rows, cols, H, W, 3) -> row-major cells, as make_grid fills its rows
    cells = np.stack([b[:rows] for b in batches.values()], axis=1)
    cells = cells.repeat(factor, axis=2).repeat(factor, axis=3)
    cells = torch.from_numpy(cells.reshape(-1, *cells.shape[2:]))
    grid = make_grid(
        cells.permute(0, 3, 1, 2),
        nrow=len(batches),
        padding=pad,
        pad_value=background)
    if len(cells) == 1:  # make_grid returns a single image unpadded
        grid = torch.nn.functional.pad(grid, (pad, ) * 4, value=background)
    grid = grid.permute(1, 2, 0).numpy()
    if title_height <= 0:
        return np.ascontiguousarray(grid)
    strip = _title_strip(
        list(batches), w * factor, pad, title_height, grid.shape[1],
        background, text_color)
    return np.concatenate([strip, grid], axis=0)
