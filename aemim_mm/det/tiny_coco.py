"""A tiny COCO-format instance-segmentation data set of drawn shapes.

:func:`make_tiny_coco` writes, under ``root``, the layout the detection configs
expect of COCO (``data_root``)::

    root/annotations/instances_train2017.json
    root/annotations/instances_val2017.json
    root/train2017/000000.jpg ...
    root/val2017/000000.jpg ...

Each image (random size in ``[min_size, max_size]``, noisy background) holds
1 to 3 filled shapes of the categories ``rectangle``, ``ellipse`` and
``triangle``, one per cell of a 2 × 2 grid so that they never overlap. Every
object has a POLYGON segmentation (an ellipse is a 32-gon), its bounding box
and the polygon's area. Used by the tests and by ``tools/make_tiny_coco.py``.
It needs only numpy and Pillow (no mmdet).
"""
import json
import os.path as osp
from pathlib import Path
from typing import Dict, List, Tuple, Union

import numpy as np
from PIL import Image, ImageDraw

CATEGORIES: Tuple[str, ...] = ('rectangle', 'ellipse', 'triangle')
SPLITS: Tuple[str, str] = ('train2017', 'val2017')


def _shape_polygon(kind: str, box: Tuple[float, float, float, float],
                   rng: np.random.Generator) -> List[Tuple[float, float]]:
    """Vertices (x, y) of a shape that fits in ``box`` = (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    if kind == 'rectangle':
        return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    if kind == 'ellipse':
        t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
        return [(float(cx + rx * np.cos(a)), float(cy + ry * np.sin(a))) for a in t]
    apex = float(rng.uniform(x0, x1))
    return [(apex, y0), (x1, y1), (x0, y1)]


def _polygon_area(points: List[Tuple[float, float]]) -> float:
    x, y = np.asarray(points).T
    return float(abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2)


def _make_split(root: Path, split: str, num_images: int, min_size: int,
                max_size: int, rng: np.random.Generator) -> Dict:
    (root / split).mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        width, height = (int(v) for v in rng.integers(min_size, max_size + 1, 2))
        background = rng.integers(0, 80, (height, width, 3), dtype=np.uint8)
        image = Image.fromarray(background)
        draw = ImageDraw.Draw(image)
        cells = rng.permutation(4)[:rng.integers(1, 4)]
        for cell in cells:
            cw, ch = width / 2, height / 2
            cx0, cy0 = (cell % 2) * cw, (cell // 2) * ch
            w, h = rng.uniform(0.55, 0.9) * cw, rng.uniform(0.55, 0.9) * ch
            x0, y0 = cx0 + rng.uniform(0, cw - w), cy0 + rng.uniform(0, ch - h)
            category = int(rng.integers(len(CATEGORIES)))
            points = _shape_polygon(CATEGORIES[category], (x0, y0, x0 + w, y0 + h), rng)
            colour = tuple(int(c) for c in rng.integers(120, 256, 3))
            draw.polygon(points, fill=colour)
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            annotations.append(
                dict(id=len(annotations) + 1, image_id=image_id,
                     category_id=category + 1,
                     segmentation=[[round(v, 2) for p in points for v in p]],
                     bbox=[round(min(xs), 2), round(min(ys), 2),
                           round(max(xs) - min(xs), 2), round(max(ys) - min(ys), 2)],
                     area=round(_polygon_area(points), 2), iscrowd=0))
        file_name = f'{image_id:06d}.jpg'
        image.save(root / split / file_name, quality=95)
        images.append(dict(id=image_id, file_name=file_name, width=width, height=height))
    return dict(
        images=images, annotations=annotations,
        categories=[dict(id=i + 1, name=name, supercategory='shape')
                    for i, name in enumerate(CATEGORIES)])


def make_tiny_coco(root: Union[str, Path],
                   num_train: int = 6,
                   num_val: int = 3,
                   min_size: int = 64,
                   max_size: int = 128,
                   seed: int = 0) -> Dict[str, str]:
    """Writes a tiny COCO-format instance-segmentation set under ``root``.

    Args:
        root (str | Path): Output folder (the configs' ``data_root``); created
            if needed. Existing files of the same names are overwritten.
        num_train (int): Training images. Defaults to 6.
        num_val (int): Validation images. Defaults to 3.
        min_size (int): Smallest image side in pixels. Defaults to 64.
        max_size (int): Largest image side in pixels. Defaults to 128.
        seed (int): Random seed. Defaults to 0.

    Returns:
        dict: ``{'train2017': json path, 'val2017': json path}``.

    Raises:
        ValueError: Non-positive counts, or sizes outside 32 <= min_size <=
            max_size (mmdet's COCO config drops images under 32 px).
    """
    if num_train < 1 or num_val < 1:
        raise ValueError('make_tiny_coco: num_train and num_val must be >= 1, '
                         f'got {num_train} and {num_val}')
    if not 32 <= min_size <= max_size:
        raise ValueError('make_tiny_coco: need 32 <= min_size <= max_size, got '
                         f'min_size={min_size}, max_size={max_size}')
    root = Path(root)
    (root / 'annotations').mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = {}
    for split, count in zip(SPLITS, (num_train, num_val)):
        coco = _make_split(root, split, count, min_size, max_size, rng)
        path = root / 'annotations' / f'instances_{split}.json'
        path.write_text(json.dumps(coco), encoding='utf-8')
        paths[split] = osp.normpath(str(path))
    return paths
