"""AdvCL's pseudo-labels (aemim_mm/datasets/pseudo_labels.py) and
PseudoLabelHook: k-means of an encoder's features, computed once with
progress, cached by checkpoint, data and settings, a mismatching cache
refused; the hook hands them to the model before the first iteration."""
import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import aemim_mm  # noqa: F401
from aemim_mm.datasets import pseudo_labels as pl
from aemim_mm.engine.hooks import PseudoLabelHook
from mmpretrain.registry import MODELS

BACKBONE = dict(type='ResNet_CIFAR', depth=18, stem_channels=8,
                base_channels=8)
#: a tiny SimCLR on that encoder (as tests/test_models/tiny_ssl.py's)
SIMCLR = dict(
    type='SimCLR', backbone=BACKBONE,
    neck=dict(type='NonLinearNeck', in_channels=64, hid_channels=32,
              out_channels=16, num_layers=2, with_avg_pool=True,
              norm_cfg=dict(type='BN1d')),
    head=dict(type='ContrastiveHead', loss=dict(type='CrossEntropyLoss'),
              temperature=0.5),
    data_preprocessor=dict(type='SelfSupDataPreprocessor',
                           mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], to_rgb=True))


@pytest.fixture
def images(tmp_path) -> Path:
    """12 images in two visibly different groups (dark, bright)."""
    folder = tmp_path / 'images' / 'train'
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(12):
        base = 30 if i % 2 else 220
        pixels = np.clip(base + rng.integers(-20, 20, (16, 16, 3)), 0, 255)
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f'{i:02d}.png')
    return folder


def _checkpoint(path: Path, seed: int = 0) -> str:
    torch.manual_seed(seed)
    backbone = MODELS.build(copy.deepcopy(BACKBONE))
    torch.save(dict(state_dict={'backbone.' + k: v for k, v in
                                backbone.state_dict().items()}), path)
    return str(path)


def _spec(checkpoint: str, **kwargs) -> pl.PseudoLabelSpec:
    return pl.PseudoLabelSpec(checkpoint=checkpoint, backbone=BACKBONE,
                              ks=(2, 3), image_size=16, batch_size=5,
                              **kwargs)


def _paths(folder: Path):
    return sorted(str(p) for p in folder.glob('*.png'))


def test_labels_are_computed_with_progress_cached_and_read(images, tmp_path,
                                                           capsys,
                                                           monkeypatch):
    ckpt = _checkpoint(tmp_path / 'encoder.pth')
    cache = tmp_path / 'cache' / 'labels.pth'
    labels = pl.load_or_compute_pseudo_labels(_paths(images), _spec(ckpt),
                                              str(cache))
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert '12/12' in out and 'ETA' in out           # mmengine's ProgressBar
    assert labels.shape == (12, 2) and labels.dtype == torch.int64
    assert set(labels[:, 0].tolist()) <= {0, 1}
    assert set(labels[:, 1].tolist()) <= {0, 1, 2}
    # the two groups separate at k = 2 (features of a random encoder still
    # tell dark from bright)
    assert len(set(labels[0::2, 0].tolist())) == 1
    assert labels[0, 0] != labels[1, 0]
    assert cache.is_file() and not Path(str(cache) + '.tmp').exists()

    monkeypatch.setattr(pl, 'compute_pseudo_labels', lambda *a, **k: (
        pytest.fail('recomputed although cached')))
    again = pl.load_or_compute_pseudo_labels(_paths(images), _spec(ckpt),
                                             str(cache))
    assert torch.equal(again, labels)


@pytest.mark.parametrize('change, field', [
    ('checkpoint', 'checkpoint_sha256'), ('data', 'data_sha256'),
    ('settings', 'settings')])
def test_a_cache_that_does_not_match_is_refused(images, tmp_path, change,
                                                field):
    ckpt = _checkpoint(tmp_path / 'encoder.pth')
    cache = str(tmp_path / 'labels.pth')
    pl.load_or_compute_pseudo_labels(_paths(images), _spec(ckpt), cache)
    paths, spec = _paths(images), _spec(ckpt)
    if change == 'checkpoint':
        spec = _spec(_checkpoint(tmp_path / 'other.pth', seed=1))
    elif change == 'data':
        Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(
            images / '99.png')
        paths = _paths(images)
    else:
        spec = _spec(ckpt, seed=1)
    with pytest.raises(pl.PseudoLabelCacheError,
                       match=rf"labels\.pth' does not match this run: its "
                       rf'{field}.* differ.*Delete it to recompute'):
        pl.load_or_compute_pseudo_labels(paths, spec, cache)


