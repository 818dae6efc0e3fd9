"""Bad data: a missing data path and unreadable image files.

* A missing data root (mmpretrain ``CustomDataset``, the CIFAR-10 configs)
  fails when the Runner builds the train loop, before any iteration, with
  mmengine's ``FileNotFoundError`` naming the path.
* An unreadable image (truncated JPEG / PNG, garbage bytes named ``.jpg``,
  an empty file) under :class:`LoadImageFromFileOrSkip`:
  ``on_error='raise'`` gives :class:`UnreadableImageError` naming the file;
  ``on_error='skip'`` replaces the sample and counts the skip, and
  :class:`SkipCounterHook` logs the run's total (also with worker processes).
"""
import copy
import re
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from PIL import Image

import aemim_mm  # noqa: F401  (registers the components)
from aemim_mm.datasets import LoadImageFromFileOrSkip, UnreadableImageError
from aemim_mm.datasets.transforms import SKIPPED_KEY
from aemim_mm.engine import SkipCounterHook
from mmpretrain.registry import DATASETS, TRANSFORMS

from module_loader import load_tiny_models

REPO_ROOT = Path(__file__).resolve().parents[1]
IMG = 32


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmpretrain')


def _jpeg_bytes(seed: int, size: int = IMG) -> bytes:
    img = (np.random.RandomState(seed).rand(size, size, 3) * 255).astype(
        np.uint8)
    from io import BytesIO
    buf = BytesIO()
    Image.fromarray(img).save(buf, format='JPEG', quality=90)
    return buf.getvalue()


def _png_bytes(seed: int, size: int = IMG) -> bytes:
    img = (np.random.RandomState(seed).rand(size, size, 3) * 255).astype(
        np.uint8)
    from io import BytesIO
    buf = BytesIO()
    Image.fromarray(img).save(buf, format='PNG')
    return buf.getvalue()


#: Unreadable files, by how they are broken.
BAD_FILES: Dict[str, bytes] = {
    'truncated.jpg': _jpeg_bytes(100)[:-(len(_jpeg_bytes(100)) // 3)],
    'truncated_eoi.jpg': _jpeg_bytes(101)[:-2],  # only the end marker gone
    'garbage.jpg': b'this is not an image\n' * 20,
    'empty.jpg': b'',
    'truncated.png': _png_bytes(102)[:len(_png_bytes(102)) // 2],
}


def make_image_folder(root: Path, num_good: int,
                      bad: List[str]) -> Dict[str, Path]:
    """A class-folder data set ``root/train/a/*``: good JPEGs plus ``bad``.

    Returns:
        The paths of the bad files by name.
    """
    folder = root / 'train' / 'a'
    folder.mkdir(parents=True)
    for i in range(num_good):
        (folder / f'good_{i}.jpg').write_bytes(_jpeg_bytes(i))
    out = {}
    for name in bad:
        (folder / name).write_bytes(BAD_FILES[name])
        out[name] = folder / name
    return out


def build_dataset(root: Path, on_error: str, backend: str = 'cv2'):
    return DATASETS.build(
        dict(
            type='CustomDataset',
            data_root=str(root),
            data_prefix='train',
            with_label=False,
            pipeline=[
                dict(type='LoadImageFromFileOrSkip', on_error=on_error,
                     imdecode_backend=backend),
                dict(type='PackInputs',
                     meta_keys=('img_path', SKIPPED_KEY)),
            ]))


def index_of(dataset, path: Path) -> int:
    return [d['img_path'] for d in dataset.load_data_list()].index(str(path))


# --------------------------------------------------------------- missing path
@pytest.mark.parametrize('data_root, data_prefix, missing', [
    ('missing_root/', '', 'missing_root/'),
    ('missing_root', 'train', 'missing_root/train'),
])
def test_missing_data_root_names_the_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_root: str,
        data_prefix: str, missing: str) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths: nothing of that name here
    with pytest.raises(FileNotFoundError, match=re.escape(repr(missing))):
        DATASETS.build(
            dict(type='CustomDataset', data_root=data_root,
                 data_prefix=data_prefix, with_label=False, pipeline=[]))


def test_cifar10_config_missing_data_root_fails_before_training(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / 'no_cifar10_here'
    # the configs read CIFAR10_ROOT when the file is read
    monkeypatch.setenv('CIFAR10_ROOT', str(missing))
    cfg = Config.fromfile(
        str(REPO_ROOT / 'configs' / 'aemim_vit-t-p4_cifar10.py'))
    assert cfg.train_dataloader.dataset.data_root == str(missing)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    cfg.train_dataloader.pin_memory = False
    runner = Runner.from_cfg(cfg)
    steps = []
    runner.model.train_step = lambda *a, **k: steps.append(1)  # must not run
    with pytest.raises(FileNotFoundError,
                       match=re.escape(repr(str(missing / 'train')))):
        runner.train()
    assert steps == []  # no training step ran
    assert not list((tmp_path / 'work').glob('*.pth'))


# --------------------------------------------------------------- raise policy
@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
@pytest.mark.parametrize('bad', sorted(BAD_FILES))
def test_unreadable_image_raises_naming_the_file(tmp_path: Path, bad: str,
                                                 backend: str) -> None:
    paths = make_image_folder(tmp_path, num_good=2, bad=[bad])
    dataset = build_dataset(tmp_path, 'raise', backend)
    with pytest.raises(UnreadableImageError,
                       match=r"cannot read image '" +
                       re.escape(str(paths[bad])) + r"' \(.+\).*on_error"):
        dataset[index_of(dataset, paths[bad])]


def test_good_images_load_with_an_empty_skip_list(tmp_path: Path) -> None:
    make_image_folder(tmp_path, num_good=2, bad=[])
    dataset = build_dataset(tmp_path, 'raise')
    for i in range(len(dataset)):
        sample = dataset[i]
        assert tuple(sample['inputs'].shape) == (3, IMG, IMG)
        assert sample['data_samples'].metainfo[SKIPPED_KEY] == []


def test_missing_file_raises_naming_it(tmp_path: Path) -> None:
    load = TRANSFORMS.build(dict(type='LoadImageFromFileOrSkip'))
    path = str(tmp_path / 'gone.jpg')
    with pytest.raises(UnreadableImageError,
                       match=re.escape(repr(path)) + r'.*FileNotFoundError'):
        load(dict(img_path=path))


# ---------------------------------------------------------------- skip policy
@pytest.mark.parametrize('bad', ['truncated.jpg', 'garbage.jpg'])
def test_skip_replaces_the_sample_and_counts(
        tmp_path: Path, bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = make_image_folder(tmp_path, num_good=3, bad=[bad])
    dataset = build_dataset(tmp_path, 'skip')
    load = dataset.pipeline.transforms[0]
    assert isinstance(load, LoadImageFromFileOrSkip)
    good = index_of(dataset, paths[bad].parent / 'good_1.jpg')
    # BaseDataset re-fetches a random index; make it a known good one
    monkeypatch.setattr(dataset, '_rand_another', lambda: good)

    sample = dataset[index_of(dataset, paths[bad])]

    meta = sample['data_samples'].metainfo
    assert meta['img_path'] == str(paths[bad].parent / 'good_1.jpg')
    assert meta[SKIPPED_KEY] == [str(paths[bad])]
    assert load.num_skipped == 1
    # reported once: the next sample carries no skip
    assert dataset[good]['data_samples'].metainfo[SKIPPED_KEY] == []
    assert load.num_skipped == 1


def _runner_cfg(root: Path, work_dir: Path, num_workers: int,
                max_skipped=None) -> dict:
    tiny = load_tiny_models()
    return dict(
        model=dict(type='AdversarialMIMWrapper', algorithm=tiny.mae_cfg(),
                   attack=dict(type='FeatureDistancePGD', eps=2, steps=1)),
        work_dir=str(work_dir),
        default_scope='mmpretrain',
        train_dataloader=dict(
            batch_size=4,
            num_workers=num_workers,
            persistent_workers=False,
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='default_collate'),
            dataset=dict(
                type='CustomDataset',
                data_root=str(root),
                data_prefix='train',
                with_label=False,
                pipeline=[
                    dict(type='LoadImageFromFileOrSkip', on_error='skip'),
                    dict(type='PackInputs'),  # the hook adds the key
                ])),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-4)),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=1),
            checkpoint=dict(type='CheckpointHook', interval=1)),
        custom_hooks=[dict(type='SkipCounterHook', max_skipped=max_skipped)],
        log_processor=dict(window_size=1),
        env_cfg=dict(mp_cfg=dict(mp_start_method='fork'),
                     dist_cfg=dict(backend='gloo')),
        randomness=dict(seed=0))


