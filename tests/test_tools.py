"""Tests of tools/train.py, tools/test.py and tools/dist_train.sh on CPU.

The tools run as subprocesses, as a user runs them. The config under test is
the one fixture ``base_config``; each test writes a small config inheriting it
that only shrinks the run (a few iterations of ``IterBasedTrainLoop``, batch
2, no workers, data from a handful of random PNG files).
"""
import os
import os.path as osp
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import List

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from module_loader import load_tool

REPO_ROOT = Path(__file__).resolve().parents[1]
TOOLS = REPO_ROOT / 'tools'

# A tiny MAE (ViT with 32 dims, 2 layers, 2 heads; 32 px images, patch 8)
# over mmpretrain's MAE data and runtime configs, with an epoch-based
# schedule like the project's configs. Inheriting ``mmpretrain::`` configs
# puts ``_scope_`` keys into every typed dict, ``collate_fn`` included.
TINY_MAE_CONFIG = """
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs512_mae.py',
    'mmpretrain::_base_/default_runtime.py',
]
model = dict(
    type='MAE',
    backbone=dict(
        type='MAEViT',
        arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                  feedforward_channels=64),
        img_size=32, patch_size=8, mask_ratio=0.75),
    neck=dict(
        type='MAEPretrainDecoder', num_patches=16, patch_size=8, in_chans=3,
        embed_dim=32, decoder_embed_dim=16, decoder_depth=1,
        decoder_num_heads=2, mlp_ratio=2.),
    head=dict(
        type='MAEPretrainHead', norm_pix=True, patch_size=8,
        loss=dict(type='PixelReconstructionLoss', criterion='L2')))
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root='data/tiny',
        with_label=False,
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='RandomResizedCrop', scale=32,
                 crop_ratio_range=(0.2, 1.0), backend='pillow'),
            dict(type='RandomFlip', prob=0.5),
            dict(type='PackInputs'),
        ]))
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.95),
                   weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=9, by_epoch=True, begin=1, end=10,
         convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=10)
auto_scale_lr = dict(base_batch_size=512)
"""

# Shrinks any MIM pre-training config of this project to a few CPU iterations.
SMALL_RUN_CONFIG = """
_base_ = [{base!r}]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False, pin_memory=False,
    dataset=dict(data_root={data!r}, data_prefix='', with_label=False))
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=2)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=2),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False,
                    max_keep_ckpts=5))
log_processor = dict(by_epoch=False, window_size=1)
"""


@pytest.fixture(scope='module')
def base_config() -> str:
    """The config under test: the project's AEMIM CIFAR-10 config."""
    return str(REPO_ROOT / 'configs' / 'aemim_vit-t-p4_cifar10.py')


@pytest.fixture(scope='module')
def tiny_mae_config(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A plain mmpretrain MAE over ``mmpretrain::`` base configs."""
    path = tmp_path_factory.mktemp('cfg') / 'tiny_mae.py'
    path.write_text(TINY_MAE_CONFIG)
    return str(path)


@pytest.fixture(scope='module')
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A folder of 8 random 40 x 40 RGB PNG files."""
    root = tmp_path_factory.mktemp('images')
    rng = np.random.default_rng(0)
    for i in range(8):
        pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f'{i}.png')
    return str(root)


@pytest.fixture(scope='module')
def small_config(tmp_path_factory: pytest.TempPathFactory, base_config: str,
                 image_dir: str) -> str:
    """``base_config`` shrunk to 2 iterations of batch 2 on ``image_dir``."""
    path = tmp_path_factory.mktemp('small') / 'small_run.py'
    path.write_text(SMALL_RUN_CONFIG.format(base=base_config, data=image_dir))
    return str(path)


def free_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def run(cmd: List[str], timeout: float = 120,
        **env: str) -> subprocess.CompletedProcess:
    """Run a command in the repository root; fail with its output on error."""
    full_env = dict(os.environ, OMP_NUM_THREADS='1', **env)
    proc = subprocess.run(
        cmd, cwd=REPO_ROOT, env=full_env, capture_output=True, text=True,
        timeout=timeout)
    assert proc.returncode == 0, (
        f'{" ".join(cmd)} failed ({proc.returncode}):\n'
        f'{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}')
    return proc


