"""The CIFAR-10 JPEG archive: check and extract it for the CIFAR-10 configs.

The archive (``../shared/data/cifar10_jpg.tar.gz`` beside the repository)
holds ImageNet-style folders: ``train/<class>/*.jpg`` (50,000 images) and
``test/<class>/*.jpg`` (10,000). :func:`prepare_cifar10` checks its sha256
and extracts it into ``data/cifar10`` (gitignored), once: a second call finds
the images and does nothing. ``tools/prepare_cifar10.py`` is its command
line; the mini-reproduction and ``tools/make_cifar10c.py`` call it when the
images are missing.
"""
import hashlib
import os
import os.path as osp
import sys
import tarfile
from typing import Dict, Iterator


REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_SRC = osp.join(REPO_ROOT, '..', 'shared', 'data', 'cifar10_jpg.tar.gz')
DEFAULT_OUT = osp.join(REPO_ROOT, 'data', 'cifar10')
SHA256 = 'd34c68f61cca57aa9144c8f25bda427abb9921bd642d5857a2fc1a6b4416f965'
EXPECTED_COUNTS = {'train': 50000, 'test': 10000}
IMG_EXTS = ('.jpg', '.jpeg', '.png')
DONE_MARKER = '.prepared'


def sha256sum(path: str, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def count_images(folder: str) -> int:
    """Image files (by extension) below ``folder``."""
    n = 0
    for _, _, files in os.walk(folder):
        n += sum(f.lower().endswith(IMG_EXTS) for f in files)
    return n


def is_prepared(out: str) -> bool:
    """The images are there: the marker we write, or the full counts."""
    if osp.isfile(osp.join(out, DONE_MARKER)):
        return True
    return all(
        osp.isdir(osp.join(out, split))
        and count_images(osp.join(out, split)) == n
        for split, n in EXPECTED_COUNTS.items())


def safe_members(tar: tarfile.TarFile, out: str) -> Iterator[tarfile.TarInfo]:
    """Regular files and folders that stay inside ``out``.

    Raises:
        RuntimeError: For a member that would land outside ``out``.
    """
    root = osp.realpath(out)
    for member in tar.getmembers():
        target = osp.realpath(osp.join(out, member.name))
        if not (target == root or target.startswith(root + os.sep)):
            raise RuntimeError(f'refusing to extract {member.name!r}: it '
                               f'would land outside {out}')
        if member.isfile() or member.isdir():
            yield member


def prepare_cifar10(src: str = DEFAULT_SRC,
                    out: str = DEFAULT_OUT,
                    verify: bool = True) -> Dict[str, int]:
    """Extract the CIFAR-10 archive ``src`` into ``out``, once.

    Args:
        src: The ``cifar10_jpg.tar.gz`` archive.
        out: Where ``train/`` and ``test/`` go.
        verify: Check the archive's sha256 first (off for a re-packed copy).

    Returns:
        Images per split found in ``out`` (the expected counts when it was
        already prepared).

    Raises:
        FileNotFoundError: If ``src`` is missing (and ``out`` not prepared).
        ValueError: If ``src``'s sha256 is not the archive's; nothing is
            extracted then.
    """
    src, out = osp.abspath(src), osp.abspath(out)
    if is_prepared(out):
        print(f'CIFAR-10 already prepared in {out}: nothing to do.')
        return dict(EXPECTED_COUNTS)
    if not osp.isfile(src):
        raise FileNotFoundError(f'CIFAR-10 archive not found: {src}\n'
                                f'Pass its location with --src.')
    if verify:
        print(f'Checking sha256 of {src} ...')
        digest = sha256sum(src)
        if digest != SHA256:
            raise ValueError(f'sha256 mismatch for {src}:\n'
                             f'  expected {SHA256}\n  got      {digest}\n'
                             f'(use --no-verify to extract it anyway)')

    os.makedirs(out, exist_ok=True)
    print(f'Extracting {src} into {out} ...', flush=True)
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
    return counts
