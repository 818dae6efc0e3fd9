#!/usr/bin/env python
"""Generate a CIFAR-10-C-like test set offline (imagecorruptions-imaug).

Usage::

    python tools/make_cifar10c.py [--src data/cifar10/test]
        [--out data/cifar10_c] [--max-per-class N]
        [--corruptions NAME ...] [--severities 1 2 3 4 5] [--seed 0]

19 corruptions (``get_corruption_names('all')``) x 5 severities of the
CIFAR-10 test split. When the default ``--src`` is missing, it is extracted
first with ``tools/prepare_cifar10.py`` (from ../shared/data/
cifar10_jpg.tar.gz). Output: OUT/<corruption>/<severity>/<class>/*.png,
OUT/clean/<class>/*.png and OUT/meta.json. Progress and ETA are logged.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from mmengine.logging import print_log  # noqa: E402

from aemim_mm.datasets.cifar10_archive import prepare_cifar10  # noqa: E402
from aemim_mm.evaluation.corruption import (corruption_names,  # noqa: E402
                                            make_corrupted_set)

DEFAULT_SRC = osp.join(_REPO_ROOT, 'data', 'cifar10', 'test')
DEFAULT_OUT = osp.join(_REPO_ROOT, 'data', 'cifar10_c')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description='Make a CIFAR-10-C-like set with imagecorruptions-imaug')
    parser.add_argument('--src', default=DEFAULT_SRC,
                        help='class folders of the clean test images '
                        '(default: %(default)s)')
    parser.add_argument('--out', default=DEFAULT_OUT,
                        help='output root (default: %(default)s)')
    parser.add_argument('--max-per-class', type=int, default=None,
                        help='first N images of each class (default: all '
                        '1000)')
    parser.add_argument('--corruptions', nargs='+', default=None,
                        help='default: all 19 of imagecorruptions')
    parser.add_argument('--severities', nargs='+', type=int,
                        default=[1, 2, 3, 4, 5])
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    if args.corruptions:
        allowed = corruption_names('all')
        bad = [c for c in args.corruptions if c not in allowed]
        if bad:
            parser.error(f'unknown corruptions {bad}; allowed: {allowed}')
    if any(s not in range(1, 6) for s in args.severities):
        parser.error(f'--severities must be in 1..5, got {args.severities}')
    if args.max_per_class is not None and args.max_per_class < 1:
        parser.error('--max-per-class must be >= 1')
    return args


def main(argv: Optional[List[str]] = None) -> dict:
    """Generate the corrupted set."""
    args = parse_args(argv)
    if not osp.isdir(args.src):
        if osp.abspath(args.src) != DEFAULT_SRC:
            raise SystemExit(f'error: source folder not found: {args.src}')
        print_log(f'{args.src} missing: extracting CIFAR-10 first',
                  logger='current')
        try:
            prepare_cifar10()
        except (FileNotFoundError, ValueError) as err:
            raise SystemExit(f'error: {err}')
    meta = make_corrupted_set(args.src, args.out, args.corruptions,
                              args.severities, args.max_per_class, args.seed)
    print_log(
        f'wrote {meta["images"]} images x {len(meta["corruptions"])} '
        f'corruptions x {len(meta["severities"])} severities to {args.out} '
        f'in {meta["seconds"]} s', logger='current')
    return meta


if __name__ == '__main__':
    main()
