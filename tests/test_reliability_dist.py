"""2 processes equal 1 process with the same global batch (issue 6, point 5).

The tiny AEMIM run of ``test_reliability_resume.py`` (the project's
``configs/aemim_vit-t-p4_cifar10.py`` with a tiny ViT), here without random
augmentation (a fixed resize to 32 px) so that only the model's randomness
matters, with ``ReproducibleRandomnessHook(sample_seed=True)`` (and, in one
1-process case, ``RNGStateCheckpointHook`` and ``SampleSeedHook``):

* ``tools/dist_train.sh CONFIG 2``: two CPU processes (gloo, DDP) with batch
  ``B = 2`` each;
* ``tools/train.py CONFIG``: one process with batch ``2B = 4``.

Same seed (``randomness.diff_rank_seed=True``, as in the project's configs,
so the hook's rank-independent seed is exercised), same sampler seed. The
logged ``loss`` of a process is the mean over its own samples; every sample
has the same number of masked patches and, with ``adv_ratio=1``, every sample
is attacked, so the total loss of the global batch is the mean of the two
ranks' losses. It must equal the 1-process loss at every iteration; from the
second iteration on this also checks that DDP's averaged gradients updated
the weights as the 1-process gradients did.
"""
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Dict

import numpy as np
import pytest
import torch
from PIL import Image

from test_reliability_resume import (LOGGED, TEST_HOOKS, by_iter, dumped,
                                     kill_when_blocked)

# every test runs tools/train.py or tools/dist_train.sh in subprocesses
pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
TOOLS = REPO_ROOT / 'tools'
ITERS = 4
B = 2           # per process in the 2-process run

#: No random augmentation: only the model's randomness remains.
FIXED = ("[dict(type='LoadImageFromFile'), "
         "dict(type='Resize', scale=(32, 32)), dict(type='PackInputs')]")
#: MAE's augmentation, for the distributed resume.
RANDOM = ("[dict(type='LoadImageFromFile'), dict(type='RandomResizedCrop', "
          "scale=32, crop_ratio_range=(0.2, 1.0), backend='pillow'), "
          "dict(type='RandomFlip', prob=0.5), dict(type='PackInputs')]")

CONFIG = '''
_base_ = [{base!r}]
custom_imports = dict(imports=['aemim_mm', 'reliability_test_hooks'],
                      allow_failed_imports=False)
model = dict(algorithm=dict(
    backbone=dict(arch=dict(_delete_=True, embed_dims=32, num_layers=2,
                            num_heads=2, feedforward_channels=64)),
    neck=dict(embed_dim=32, decoder_embed_dim=16, decoder_depth=1,
              decoder_num_heads=2, mlp_ratio=2.)),
    adv_ratio=1.0)
train_dataloader = dict(
    batch_size={batch}, num_workers=0, persistent_workers=False,
    pin_memory=False,
    sampler=dict(type='DefaultSampler', shuffle=True, seed=0),
    dataset=dict(
        data_root={data!r}, data_prefix='', with_label=False,
        pipeline={pipeline}))
optim_wrapper = dict(optimizer=dict(lr=1e-3))
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop',
                 max_iters={iters})
param_scheduler = [dict(type='LinearLR', start_factor=0.5, by_epoch=False,
                        begin=0, end={iters})]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', interval={ckpt_interval},
                    by_epoch=False))
log_processor = dict(by_epoch=False, window_size=1)
randomness = dict(seed=0, deterministic=True, diff_rank_seed=True)
custom_hooks = [
    dict(type='ReproducibleRandomnessHook', sample_seed={sample_seed}),
    dict(type='LossDumpHook'),
]
'''


@pytest.fixture(scope='module')
def workspace(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """16 images (4 iterations of global batch 4), test hooks, configs."""
    root = tmp_path_factory.mktemp('reliability_dist')
    images = root / 'images'
    images.mkdir()
    rng = np.random.default_rng(1)
    for i in range(16):
        pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / f'{i}.png')
    (root / 'reliability_test_hooks.py').write_text(TEST_HOOKS)

    def config(name: str, batch: int, sample_seed: bool,
               pipeline: str = FIXED, ckpt_interval: int = ITERS) -> str:
        path = root / f'{name}.py'
        path.write_text(
            CONFIG.format(
                base=str(REPO_ROOT / 'configs' / 'aemim_vit-t-p4_cifar10.py'),
                data=str(images), batch=batch, iters=ITERS,
                sample_seed=sample_seed, pipeline=pipeline,
                ckpt_interval=ckpt_interval))
        return str(path)

    return SimpleNamespace(
        root=root,
        env=dict(os.environ, OMP_NUM_THREADS='1', OMP_WAIT_POLICY='PASSIVE',
                 PYTHONPATH=os.pathsep.join(
                     p for p in (str(root), os.environ.get('PYTHONPATH'))
                     if p)),
        config=config)


def dist_train(workspace: SimpleNamespace, config: str, work_dir: Path,
               *args: str) -> str:
    """tools/dist_train.sh CONFIG 2 to the end; return its output."""
    out = run(['bash', str(TOOLS / 'dist_train.sh'), config, '2',
               '--work-dir', str(work_dir), *args],
              dict(workspace.env, PORT=str(free_port()),
                   PYTHON=sys.executable))
    assert 'Distributed training: True' in out
    return out


