"""Tests of aemim_mm.utils.safe_load: mmengine checkpoints load with
``weights_only=True``, and checkpoints that would run code are refused."""
import json
import operator
import os
import pathlib
import pickle
import re
import subprocess
import sys
import urllib.error
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

import aemim_mm  # noqa: F401  (registers the safe globals at import)
from aemim_mm.utils import register_checkpoint_safe_globals
from aemim_mm.utils.safe_load import (AllowListConflictError,
                                      CheckpointDownloadError,
                                      CheckpointHTTPError,
                                      UnsafeCheckpointError,
                                      allow_list_conflicts,
                                      legacy_zip_member, safe_load)


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


def weighted_mean(self, weight: float = 2.0):
    """A custom statistic, as mmengine's test_history_buffer.py registers
    one (module level, by ``HistoryBuffer.register_statistics``)."""
    return self.mean() * weight


@pytest.fixture
def registered_statistic(monkeypatch):
    """``weighted_mean`` registered for this test only (the class-level
    registry is restored afterwards)."""
    assert 'weighted_mean' not in HistoryBuffer._statistics_methods
    HistoryBuffer.register_statistics(weighted_mean)
    yield weighted_mean
    del HistoryBuffer._statistics_methods['weighted_mean']


def test_runner_resumes_with_a_registered_statistic(
        tmp_path: Path, request: pytest.FixtureRequest,
        registered_statistic) -> None:
    """mmengine's extension point: the registered function is pickled into
    every checkpoint (``HistoryBuffer.__getstate__``); resume loads it."""
    make_runner(tmp_path, f'{request.node.name}_first', max_iters=2).train()
    from aemim_mm.utils.safe_load import _globals_in_checkpoint
    name = f'{weighted_mean.__module__}.weighted_mean'
    assert name in _globals_in_checkpoint(str(tmp_path / 'iter_2.pth'))
    runner = make_runner(tmp_path, f'{request.node.name}_resume',
                         max_iters=3, resume=True)
    runner.train()
    assert runner.iter == 3
    hub = safe_load(tmp_path / 'iter_3.pth')['message_hub']
    loss = hub['log_scalars']['train/loss']
    assert loss.statistics('weighted_mean') == 2 * loss.mean()


def test_a_statistic_not_registered_here_is_refused(
        tmp_path: Path, registered_statistic) -> None:
    buffer = HistoryBuffer()
    buffer.update(1.0)
    torch.save({'hub': buffer}, tmp_path / 'ckpt.pth')
    assert safe_load(tmp_path / 'ckpt.pth')['hub'].statistics(
        'weighted_mean') == 2.0
    del HistoryBuffer._statistics_methods['weighted_mean']   # another run
    try:
        with pytest.raises(UnsafeCheckpointError,
                           match=r'\.weighted_mean'):
            safe_load(tmp_path / 'ckpt.pth')
    finally:
        HistoryBuffer._statistics_methods['weighted_mean'] = weighted_mean


def _legacy_zip(path: Path, member: str = 'model.pth') -> Path:
    """A checkpoint in torch.hub's legacy format: a zip around one old-style
    (not zip) ``torch.save`` file."""
    import zipfile
    inner = path.parent / 'inner.pth'
    torch.save({'state_dict': {'w': torch.arange(3.)}}, inner,
               _use_new_zipfile_serialization=False)
    with zipfile.ZipFile(path, 'w') as archive:
        archive.write(inner, member)
    inner.unlink()
    return path


def test_legacy_zip_is_recognised_and_refused_locally_by_name(
        tmp_path: Path) -> None:
    path = _legacy_zip(tmp_path / 'legacy.zip')
    assert legacy_zip_member(str(path)) == 'model.pth'
    plain = tmp_path / 'plain.pth'
    torch.save({'w': torch.ones(1)}, plain)
    assert legacy_zip_member(str(plain)) is None    # torch's own zip format
    with pytest.raises(RuntimeError,
                       match=r"legacy\.zip'.*'model\.pth'.*legacy"):
        safe_load(path)


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


@pytest.mark.parametrize('error, bases', [
    # every refusal: callers that catch pickle.UnpicklingError keep working
    (UnsafeCheckpointError, (pickle.UnpicklingError, )),
    (AllowListConflictError, (UnsafeCheckpointError, pickle.UnpicklingError)),
    # a failed download: what mmengine's own download raised
    (CheckpointDownloadError, (urllib.error.URLError, OSError)),
    (CheckpointHTTPError, (CheckpointDownloadError, urllib.error.HTTPError,
                           urllib.error.URLError, OSError)),
])
def test_error_types(error: type, bases: tuple) -> None:
    for base in bases:
        assert issubclass(error, base), (error, base)


# ------------------------------------------- names allow-listed twice
def _save_plain(path: Path) -> Path:
    """A checkpoint of tensors and containers only (no extra globals)."""
    torch.save({'state_dict': {'w': torch.ones(2)}, 'meta': {'iter': 1}},
               path)
    return path


