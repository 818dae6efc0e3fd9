"""Tests of :mod:`aemim_mm.datasets.cifar10_archive` (tiny archives)."""
import io
import tarfile
from pathlib import Path

import pytest

from aemim_mm.datasets import cifar10_archive as archive


def _tarball(tmp_path: Path, members) -> Path:
    """A .tar.gz with ``members``: (name, bytes) files."""
    path = tmp_path / 'cifar10_jpg.tar.gz'
    with tarfile.open(path, 'w:gz') as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _images(split: str, per_class: int):
    return [(f'{split}/class{c}/{i}.jpg', b'\xff\xd8fake')
            for c in range(2) for i in range(per_class)]


def test_extracts_once_and_counts(tmp_path: Path):
    src = _tarball(tmp_path, _images('train', 3) + _images('test', 1))
    out = tmp_path / 'out'
    counts = archive.prepare_cifar10(str(src), str(out), verify=False)
    assert counts == {'train': 6, 'test': 2}
    assert len(list((out / 'train' / 'class1').glob('*.jpg'))) == 3
    # not the full 50,000 / 10,000: no marker, so not "prepared"
    assert not (out / archive.DONE_MARKER).exists()
    assert not archive.is_prepared(str(out))


def test_full_counts_write_the_marker(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(archive, 'EXPECTED_COUNTS', {'train': 4, 'test': 2})
    src = _tarball(tmp_path, _images('train', 2) + _images('test', 1))
    out = tmp_path / 'out'
    archive.prepare_cifar10(str(src), str(out), verify=False)
    assert (out / archive.DONE_MARKER).is_file()
    src.unlink()    # a second call finds the images: no archive needed
    assert archive.prepare_cifar10(str(src), str(out)) == {'train': 4,
                                                           'test': 2}


@pytest.mark.parametrize('case,error,match', [
    ('missing', FileNotFoundError, 'archive not found: .*nope.tar.gz'),
    ('sha256', ValueError, 'sha256 mismatch'),
    ('outside', RuntimeError, "refusing to extract '../evil.jpg'"),
])
def test_bad_archives_fail_before_extracting(tmp_path: Path, case, error,
                                             match):
    if case == 'missing':
        src = tmp_path / 'nope.tar.gz'
    else:
        src = _tarball(tmp_path, _images('train', 1) + (
            [('../evil.jpg', b'x')] if case == 'outside' else []))
    out = tmp_path / 'out'
    with pytest.raises(error, match=match):
        archive.prepare_cifar10(str(src), str(out),
                                verify=case == 'sha256')
    assert not (out / 'train').exists()
    assert not (tmp_path / 'evil.jpg').exists()
