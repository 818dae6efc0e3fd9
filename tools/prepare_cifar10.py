#!/usr/bin/env python
"""Extract the CIFAR-10 JPEG archive for the CIFAR-10 configs.

    python tools/prepare_cifar10.py                     # defaults below
    python tools/prepare_cifar10.py --src PATH --out DIR

Reads ``../shared/data/cifar10_jpg.tar.gz`` (relative to the repository root)
and extracts it into ``data/cifar10`` (gitignored): ``train/<class>/*.jpg``
(50,000 images) and ``test/<class>/*.jpg`` (10,000). The archive's sha256 is
checked before extraction. Running it again when the images are already there
does nothing. Never commit the extracted data.
"""
import argparse
import hashlib
import os
import os.path as osp
import sys
import tarfile

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_SRC = osp.join(REPO_ROOT, '..', 'shared', 'data', 'cifar10_jpg.tar.gz')
DEFAULT_OUT = osp.join(REPO_ROOT, 'data', 'cifar10')
SHA256 = 'd34c68f61cca57aa9144c8f25bda427abb9921bd642d5857a2fc1a6b4416f965'
EXPECTED_COUNTS = {'train': 50000, 'test': 10000}
IMG_EXTS = ('.jpg', '.jpeg', '.png')
DONE_MARKER = '.prepared'


def parse_args(argv=None):
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


def sha256sum(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def count_images(folder):
    n = 0
    for _, _, files in os.walk(folder):
        n += sum(f.lower().endswith(IMG_EXTS) for f in files)
    return n


def is_prepared(out):
    """The images are there: the marker we write, or the full counts."""
    if osp.isfile(osp.join(out, DONE_MARKER)):
        return True
    return all(
        osp.isdir(osp.join(out, split))
        and count_images(osp.join(out, split)) == n
        for split, n in EXPECTED_COUNTS.items())


def safe_members(tar, out):
    """Regular files and folders that stay inside ``out``."""
    root = osp.realpath(out)
    for member in tar.getmembers():
        target = osp.realpath(osp.join(out, member.name))
        if not (target == root or target.startswith(root + os.sep)):
            raise RuntimeError(f'refusing to extract {member.name!r}: it '
                               f'would land outside {out}')
        if member.isfile() or member.isdir():
            yield member


def main(argv=None):
    args = parse_args(argv)
    src, out = osp.abspath(args.src), osp.abspath(args.out)

    if is_prepared(out):
        print(f'CIFAR-10 already prepared in {out}: nothing to do.')
        return 0
    if not osp.isfile(src):
        print(f'error: CIFAR-10 archive not found: {src}\n'
              f'Pass its location with --src.', file=sys.stderr)
        return 1
    if not args.no_verify:
        print(f'Checking sha256 of {src} ...')
        digest = sha256sum(src)
        if digest != SHA256:
            print(f'error: sha256 mismatch for {src}:\n'
                  f'  expected {SHA256}\n  got      {digest}\n'
                  f'(use --no-verify to extract it anyway)', file=sys.stderr)
            return 1

    os.makedirs(out, exist_ok=True)
    print(f'Extracting {src} into {out} ...')
    with tarfile.open(src, 'r:gz') as tar:
        members = list(safe_members(tar, out))
        if hasattr(tarfile, 'data_filter'):  # Python >= 3.11.4 / 3.12
            tar.extractall(out, members=members, filter='data')
        else:
            tar.extractall(out, members=members)

    counts = {s: count_images(osp.join(out, s)) for s in EXPECTED_COUNTS}
    print('Extracted: ' + ', '.join(f'{s} {n} images'
                                    for s, n in counts.items()))
    if counts != EXPECTED_COUNTS:
        print(f'warning: expected {EXPECTED_COUNTS}', file=sys.stderr)
    else:
        with open(osp.join(out, DONE_MARKER), 'w') as f:
            f.write(f'{osp.basename(src)} sha256 {SHA256}\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