#: Other objects under the names of aemim_mm's allow-list entries.
CONFLICTS = {
    'real getattr': ([getattr], 'builtins.getattr'),
    'another getattr': ([(operator.attrgetter, 'builtins.getattr')],
                        'builtins.getattr'),
    'another HistoryBuffer': (
        [(dict, 'mmengine.logging.history_buffer.HistoryBuffer')],
        'mmengine.logging.history_buffer.HistoryBuffer'),
}


@pytest.mark.parametrize('conflict', CONFLICTS)
def test_name_allow_listed_twice_is_refused(trained: Path, tmp_path: Path,
                                            conflict: str) -> None:
    extra, name = CONFLICTS[conflict]
    ckpt = trained / 'iter_2.pth'
    plain = _save_plain(tmp_path / 'plain.pth')
    with torch.serialization.safe_globals(extra):
        assert list(allow_list_conflicts()) == [name]
        with pytest.raises(
                AllowListConflictError,
                match=rf"(?s)Refused to load checkpoint "
                rf"'{re.escape(str(ckpt))}': it uses '{re.escape(name)}', "
                r"which torch's weights_only allow-list maps to two different "
                rf"objects \('{re.escape(name)}' -> aemim_mm's .* and "
                r'.*set order'):
            safe_load(ckpt)
        # the same through mmengine's loader (Runner load_from / resume)
        from mmengine.runner import CheckpointLoader
        with pytest.raises(AllowListConflictError, match=re.escape(name)):
            CheckpointLoader.load_checkpoint(str(ckpt))
        # a checkpoint that does not use the name loads
        assert safe_load(plain)['meta'] == {'iter': 1}
    # the other entry removed: no conflict, the checkpoint loads
    assert allow_list_conflicts() == {}
    assert safe_load(ckpt)['meta']['iter'] == 2


def test_the_same_object_allow_listed_again_is_no_conflict(
        trained: Path) -> None:
    with torch.serialization.safe_globals([HistoryBuffer]):
        assert allow_list_conflicts() == {}
        assert safe_load(trained / 'iter_2.pth')['meta']['iter'] == 2


def test_name_allow_listed_twice_refuses_unlistable_checkpoint(
        tmp_path: Path) -> None:
    # the legacy (non-zip) format: its globals are not listed, so a conflict
    # refuses it whatever it holds
    legacy = tmp_path / 'legacy.pth'
    torch.save({'w': torch.ones(2)}, legacy,
               _use_new_zipfile_serialization=False)
    with torch.serialization.safe_globals([getattr]):
        with pytest.raises(AllowListConflictError,
                           match=r"may use \(its globals cannot be listed\)"
                           r".*'builtins\.getattr'"):
            safe_load(legacy)
    assert torch.equal(safe_load(legacy)['w'], torch.ones(2))


#: Runs in a fresh interpreter: allow-lists the real getattr before or after
#: ``import aemim_mm``, loads each checkpoint (argv: order, then name=path
#: pairs) through safe_load and through mmengine's loader, and prints the
#: outcomes as JSON.
_ORDER_SCRIPT = """
import json, sys
import torch
order, files = sys.argv[1], dict(a.split('=', 1) for a in sys.argv[2:])
if order == 'getattr_first':
    torch.serialization.add_safe_globals([getattr])
import aemim_mm
from mmengine.runner import CheckpointLoader
from aemim_mm.utils.safe_load import safe_load
if order == 'aemim_first':
    torch.serialization.add_safe_globals([getattr])
outcomes = {}
for name, path in files.items():
    for how, load in (('safe_load', safe_load),
                      ('mmengine', CheckpointLoader.load_checkpoint)):
        try:
            load(path)
            outcomes[f'{name} {how}'] = 'loaded'
        except Exception as e:
            outcomes[f'{name} {how}'] = type(e).__name__
print(json.dumps(outcomes))
"""

#: Hash seeds for the order test (seeds 0-3 gave both outcomes before).
HASH_SEEDS = (0, 1, 2, 3)


@pytest.mark.slow
@pytest.mark.parametrize('order', ['getattr_first', 'aemim_first'])
def test_getattr_conflict_outcome_ignores_order_and_hash_seed(
        trained: Path, tmp_path: Path, order: str) -> None:
    """torch keeps the allow-list in a set: which of two entries named
    ``builtins.getattr`` it uses changes with the registration order and the
    hash seed. The outcome must not."""
    getattr_ckpt = tmp_path / 'getattr.pth'
    torch.save({'x': HistoryBufferAttribute()}, getattr_ckpt)
    files = {'runner': trained / 'iter_2.pth', 'getattr': getattr_ckpt,
             'plain': _save_plain(tmp_path / 'plain.pth')}
    expected = {}
    for name in files:
        for how in ('safe_load', 'mmengine'):
            expected[f'{name} {how}'] = (
                'loaded' if name == 'plain' else 'AllowListConflictError')
    seen: List[Dict[str, str]] = []
    for seed in HASH_SEEDS:
        proc = subprocess.run(
            [sys.executable, '-c', _ORDER_SCRIPT, order,
             *(f'{k}={v}' for k, v in files.items())],
            capture_output=True, text=True, timeout=300,
            env=dict(os.environ, PYTHONHASHSEED=str(seed)))
        assert proc.returncode == 0, proc.stderr[-3000:]
        seen.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert seen == [expected] * len(HASH_SEEDS)


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
