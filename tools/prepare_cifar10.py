#!/usr/bin/env python
"""Extract the CIFAR-10 JPEG archive for the CIFAR-10 configs.

    python tools/prepare_cifar10.py                     # defaults below
    python tools/prepare_cifar10.py --src PATH --out DIR

Reads ``../shared/data/cifar10_jpg.tar.gz`` (relative to the repository root)
and extracts it into ``data/cifar10`` (gitignored): ``train/<class>/*.jpg``
(50,000 images) and ``test/<class>/*.jpg`` (10,000). The archive's sha256 is
checked before extraction. Running it again when the images are already there
does nothing. Never commit the extracted data. The work is
:func:`aemim_mm.datasets.cifar10_archive.prepare_cifar10`.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

# ``python tools/prepare_cifar10.py`` puts tools/ on sys.path, not the root.
_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from aemim_mm.datasets.cifar10_archive import (  # noqa: E402
    DEFAULT_OUT, DEFAULT_SRC, DONE_MARKER, prepare_cifar10)

__all__ = ['DEFAULT_OUT', 'DEFAULT_SRC', 'DONE_MARKER', 'main']


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Extract CIFAR-10 (JPEG, ImageNet-style folders) for the '
        'aemim_mm CIFAR-10 configs.')
    parser.add_argument(
        '--src', default=DEFAULT_SRC,
        help='the cifar10_jpg.tar.gz archive (default: %(default)s)')
    parser.add_argument(
        '--out', default=DEFAULT_OUT,
        help='where train/ and test/ go; the configs read data/cifar10 '
        'relative to the repository root (default: %(default)s)')
    parser.add_argument(
        '--no-verify', action='store_true',
        help='skip the sha256 check of the archive (for a re-packed copy)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the tool; 0 on success, 1 (with the reason on stderr) if not."""
    args = parse_args(argv)
    try:
        prepare_cifar10(args.src, args.out, verify=not args.no_verify)
    except (FileNotFoundError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