def test_bad_inputs_are_refused(images, tmp_path):
    with pytest.raises(FileNotFoundError, match='pseudo-label checkpoint '
                       'not found'):
        pl.load_or_compute_pseudo_labels(_paths(images),
                                         _spec(str(tmp_path / 'nope.pth')),
                                         str(tmp_path / 'c.pth'))
    ckpt = _checkpoint(tmp_path / 'encoder.pth')
    spec = pl.PseudoLabelSpec(checkpoint=ckpt, backbone=BACKBONE, ks=(50, ),
                              image_size=16)
    with pytest.raises(ValueError, match=r'ks \[50\] exceed the number of '
                       r'images \(12\)'):
        pl.load_or_compute_pseudo_labels(_paths(images), spec,
                                         str(tmp_path / 'c.pth'))
    wrong = dict(BACKBONE, depth=34)
    with pytest.raises(pl.PseudoLabelCacheError, match='does not fit the '
                       'backbone ResNet_CIFAR'):
        pl.load_or_compute_pseudo_labels(
            _paths(images), pl.PseudoLabelSpec(checkpoint=ckpt,
                                               backbone=wrong, ks=(2, ),
                                               image_size=16),
            str(tmp_path / 'c.pth'))


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(checkpoint='missing.pth'), FileNotFoundError,
     'PseudoLabelHook: checkpoint not found'),
    (dict(ks=(1, 2)), ValueError, r'ks must be distinct ints >= 2'),
    (dict(ks=(2, 2)), ValueError, r'ks must be distinct ints >= 2'),
    (dict(backbone='ResNet'), ValueError, r'backbone must be a backbone '
     r'config dict'),
    (dict(image_size=0), ValueError, r'image_size must be an int >= 1'),
])
def test_hook_refuses_bad_options_when_built(tmp_path, kwargs, error, match):
    args = dict(checkpoint=_checkpoint(tmp_path / 'e.pth'),
                backbone=BACKBONE, ks=(2, 3))
    args.update(kwargs)
    with pytest.raises(error, match=match):
        PseudoLabelHook(**args)


def test_hook_gives_the_model_its_labels_before_training(images, tmp_path):
    """Through mmengine's Runner: AdvCL (tiny) trains two iterations with
    the labels the hook computed for its dataset, cached in the work dir."""
    from mmengine.runner import Runner

    ckpt = _checkpoint(tmp_path / 'encoder.pth')
    view = [dict(type='RandomResizedCrop', scale=16, backend='pillow')]
    runner = Runner(
        model=dict(type='AdvCL', algorithm=copy.deepcopy(SIMCLR), ks=(2, 3)),
        work_dir=str(tmp_path / 'work'),
        default_scope='mmpretrain',
        train_dataloader=dict(
            batch_size=4, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='default_collate'),
            dataset=dict(type='CustomDataset', data_root=str(images.parent),
                         data_prefix='train', with_label=False,
                         pipeline=[dict(type='LoadImageFromFile'),
                                   dict(type='MultiView', num_views=3,
                                        transforms=[view]),
                                   dict(type='PackInputs')])),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=2),
        custom_hooks=[dict(type='PseudoLabelHook', checkpoint=ckpt,
                           backbone=BACKBONE, ks=(2, 3), image_size=16)],
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1)))
    runner.train()
    assert runner.iter == 2
    model = runner.model
    assert model.pseudo_labels.shape == (12, 2)
    cached = torch.load(tmp_path / 'work' / 'pseudo_labels.pth',
                        weights_only=True)
    assert torch.equal(cached['labels'], model.pseudo_labels)
    assert np.isfinite(runner.message_hub.get_scalar('train/loss_ce')
                       .current())


def test_hook_refuses_a_model_without_pseudo_labels(images, tmp_path):
    from types import SimpleNamespace
    hook = PseudoLabelHook(checkpoint=_checkpoint(tmp_path / 'e.pth'),
                           backbone=BACKBONE, ks=(2, 3))
    runner = SimpleNamespace(model=torch.nn.Linear(1, 1))
    with pytest.raises(TypeError, match=r'Linear takes no pseudo-labels'):
        hook.before_train(runner)
