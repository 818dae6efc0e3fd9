"""Write a tiny COCO-format instance-segmentation set of drawn shapes.

Usage::

    python tools/make_tiny_coco.py [--out data/tiny_coco] [--num-train 6]
        [--num-val 3] [--min-size 64] [--max-size 128] [--seed 0]

The layout is COCO's (``annotations/instances_{train,val}2017.json``,
``train2017/``, ``val2017/``), with 3 categories (rectangle, ellipse,
triangle) and polygon masks, so the detection configs run on it with
``COCO_ROOT=OUT``; see ``docs/downstream.md`` ("COCO Mask R-CNN").
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

# ``python tools/make_tiny_coco.py`` puts tools/ (not the repository root) on
# sys.path; add the root so that ``aemim_mm`` imports without installation.
_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from aemim_mm.det.tiny_coco import CATEGORIES, make_tiny_coco  # noqa: E402


def main(argv: Optional[List[str]] = None) -> None:
    """Parse the arguments and write the set."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default='data/tiny_coco', help='output folder')
    parser.add_argument('--num-train', type=int, default=6)
    parser.add_argument('--num-val', type=int, default=3)
    parser.add_argument('--min-size', type=int, default=64)
    parser.add_argument('--max-size', type=int, default=128)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    paths = make_tiny_coco(
        args.out, num_train=args.num_train, num_val=args.num_val,
        min_size=args.min_size, max_size=args.max_size, seed=args.seed)
    for split, path in paths.items():
        print(f'{split}: {path}')
    print(f'categories: {", ".join(CATEGORIES)}')


if __name__ == '__main__':
    main()