def train(config: str, work_dir: Path, *args: str) -> str:
    """Run tools/train.py; return the text of the run's log file."""
    before = set(work_dir.glob('*/*.log'))
    run([sys.executable, str(TOOLS / 'train.py'), config, '--work-dir',
         str(work_dir), *args])
    logs = sorted(set(work_dir.glob('*/*.log')) - before)
    assert len(logs) == 1, f'expected one new log in {work_dir}, got {logs}'
    return logs[0].read_text()


def losses(log: str) -> List[float]:
    """The ``loss:`` values of a log."""
    return [float(v) for v in re.findall(r'\bloss: ([-+0-9.e]+)', log)]


#: What AEMIM logs each iteration (besides ``loss``).
AEMIM_LOGGED = ('loss_clean', 'loss_adv', 'rec_clean', 'rec_adv',
                'adv_dist_init', 'adv_dist', 'adv_linf')


@pytest.mark.slow
def test_train_writes_checkpoint_and_log(small_config: str,
                                         tmp_path: Path) -> None:
    log = train(small_config, tmp_path)
    assert (tmp_path / 'iter_2.pth').is_file()
    assert 'Iter(train) [2/2]' in log
    values = losses(log)
    assert len(values) == 2 and all(np.isfinite(values)), log[-2000:]
    for key in AEMIM_LOGGED:
        assert re.search(rf'\b{key}: [-+0-9.e]+', log), key


@pytest.mark.slow
def test_train_plain_mae_over_mmpretrain_bases(
        tiny_mae_config: str, image_dir: str, tmp_path: Path) -> None:
    """An mmpretrain-inherited config (``_scope_`` in collate_fn) trains."""
    path = tmp_path / 'small_mae.py'
    path.write_text(SMALL_RUN_CONFIG.format(base=tiny_mae_config,
                                            data=image_dir))
    log = train(str(path), tmp_path / 'work')
    assert len(losses(log)) == 2


@pytest.mark.slow
def test_train_resume_continues(small_config: str, tmp_path: Path) -> None:
    from aemim_mm.utils.safe_load import safe_load

    train(small_config, tmp_path)
    log = train(small_config, tmp_path, '--resume', '--cfg-options',
                'train_cfg.max_iters=4')
    assert f'Auto resumed from the latest checkpoint {tmp_path}' in log
    assert 'resumed epoch: 0, iter: 2' in log
    assert 'Iter(train) [3/4]' in log and 'Iter(train) [1/4]' not in log
    ckpt = safe_load(tmp_path / 'iter_4.pth')
    assert ckpt['meta']['iter'] == 4
    assert (tmp_path / 'last_checkpoint').read_text().strip().endswith(
        'iter_4.pth')


@pytest.mark.slow
def test_dist_train_two_cpu_processes(small_config: str,
                                      tmp_path: Path) -> None:
    run(['bash', str(TOOLS / 'dist_train.sh'), small_config, '2',
         '--work-dir', str(tmp_path)], timeout=180,
        PORT=str(free_port()), PYTHON=sys.executable)
    assert (tmp_path / 'iter_2.pth').is_file()
    log = next(tmp_path.glob('*/*.log')).read_text()
    assert 'Iter(train) [2/2]' in log
    for key in AEMIM_LOGGED:       # the wrapper ran inside DDP's forward
        assert re.search(rf'\b{key}: [-+0-9.e]+', log), key
    assert 'Distributed training: True' in log
    assert "dist_cfg: {'backend': 'gloo'}" in log


@pytest.mark.slow
def test_test_tool_help() -> None:
    proc = run([sys.executable, str(TOOLS / 'test.py'), '--help'])
    for option in ('checkpoint', '--out', '--work-dir', '--cfg-options',
                   '--launcher'):
        assert option in proc.stdout


