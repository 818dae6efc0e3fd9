"""Generate corrupted copies of an image-folder data set (CIFAR-10-C-like).

The corruptions are those of ImageNet-C, from the PyPI package
``imagecorruptions-imaug`` (module ``imagecorruptions``; a maintained fork of
``imagecorruptions`` that works with current numpy / scikit-image): 15
standard + 4 extra corruptions (``get_corruption_names('all')``), severities
1..5. Its parameters are ImageNet-C's, so on 32 px images the severities are
not those of Hendrycks' published CIFAR-10-C: the result is "CIFAR-10-C-like".

Output layout: ``OUT/<corruption>/<severity>/<class>/<stem>.png`` and the
uncorrupted images in ``OUT/clean/<class>/<stem>.png`` (PNG: no extra JPEG
artefacts), plus ``OUT/meta.json``.
"""
import json
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from .progress import Progress

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.webp')


def corruption_names(subset: str = 'all') -> List[str]:
    """Corruption names of ``imagecorruptions`` (``'all'``: 19)."""
    from imagecorruptions import get_corruption_names
    return list(get_corruption_names(subset))


def corrupt_image(image: np.ndarray, corruption: str,
                  severity: int) -> np.ndarray:
    """One corrupted copy of an RGB uint8 (H, W, 3) image, same shape/dtype.

    Raises:
        ValueError: On an unknown corruption or a severity outside 1..5.
    """
    from imagecorruptions import corrupt
    allowed = corruption_names('all')
    if corruption not in allowed:
        raise ValueError(f'corruption must be one of {allowed}, got '
                         f'{corruption!r}')
    if severity not in (1, 2, 3, 4, 5):
        raise ValueError(f'severity must be 1..5, got {severity!r}')
    out = corrupt(image, corruption_name=corruption, severity=severity)
    out = np.clip(np.asarray(out, dtype=np.float64), 0, 255)
    out = np.uint8(np.round(out)) if out.dtype != np.uint8 else out
    return out[:image.shape[0], :image.shape[1]]


def list_class_images(src: str, max_per_class: Optional[int] = None
                      ) -> List[Tuple[str, str]]:
    """``(class, path)`` of the images of ``src/<class>/``, sorted.

    Raises:
        FileNotFoundError: If ``src`` is not a folder or has no images.
    """
    if not osp.isdir(src):
        raise FileNotFoundError(f'source folder not found: {src}')
    items = []
    for cls in sorted(d for d in os.listdir(src)
                      if osp.isdir(osp.join(src, d))):
        files = sorted(f for f in os.listdir(osp.join(src, cls))
                       if f.lower().endswith(IMG_EXTENSIONS))
        if max_per_class is not None:
            files = files[:max_per_class]
        items += [(cls, osp.join(src, cls, f)) for f in files]
    if not items:
        raise FileNotFoundError(f'no images in class folders of {src}')
    return items


def make_corrupted_set(src: str, out: str,
                       corruptions: Optional[Sequence[str]] = None,
                       severities: Sequence[int] = (1, 2, 3, 4, 5),
                       max_per_class: Optional[int] = None, seed: int = 0,
                       log_interval_s: float = 10.0) -> Dict[str, object]:
    """Write corrupted copies of ``src/<class>/*`` under ``out``.

    Args:
        src: Class folders of the clean images (e.g. ``data/cifar10/test``).
        out: Output root (see the module doc for the layout).
        corruptions: Names (default: all 19).
        severities: Severities in 1..5.
        max_per_class: First N images of each class (sorted); ``None``: all.
        seed: numpy seed (the noise corruptions are random).
        log_interval_s: Least seconds between two progress lines.

    Returns:
        The metadata written to ``out/meta.json``.

    Raises:
        ValueError: On unknown corruptions, bad severities or max_per_class.
        FileNotFoundError: If ``src`` has no class folders with images.
    """
    allowed = corruption_names('all')
    corruptions = list(corruptions or allowed)
    bad = [c for c in corruptions if c not in allowed]
    if bad:
        raise ValueError(f'unknown corruptions {bad}; allowed: {allowed}')
    bad_s = [s for s in severities if s not in (1, 2, 3, 4, 5)]
    if bad_s or not severities:
        raise ValueError(f'severities must be in 1..5, got {list(severities)}')
    if max_per_class is not None and max_per_class < 1:
        raise ValueError(f'max_per_class must be >= 1, got {max_per_class}')
    items = list_class_images(src, max_per_class)

    np.random.seed(seed)
    start = time.time()
    progress = Progress(len(items) * len(corruptions) * len(severities),
                        'corrupting (image x corruption x severity)',
                        log_interval_s)
    for cls, path in items:
        image = np.asarray(Image.open(path).convert('RGB'))
        stem = osp.splitext(osp.basename(path))[0]
        _save(image, osp.join(out, 'clean', cls, stem + '.png'))
        for corruption in corruptions:
            for severity in severities:
                _save(corrupt_image(image, corruption, severity),
                      osp.join(out, corruption, str(severity), cls,
                               stem + '.png'))
                progress.step()
    from importlib.metadata import version
    meta = dict(
        source=osp.abspath(src), images=len(items),
        classes=sorted({c for c, _ in items}), max_per_class=max_per_class,
        corruptions=corruptions, severities=list(severities), seed=seed,
        generator=f'imagecorruptions-imaug {version("imagecorruptions-imaug")}',
        seconds=round(time.time() - start, 1))
    with open(osp.join(out, 'meta.json'), 'w') as f:
        json.dump(meta, f, indent=2)
    return meta


def _save(image: np.ndarray, path: str) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    Image.fromarray(image).save(path)