def free_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def run(cmd, env: Dict[str, str]) -> str:
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f'{cmd} failed:\n{out[-6000:]}'
    return out


#: The hooks of the 1-process run with ``hooks='split'``: the two hooks that
#: ``ReproducibleRandomnessHook`` forwards to, listed instead of it.
SPLIT_HOOKS = ('[dict(type="RNGStateCheckpointHook"), '
               'dict(type="SampleSeedHook"), dict(type="LossDumpHook")]')


def one_process(workspace: SimpleNamespace, sample_seed: bool,
                hooks: str = 'compat') -> Path:
    name = f'one_{sample_seed}' + ('' if hooks == 'compat' else f'_{hooks}')
    work_dir = workspace.root / name
    config = workspace.config(name, 2 * B, sample_seed)
    if hooks == 'split':
        assert sample_seed
        split = workspace.root / f'{name}_hooks.py'
        split.write_text(f'_base_ = [{config!r}]\n'
                         f'custom_hooks = {SPLIT_HOOKS}\n')
        config = str(split)
    run([sys.executable, str(TOOLS / 'train.py'), config,
         '--work-dir', str(work_dir)], workspace.env)
    return work_dir


def per_iter(work_dir: Path, rank: int = 0) -> torch.Tensor:
    """(ITERS, len(LOGGED)) float64 values of one rank."""
    records = by_iter(dumped(work_dir, rank))
    assert sorted(records) == list(range(1, ITERS + 1))
    return torch.tensor(
        [[records[i][k] for k in LOGGED] for i in range(1, ITERS + 1)],
        dtype=torch.float64)


@pytest.fixture(scope='module')
def two_processes(workspace: SimpleNamespace) -> torch.Tensor:
    """The global values of the 2-process run: the mean of the ranks'."""
    work_dir = workspace.root / 'two'
    dist_train(workspace, workspace.config('two', B, True), work_dir)
    ranks = [per_iter(work_dir, r) for r in (0, 1)]
    # the ranks saw different samples: a mean of equal values proves nothing
    assert not torch.equal(ranks[0][:, 0], ranks[1][:, 0])
    return (ranks[0] + ranks[1]) / 2


def test_two_processes_equal_one_process(workspace: SimpleNamespace,
                                         two_processes: torch.Tensor) -> None:
    """The 2-process run with ReproducibleRandomnessHook(sample_seed=True)
    against the 1-process run with RNGStateCheckpointHook and SampleSeedHook
    (the compatibility class equals the pair: tests/test_reliability_resume
    .py)."""
    one = per_iter(one_process(workspace, sample_seed=True, hooks='split'))
    rel = ((two_processes - one).abs() / one.abs().clamp_min(1e-12)).amax(0)
    print('max relative difference, 2 vs 1 process, over '
          f'{ITERS} iterations: ' +
          ', '.join(f'{k} {v:.1e}' for k, v in zip(LOGGED, rel.tolist())))
    torch.testing.assert_close(two_processes, one, rtol=1e-5, atol=1e-6)


def test_without_sample_seed_the_draws_differ(
        workspace: SimpleNamespace, two_processes: torch.Tensor) -> None:
    """The comparison can fail: other draws give other losses."""
    one = per_iter(one_process(workspace, sample_seed=False))
    assert not torch.allclose(two_processes[:, 0], one[:, 0], rtol=1e-3)


def test_two_processes_resume_exactly(workspace: SimpleNamespace) -> None:
    """Every rank's generators come back after a SIGKILL of all processes.

    Random crops and flips, no ``sample_seed``: every draw comes from each
    rank's global generators (which differ: ``diff_rank_seed=True``).
    """
    config = workspace.config('resume_two', B, False, RANDOM, 1)
    reference = workspace.root / 'resume_ref'
    dist_train(workspace, config, reference)

    blocked = workspace.root / 'resume_block.py'
    blocked.write_text(
        f'_base_ = [{config!r}]\n'
        'custom_hooks = [dict(type="ReproducibleRandomnessHook"), '
        'dict(type="LossDumpHook"), '
        'dict(type="BlockHook", at=2, priority="LOWEST")]\n')
    work_dir = workspace.root / 'resume_killed'
    kill_when_blocked(
        ['bash', str(TOOLS / 'dist_train.sh'), str(blocked), '2',
         '--work-dir', str(work_dir)], work_dir,
        dict(workspace.env, PORT=str(free_port()), PYTHON=sys.executable),
        ranks=2)
    out = dist_train(workspace, config, work_dir, '--resume')
    assert 'resumed epoch: 0, iter: 2' in out, out[-4000:]
    assert 'restored the random generators of the checkpoint at ' \
        'iteration 2' in out
    # bit for bit on each rank; the ranks' generators differ
    # (diff_rank_seed), so each rank must have got its own state back
    for rank in (0, 1):
        ours, theirs = per_iter(work_dir, rank), per_iter(reference, rank)
        torch.testing.assert_close(ours[2:], theirs[2:], rtol=0, atol=0)
