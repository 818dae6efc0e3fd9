"""Image grids with column titles, as uint8 RGB arrays (numpy + OpenCV)."""
from typing import Dict, Optional, Sequence, Union

import numpy as np
import torch

ImageBatch = Union[torch.Tensor, np.ndarray]


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


def _fit_text(text: str, width: int, height: int):
    """Choose lines and font scale so ``text`` fits a ``width x height`` box.

    Tries one line, then two lines split at the space nearest the middle; the
    font shrinks (down to scale 0.3) until the widest line fits.

    Returns:
        tuple: ``(lines, scale, line_height)``.
    """
    import cv2
    font = cv2.FONT_HERSHEY_SIMPLEX
    candidates = [[text]]
    spaces = [i for i, ch in enumerate(text) if ch == ' ']
    if spaces:
        mid = min(spaces, key=lambda i: abs(i - len(text) / 2))
        candidates.append([text[:mid], text[mid + 1:]])
    best = None
    for lines in candidates:
        scale = 0.5
        while True:
            sizes = [cv2.getTextSize(t, font, scale, 1)[0] for t in lines]
            tw = max(w for w, _ in sizes)
            th = max(h for _, h in sizes)
            line_h = th + 4
            if (tw <= width - 4 and line_h * len(lines) <= height) \
                    or scale <= 0.3:
                break
            scale -= 0.05
        if best is None or scale > best[1] + 1e-9:
            best = (lines, scale, line_h)
    return best


def _put_centered_text(canvas: np.ndarray, text: str, x0: int, width: int,
                       height: int, color: Sequence[int]) -> None:
    """Draw ``text`` centred in the box ``[x0, x0 + width) x [0, height)``.

    The text is split into two lines and / or its font shrunk until it fits.
    """
    import cv2
    font = cv2.FONT_HERSHEY_SIMPLEX
    lines, scale, line_h = _fit_text(text, width, height)
    top = max(0, (height - line_h * len(lines)) // 2)
    for i, line in enumerate(lines):
        (tw, th), _ = cv2.getTextSize(line, font, scale, 1)
        x = x0 + max(0, (width - tw) // 2)
        y = top + i * line_h + (line_h + th) // 2
        cv2.putText(canvas, line, (x, y), font, scale,
                    tuple(int(c) for c in color), 1, cv2.LINE_AA)


def make_image_grid(columns: Dict[str, ImageBatch],
                    max_rows: Optional[int] = 4,
                    min_cell_size: int = 128,
                    pad: int = 4,
                    title_height: int = 36,
                    background: Sequence[int] = (255, 255, 255),
                    text_color: Sequence[int] = (0, 0, 0)) -> np.ndarray:
    """Lay out image batches as a titled grid: one column per batch.

    Row ``i`` shows sample ``i`` of every batch; each column has its key as a
    title above it. Small images are enlarged by an integer factor (nearest
    neighbour, so pixels stay visible) until a cell is at least
    ``min_cell_size`` pixels on its shorter side.

    Args:
        columns: Ordered mapping ``title -> batch``; every batch is
            ``(B, 3, H, W)`` float RGB in [0, 1] (tensor or array) with the
            same ``H, W``. Batches may differ in ``B``; the grid has the
            smallest ``B`` rows.
        max_rows: At most this many rows (samples); ``None`` for all.
        min_cell_size: Enlarge small images to at least this size.
        pad: Padding in pixels between and around cells.
        title_height: Height of the title strip in pixels (0: no titles).
        background: RGB colour of padding and title strip.
        text_color: RGB colour of the titles.

    Returns:
        np.ndarray: ``(H_grid, W_grid, 3)`` uint8 RGB, with
        ``W_grid = n_cols * (cell_w + pad) + pad``.

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
    ch, cw = h * factor, w * factor
    n_cols = len(batches)
    grid_h = title_height + rows * (ch + pad) + pad
    grid_w = n_cols * (cw + pad) + pad
    grid = np.empty((grid_h, grid_w, 3), dtype=np.uint8)
    grid[...] = np.asarray(background, dtype=np.uint8)
    for c, (title, batch) in enumerate(batches.items()):
        x = pad + c * (cw + pad)
        if title_height > 0:
            _put_centered_text(grid, str(title), x, cw, title_height,
                               text_color)
        for r in range(rows):
            y = title_height + pad + r * (ch + pad)
            cell = batch[r]
            if factor > 1:
                cell = cell.repeat(factor, axis=0).repeat(factor, axis=1)
            grid[y:y + ch, x:x + cw] = cell
    return grid
