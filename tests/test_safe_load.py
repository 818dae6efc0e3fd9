"""Tests of aemim_mm.utils.safe_load: mmengine checkpoints load with
``weights_only=True``, and checkpoints that would run code are refused."""
import os
import pathlib
import pickle
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Optional

import pytest
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

import aemim_mm  # noqa: F401  (registers the safe globals at import)
from aemim_mm.utils import register_checkpoint_safe_globals
from aemim_mm.utils.safe_load import UnsafeCheckpointError, safe_load


class ToyDataset(Dataset):
    """8 fixed samples of a 2-d regression problem."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, idx: int) -> Dict[str, torch.Tensor]:
        x = torch.tensor([float(idx), 1.0])
        return dict(inputs=x, data_samples=x.sum().reshape(1))


class ToyModel(BaseModel):
    """A linear layer trained with an MSE loss."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs: torch.Tensor,
                data_samples: Optional[torch.Tensor] = None,
                mode: str = 'tensor') -> Any:
        out = self.linear(inputs)
        if mode == 'loss':
            return dict(loss=((out - data_samples)**2).mean())
        return out


def make_runner(work_dir: Path, name: str, max_iters: int,
                **kwargs: Any) -> Runner:
    """A Runner with an IterBasedTrainLoop that checkpoints every iteration."""
    return Runner(
        model=ToyModel(),
        work_dir=str(work_dir),
        experiment_name=name,
        default_scope='mmengine',
        train_dataloader=dict(
            dataset=ToyDataset(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='default_collate'),
            batch_size=2,
            num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        param_scheduler=dict(
            type='LinearLR', start_factor=0.5, by_epoch=False, end=2),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=1),
            checkpoint=dict(
                type='CheckpointHook', interval=1, by_epoch=False)),
        log_processor=dict(by_epoch=False, window_size=1),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        **kwargs)


@pytest.fixture
def trained(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """A work dir with iter_1.pth and iter_2.pth from a real Runner."""
    make_runner(tmp_path, f'{request.node.name}_first', max_iters=2).train()
    assert (tmp_path / 'iter_2.pth').is_file()
    return tmp_path


def test_runner_checkpoint_has_only_allowed_globals(trained: Path) -> None:
    # The checkpoint really holds non-default globals (HistoryBuffer, numpy)
    # ...
    ckpt = trained / 'iter_2.pth'
    assert isinstance(
        safe_load(ckpt)['message_hub']['log_scalars']['train/loss'],
        HistoryBuffer)
    # ... and all of them are on the allow-list.
    assert torch.serialization.get_unsafe_globals_in_checkpoint(
        str(ckpt)) == []


def test_resume_after_import(trained: Path,
                             request: pytest.FixtureRequest) -> None:
    runner = make_runner(
        trained, f'{request.node.name}_resume', max_iters=4, resume=True)
    runner.train()
    assert runner.iter == 4
    log = Path(runner.log_dir, f'{runner.timestamp}.log').read_text()
    assert 'resumed epoch: 0, iter: 2' in log
    ckpt = safe_load(trained / 'iter_4.pth')
    assert ckpt['meta']['iter'] == 4
    # the message hub history continued from the checkpoint: 2 + 2 losses
    assert len(ckpt['message_hub']['log_scalars']['train/loss'].data[0]) == 4


def test_load_from(trained: Path, request: pytest.FixtureRequest) -> None:
    ckpt = trained / 'iter_2.pth'
    runner = make_runner(
        trained / 'load', f'{request.node.name}_load', max_iters=1,
        load_from=str(ckpt))
    runner.load_or_resume()
    expected = safe_load(ckpt)['state_dict']
    for key, value in runner.model.state_dict().items():
        assert torch.equal(value, expected[key]), key


def test_register_is_idempotent() -> None:
    register_checkpoint_safe_globals()
    before = len(torch.serialization.get_safe_globals())
    register_checkpoint_safe_globals()
    register_checkpoint_safe_globals()
    assert len(torch.serialization.get_safe_globals()) == before


class TouchFile:
    """Unpickling it would create ``marker`` (a stand-in for an attack)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker), ))


class ShellCommand:
    """Unpickling it would run a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


class HistoryBufferAttribute:
    """Pickles as ``getattr(HistoryBuffer, 'update')``: not a statistic."""

    def __reduce__(self):
        return (getattr, (HistoryBuffer, 'update'))


@pytest.mark.parametrize(
    'payload, disallowed',
    [(TouchFile, 'pathlib.Path'), (ShellCommand, 'posix.system')])
def test_code_running_checkpoint_is_refused(tmp_path: Path, payload: type,
                                            disallowed: str) -> None:
    if disallowed == 'posix.system' and os.name != 'posix':
        pytest.skip('os.system pickles as posix.system on POSIX only')
    marker = tmp_path / 'marker'
    ckpt = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': payload(marker)}, ckpt)

    with pytest.raises(
            UnsafeCheckpointError,
            match=rf"Refused to load checkpoint '{re.escape(str(ckpt))}'.*"
            rf'{re.escape(disallowed)}'):
        safe_load(ckpt)
    # plain torch.load (mmengine's path) refuses it too
    with pytest.raises(pickle.UnpicklingError, match=disallowed):
        torch.load(ckpt)
    assert not marker.exists()


def test_getattr_is_limited_to_history_buffer_statistics(
        tmp_path: Path) -> None:
    ckpt = tmp_path / 'getattr.pth'
    torch.save({'x': HistoryBufferAttribute()}, ckpt)
    with pytest.raises(
            UnsafeCheckpointError,
            match=r"getattr\(HistoryBuffer, 'update'\) is not allowed"):
        safe_load(ckpt)


def test_safe_load_error_is_an_unpickling_error() -> None:
    # callers that catch pickle.UnpicklingError keep working
    assert issubclass(UnsafeCheckpointError, pickle.UnpicklingError)


def test_checkpoint_needs_the_allow_list(trained: Path) -> None:
    # Control: without aemim_mm's allow-list (a fresh interpreter that does
    # not import aemim_mm), torch refuses the Runner checkpoint.
    code = ('import sys, torch\n'
            'try:\n'
            '    torch.load(sys.argv[1])\n'
            'except Exception as e:\n'
            '    print(e); sys.exit(3)\n')
    proc = subprocess.run([sys.executable, '-c', code,
                           str(trained / 'iter_2.pth')],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert 'Unsupported global' in proc.stdout