def test_train_merge_args(base_config: str, tmp_path: Path) -> None:
    tool = load_tool('train')
    ckpt = tmp_path / 'some.pth'
    ckpt.touch()

    args = tool.parse_args([base_config, '--resume'])
    cfg = tool.merge_args(Config.fromfile(base_config), args)
    assert cfg.resume is True and cfg.load_from is None
    assert cfg.work_dir == osp.join(
        './work_dirs', osp.splitext(osp.basename(base_config))[0])
    # no `_scope_` (from mmpretrain base configs) reaches the collate function
    assert '_scope_' not in cfg.train_dataloader.collate_fn

    args = tool.parse_args([
        base_config, '--resume', str(ckpt), '--auto-scale-lr', '--work-dir',
        str(tmp_path), '--cfg-options', 'train_cfg.max_epochs=3'
    ])
    cfg = tool.merge_args(Config.fromfile(base_config), args)
    assert cfg.resume is True and cfg.load_from == str(ckpt)
    assert cfg.auto_scale_lr.enable is True
    assert cfg.train_cfg.max_epochs == 3 and cfg.work_dir == str(tmp_path)

    with pytest.raises(FileNotFoundError, match='--resume'):
        tool.merge_args(
            Config.fromfile(base_config),
            tool.parse_args([base_config, '--resume', str(tmp_path / 'no')]))


def test_train_cpu_specifics(base_config: str) -> None:
    import torch
    if torch.cuda.is_available():
        pytest.skip('checks the CPU-only behaviour')
    tool = load_tool('train')
    cfg = tool.merge_args(
        Config.fromfile(base_config),
        tool.parse_args([base_config, '--launcher', 'pytorch']))
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg.device_ids is None
    with pytest.raises(RuntimeError, match='--amp needs a GPU'):
        tool.merge_args(
            Config.fromfile(base_config),
            tool.parse_args([base_config, '--amp']))


@pytest.mark.parametrize('own, expected', [
    # the project's configs select it themselves: kept as they are
    (None, dict(type='AEMIMDistributedDataParallel',
                broadcast_buffers=False)),
    # a config without one gets it from tools/train.py
    ('model_wrapper_cfg = None',
     dict(type='AEMIMDistributedDataParallel', broadcast_buffers=False,
          find_unused_parameters=False)),
    # a config's own wrapper is respected
    ("model_wrapper_cfg = dict(_delete_=True, "
     "type='MMDistributedDataParallel', find_unused_parameters=True)",
     dict(type='MMDistributedDataParallel', find_unused_parameters=True)),
])
def test_train_model_wrapper_under_ddp(base_config: str, tmp_path: Path,
                                       own, expected: dict) -> None:
    import torch
    tool = load_tool('train')
    config = base_config
    if own is not None:
        config = str(tmp_path / 'own_wrapper.py')
        Path(config).write_text(f'_base_ = [{base_config!r}]\n{own}\n')
    cfg = tool.merge_args(
        Config.fromfile(config),
        tool.parse_args([config, '--launcher', 'pytorch']))
    if not torch.cuda.is_available():
        expected = dict(expected, device_ids=None)   # CPU DDP
    assert cfg.model_wrapper_cfg == expected


def test_train_amp_switches_optim_wrapper(base_config: str,
                                          monkeypatch) -> None:
    import mmengine.device
    tool = load_tool('train')
    monkeypatch.setattr(mmengine.device, 'get_device', lambda: 'cuda')
    cfg = tool.merge_args(
        Config.fromfile(base_config), tool.parse_args([base_config, '--amp']))
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'


def test_test_tool_merge_args(base_config: str, tmp_path: Path) -> None:
    tool = load_tool('test')
    ckpt = str(tmp_path / 'model.pth')
    # a pre-training config has no test loop: a clear error
    with pytest.raises(ValueError, match='has no test loop'):
        tool.merge_args(Config.fromfile(base_config),
                        tool.parse_args([base_config, ckpt]))

    def eval_config() -> Config:
        return Config(
            dict(
                test_dataloader=dict(
                    collate_fn=dict(type='default_collate',
                                    _scope_='mmpretrain')),
                test_cfg=dict(),
                test_evaluator=dict(type='Accuracy')))

    out = str(tmp_path / 'preds.pkl')
    cfg = tool.merge_args(eval_config(),
                          tool.parse_args(['x.py', ckpt, '--out', out]))
    assert cfg.load_from == ckpt
    assert cfg.test_evaluator == [
        dict(type='Accuracy'),
        dict(type='DumpResults', out_file_path=out)
    ]
    assert '_scope_' not in cfg.test_dataloader.collate_fn
    with pytest.raises(ValueError, match='--out'):
        tool.merge_args(eval_config(),
                        tool.parse_args(['x.py', ckpt, '--out', 'p.json']))