@pytest.mark.parametrize('num_workers', [0, 2])
def test_run_skips_counts_and_logs(tmp_path: Path, num_workers: int) -> None:
    bad = ['truncated.jpg', 'garbage.jpg']
    paths = make_image_folder(tmp_path / 'data', num_good=6, bad=bad)
    runner = Runner.from_cfg(
        Config(_runner_cfg(tmp_path / 'data', tmp_path / 'work',
                           num_workers)))
    runner.train()
    assert runner.iter == 2  # 8 samples, batch 4: the run went through

    hook = next(h for h in runner.hooks if isinstance(h, SkipCounterHook))
    log = Path(runner.log_dir, f'{runner.timestamp}.log').read_text()
    # ground truth: every skip event (in the workers too) logs a warning
    events = re.findall(r"skipped unreadable image '([^']+)'", log)
    assert sorted(set(events)) == sorted(str(p) for p in paths.values())
    assert hook.total == len(events) >= 2
    assert f'{hook.total} unreadable image(s) skipped in total' in log
    assert re.search(r'skipped_images: \d', log)  # the logged scalar
    assert runner.message_hub.get_scalar(
        'train/skipped_images').current() == hook.total


def test_run_stops_past_max_skipped(tmp_path: Path) -> None:
    make_image_folder(tmp_path / 'data', num_good=6, bad=['garbage.jpg'])
    runner = Runner.from_cfg(
        Config(_runner_cfg(tmp_path / 'data', tmp_path / 'work', 0,
                           max_skipped=0)))
    with pytest.raises(RuntimeError,
                       match=r'more than max_skipped=0.*garbage\.jpg'):
        runner.train()


def test_skip_total_continues_on_resume(tmp_path: Path) -> None:
    make_image_folder(tmp_path / 'data', num_good=6, bad=['garbage.jpg'])
    cfg = _runner_cfg(tmp_path / 'data', tmp_path / 'work', 0)
    first = Runner.from_cfg(Config(copy.deepcopy(cfg)))
    first.train()
    before = next(h for h in first.hooks
                  if isinstance(h, SkipCounterHook)).total
    assert before >= 1
    cfg.update(train_cfg=dict(by_epoch=True, max_epochs=2), resume=True,
               experiment_name='resumed')
    second = Runner.from_cfg(Config(cfg))
    second.train()
    after = next(h for h in second.hooks
                 if isinstance(h, SkipCounterHook)).total
    assert after >= before + 1  # epoch 2 skipped the file again, on top
