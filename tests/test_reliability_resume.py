"""Exact resume after SIGKILL (issue 6, point 1).

A small AEMIM run (``configs/aemim_vit-t-p4_cifar10.py`` with a tiny ViT,
``adv_ratio=0.5``, 8 iterations of batch 2 on 12 random images with
random-resized crops and flips, a checkpoint every iteration, seed 0,
deterministic mode, no dataloader workers) is trained through
``tools/train.py`` in a subprocess. Every random source then matters: the
data order, the crops and flips, the MAE masks, the adversarial sample and
the attack's random start.

* run A goes through uninterrupted;
* run B is killed with SIGKILL while it trains (a test-only hook blocks at a
  chosen point and the test kills the process there), then restarted with
  ``--resume``; its per-iteration losses must equal run A's, bit for bit;
* the same resume without :class:`ReproducibleRandomnessHook` gives other
  losses, so the comparison can fail;
* the resume also works with :class:`RNGStateCheckpointHook` alone (the
  hook that ``ReproducibleRandomnessHook`` forwards to): run B killed and
  resumed with it equals run A, run with the compatibility class.

Every iteration's log vars are written at full precision by a test-only hook
(``LossDumpHook``), one JSON line per iteration and process.
"""
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Optional

import numpy as np
import pytest
import torch
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
TRAIN = REPO_ROOT / 'tools' / 'train.py'
MAX_ITERS = 8

#: Test-only hooks, imported by the runs' configs (``custom_imports``).
TEST_HOOKS = '''
"""Hooks of the reliability tests: dump log vars, block at an iteration."""
import json
import os
import time

from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class LossDumpHook(Hook):
    """Append each iteration's log vars to losses_rank<r>.jsonl."""

    priority = 'VERY_HIGH'

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        record = dict(pid=os.getpid(), iter=runner.iter + 1)
        for key, value in (outputs or {}).items():
            record[key] = float(value)       # full precision in json
        path = os.path.join(runner.work_dir,
                            f'losses_rank{get_rank()}.jsonl')
        with open(path, 'a') as f:
            f.write(json.dumps(record) + '\\n')


@HOOKS.register_module()
class BlockHook(Hook):
    """Create <work_dir>/blocked_rank<r>, sleep in after_train_iter `at`."""

    def __init__(self, at):
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if runner.iter + 1 == self.at:
            path = os.path.join(runner.work_dir, f'blocked_rank{get_rank()}')
            with open(path + '.tmp', 'w') as f:
                f.write(str(os.getpid()))
            os.replace(path + '.tmp', path)
            time.sleep(600)
'''

#: ``configs/aemim_vit-t-p4_cifar10.py`` shrunk to a few CPU iterations.
CONFIG = '''
_base_ = [{base!r}]
custom_imports = dict(imports=['aemim_mm', 'reliability_test_hooks'],
                      allow_failed_imports=False)
model = dict(algorithm=dict(
    backbone=dict(arch=dict(_delete_=True, embed_dims=32, num_layers=2,
                            num_heads=2, feedforward_channels=64)),
    neck=dict(embed_dim=32, decoder_embed_dim=16, decoder_depth=1,
              decoder_num_heads=2, mlp_ratio=2.)),
    adv_ratio=0.5)   # 1 of the 2 samples, drawn at random
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False, pin_memory=False,
    dataset=dict(data_root={data!r}, data_prefix='', with_label=False))
optim_wrapper = dict(optimizer=dict(lr=1e-3))
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop',
                 max_iters={max_iters})
param_scheduler = [dict(type='LinearLR', start_factor=0.5, by_epoch=False,
                        begin=0, end={max_iters})]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False,
                    max_keep_ckpts=20))
log_processor = dict(by_epoch=False, window_size=1)
randomness = dict(seed=0, deterministic=True)
custom_hooks = [
    dict(type='ReproducibleRandomnessHook', rng_state=True,
         sample_seed=False),
    dict(type='LossDumpHook'),
]
'''


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope='module')
def workspace(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Images (12: an epoch is 6 iterations), test hooks and the config."""
    root = tmp_path_factory.mktemp('reliability')
    images = root / 'images'
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / f'{i}.png')
    (root / 'reliability_test_hooks.py').write_text(TEST_HOOKS)
    config = root / 'resume_run.py'
    config.write_text(
        CONFIG.format(
            base=str(REPO_ROOT / 'configs' / 'aemim_vit-t-p4_cifar10.py'),
            data=str(images),
            max_iters=MAX_ITERS))
    return SimpleNamespace(root=root, config=str(config))


def _env(workspace: SimpleNamespace) -> Dict[str, str]:
    path = os.pathsep.join(
        p for p in (str(workspace.root), os.environ.get('PYTHONPATH')) if p)
    return dict(os.environ, OMP_NUM_THREADS='1', OMP_WAIT_POLICY='PASSIVE',
                PYTHONPATH=path)


def variant(workspace: SimpleNamespace, name: str, custom_hooks: str) -> str:
    """The run's config with other ``custom_hooks`` (a list's source)."""
    path = workspace.root / f'{name}.py'
    path.write_text(f'_base_ = [{workspace.config!r}]\n'
                    f'custom_hooks = {custom_hooks}\n')
    return str(path)


def train(workspace: SimpleNamespace, work_dir: Path, *args: str,
          config: Optional[str] = None) -> str:
    """Run tools/train.py to the end; return its output."""
    proc = subprocess.run(
        [sys.executable, str(TRAIN), config or workspace.config,
         '--work-dir', str(work_dir), *args],
        cwd=REPO_ROOT, env=_env(workspace), capture_output=True, text=True,
        timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f'train.py failed:\n{out[-6000:]}'
    return out


def train_and_kill(workspace: SimpleNamespace, work_dir: Path,
                   config: str) -> None:
    """Start tools/train.py; SIGKILL it once ``BlockHook`` has blocked."""
    kill_when_blocked(
        [sys.executable, str(TRAIN), config, '--work-dir', str(work_dir)],
        work_dir, _env(workspace))


def kill_when_blocked(cmd: List[str], work_dir: Path, env: Dict[str, str],
                      ranks: int = 1) -> None:
    """Run ``cmd``; SIGKILL every process once each rank's ``BlockHook`` has
    blocked (a machine that dies).

    ``BlockHook`` writes its pid into ``blocked_rank<r>``. The launcher runs
    in a new session and is killed with its process group; the training
    processes are killed by pid (``torch.distributed.run`` starts them in
    sessions of their own).
    """
    work_dir.mkdir(parents=True)
    log = work_dir / 'killed_run.out'
    markers = [work_dir / f'blocked_rank{r}' for r in range(ranks)]

    def kill_all() -> None:
        pids = {int(m.read_text()) for m in markers if m.exists()}
        pids |= set(children(proc.pid))   # ranks that did not block (yet)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    with open(log, 'w') as out:
        proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=env, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 300
        try:
            while not all(m.exists() for m in markers):
                if proc.poll() is not None:
                    pytest.fail('the run ended before it blocked:\n' +
                                log.read_text()[-6000:])
                if time.monotonic() > deadline:
                    pytest.fail('the run did not block within 300 s')
                time.sleep(0.1)
        finally:
            kill_all()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.returncode


def children(pid: int) -> List[int]:
    """Pids of the child processes of ``pid`` (Linux ``/proc``)."""
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f'/proc/{entry}/stat').read_text()
        except OSError:
            continue
        if int(stat.rsplit(')', 1)[1].split()[1]) == pid:
            found.append(int(entry))
    return found


def dumped(work_dir: Path, rank: int = 0) -> List[dict]:
    """The LossDumpHook records of a work dir, in the order written."""
    path = work_dir / f'losses_rank{rank}.jsonl'
    return [json.loads(line) for line in path.read_text().splitlines()]


def by_iter(records: List[dict]) -> Dict[int, dict]:
    """Records keyed by iteration; a later process overrides an earlier."""
    return {r['iter']: r for r in records}


LOGGED = ('loss', 'loss_clean', 'loss_adv', 'rec_clean', 'rec_adv',
          'adv_dist_init', 'adv_dist', 'adv_linf')


def values(records: Dict[int, dict], iters: range) -> torch.Tensor:
    """(len(iters), len(LOGGED)) float64 tensor of the logged values."""
    return torch.tensor([[records[i][k] for k in LOGGED] for i in iters],
                        dtype=torch.float64)


@pytest.fixture(scope='module')
def run_a(workspace: SimpleNamespace) -> SimpleNamespace:
    """The uninterrupted run."""
    work_dir = workspace.root / 'run_a'
    train(workspace, work_dir)
    records = by_iter(dumped(work_dir))
    assert sorted(records) == list(range(1, MAX_ITERS + 1))
    return SimpleNamespace(work_dir=work_dir, records=records)


# ---------------------------------------------------------------- tests
#: The exact-resume hook of a config: the compatibility class, the new one.
RNG_HOOKS = {
    'compat': 'dict(type="ReproducibleRandomnessHook", sample_seed=False)',
    'split': 'dict(type="RNGStateCheckpointHook")',
}


@pytest.mark.slow
@pytest.mark.parametrize(
    'block_at, priority, resumed_at, hook',
    [
        # killed between iterations 3 and 4, after checkpoint 3 was written
        # (RNGStateCheckpointHook)
        (3, 'LOWEST', 3, 'split'),
        # killed inside iteration 7 (the first of the second epoch): the
        # weights are updated but checkpoint 7 is not written -> resume at 6
        # (ReproducibleRandomnessHook, which forwards to it)
        (7, 'HIGHEST', 6, 'compat'),
    ])
def test_sigkill_then_resume_equals_uninterrupted(
        workspace: SimpleNamespace, run_a: SimpleNamespace, block_at: int,
        priority: str, resumed_at: int, hook: str) -> None:
    work_dir = workspace.root / f'run_b_{block_at}_{hook}'
    block = variant(
        workspace, f'block_{block_at}_{hook}',
        f'[{RNG_HOOKS[hook]}, '
        'dict(type="LossDumpHook"), '
        f'dict(type="BlockHook", at={block_at}, priority="{priority}")]')
    train_and_kill(workspace, work_dir, block)
    assert not (work_dir / f'iter_{resumed_at + 1}.pth').exists()
    killed = by_iter(dumped(work_dir))
    resume_cfg = None if hook == 'compat' else variant(
        workspace, f'resume_{hook}',
        f'[{RNG_HOOKS[hook]}, dict(type="LossDumpHook")]')
    out = train(workspace, work_dir, '--resume', config=resume_cfg)

    assert f'resumed epoch: 0, iter: {resumed_at}' in out, out[-4000:]
    assert ('restored the random generators of the checkpoint at iteration '
            f'{resumed_at}') in out
    records = dumped(work_dir)
    resumed_pid = records[-1]['pid']
    resumed = by_iter(r for r in records if r['pid'] == resumed_pid)
    assert sorted(resumed) == list(range(resumed_at + 1, MAX_ITERS + 1))
    after = range(resumed_at + 1, MAX_ITERS + 1)
    # bit for bit: same process layout, deterministic CPU kernels
    torch.testing.assert_close(
        values(resumed, after), values(run_a.records, after), rtol=0,
        atol=0)
    before = range(1, resumed_at + 1)
    torch.testing.assert_close(
        values(killed, before), values(run_a.records, before), rtol=0,
        atol=0)


@pytest.mark.slow
def test_resume_without_hook_differs(workspace: SimpleNamespace,
                                     run_a: SimpleNamespace) -> None:
    """Without the hook the resumed run draws other random numbers."""
    resumed_at = 3
    work_dir = workspace.root / 'run_no_hook'
    out = train(workspace, work_dir, '--resume',
                str(run_a.work_dir / f'iter_{resumed_at}.pth'),
                config=variant(workspace, 'no_hook',
                               '[dict(type="LossDumpHook")]'))
    assert f'resumed epoch: 0, iter: {resumed_at}' in out
    resumed = by_iter(dumped(work_dir))
    after = range(resumed_at + 1, MAX_ITERS + 1)
    ours, theirs = values(resumed, after), values(run_a.records, after)
    # every iteration's loss differs (other masks, crops, random starts)
    assert (ours[:, 0] != theirs[:, 0]).all(), (ours[:, 0], theirs[:, 0])


@pytest.mark.slow
def test_checkpoint_rng_state_loads_weights_only(
        run_a: SimpleNamespace) -> None:
    from aemim_mm.engine import get_rng_state
    from aemim_mm.utils.safe_load import safe_load

    path = run_a.work_dir / 'iter_2.pth'
    ckpt = safe_load(path)
    saved = ckpt['meta']['rng_state']
    assert saved['world_size'] == 1 and len(saved['ranks']) == 1
    state = saved['ranks'][0]
    reference = get_rng_state()
    assert set(state) == set(reference)
    assert state['torch'].dtype == torch.uint8
    assert state['numpy']['key'].shape == (624, )
    # also with torch.load directly (no aemim_mm allow-list needed for it)
    torch.load(io.BytesIO(torch_save_bytes(saved)), weights_only=True)


def torch_save_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


# ---------------------------------------------------------------- units
def test_rng_state_round_trip_weights_only() -> None:
    import random

    from aemim_mm.engine import get_rng_state, set_rng_state

    random.gauss(0, 1)          # a cached gaussian in both generators
    np.random.randn(3)
    state = torch.load(
        io.BytesIO(torch_save_bytes(get_rng_state())), weights_only=True)

    def draw():
        return (random.random(), random.gauss(0, 1), np.random.rand(),
                np.random.randn(), torch.rand(3))

    first = draw()
    draw()
    set_rng_state(state)
    second = draw()
    assert first[:4] == second[:4]
    torch.testing.assert_close(first[4], second[4], rtol=0, atol=0)


def test_set_rng_state_rejects_incomplete() -> None:
    from aemim_mm.engine import set_rng_state
    with pytest.raises(ValueError, match=r"missing entries \['numpy'\]"):
        set_rng_state(dict(python=None, torch=None))


def test_derive_sample_seed() -> None:
    from aemim_mm.engine import derive_sample_seed
    seeds = {derive_sample_seed(s, i) for s in (0, 1, 2**40) for i in
             range(50)}
    assert len(seeds) == 150
    assert all(0 <= s < 2**63 for s in seeds)
    assert derive_sample_seed(7, 3) == derive_sample_seed(7, 3)
    assert derive_sample_seed(-1, 0) >= 0


@pytest.mark.parametrize('name', ['rng_state', 'sample_seed'])
@pytest.mark.parametrize('bad', [1, 'yes', None])
def test_hook_rejects_non_bool(name: str, bad) -> None:
    from aemim_mm.engine import ReproducibleRandomnessHook
    with pytest.raises(ValueError, match=f'{name} must be True or False'):
        ReproducibleRandomnessHook(**{name: bad})


@pytest.mark.parametrize('hook', ['RNGStateCheckpointHook', 'SampleSeedHook'])
@pytest.mark.parametrize('name', ['rng_state', 'sample_seed', 'seed'])
def test_split_hooks_take_no_options(hook: str, name: str) -> None:
    """One job each: the hook in custom_hooks is the switch; any option is
    an error at construction (through the registry too), naming it."""
    from mmpretrain.registry import HOOKS
    with pytest.raises(TypeError,
                       match=f"{hook}.*unexpected keyword argument '{name}'"):
        HOOKS.build(dict(type=hook, **{name: True}))


def _rng_hook(kind: str):
    """The exact-resume job: the new hook or the compatibility class."""
    from aemim_mm.engine import (ReproducibleRandomnessHook,
                                 RNGStateCheckpointHook)
    return (RNGStateCheckpointHook()
            if kind == 'split' else ReproducibleRandomnessHook())


def _rng_part(hook):
    """The object that holds the exact-resume state of ``hook``."""
    return getattr(hook, 'rng_state_hook', None) or hook


def _seed_hook(kind: str):
    """The sample-seed job: the new hook or the compatibility class."""
    from aemim_mm.engine import ReproducibleRandomnessHook, SampleSeedHook
    return (SampleSeedHook() if kind == 'split' else
            ReproducibleRandomnessHook(sample_seed=True))


KINDS = pytest.mark.parametrize('kind', ['split', 'compat'])


def _runner(model: torch.nn.Module, seed: int = 5, it: int = 0):
    loop = SimpleNamespace()
    return SimpleNamespace(model=model, seed=seed, iter=it, epoch=0,
                           train_loop=loop)


@KINDS
def test_hook_sets_sample_seed_each_iteration(kind: str) -> None:
    from aemim_mm.engine import derive_sample_seed

    model = torch.nn.Linear(1, 1)
    model.sample_seed = None
    hook = _seed_hook(kind)
    runner = _runner(model)
    hook.before_train(runner)
    for it in (0, 1, 2):
        runner.iter = it
        hook.before_train_iter(runner, batch_idx=it)
        assert model.sample_seed == derive_sample_seed(5, it)


@KINDS
def test_hook_sample_seed_needs_the_attribute(kind: str) -> None:
    hook = _seed_hook(kind)
    with pytest.raises(ValueError, match='Linear has none'):
        hook.before_train(_runner(torch.nn.Linear(1, 1)))


@KINDS
def test_hook_restores_before_the_batch_after_the_checkpoint(
        kind: str) -> None:
    """In-process: the state of checkpoint n is set before batch n."""
    hook = _rng_hook(kind)
    loop = SimpleNamespace(dataloader_iterator=iter(range(100)))
    runner = SimpleNamespace(model=torch.nn.Linear(1, 1), seed=0, iter=0,
                             epoch=0, train_loop=loop)
    hook.before_train(runner)
    next(loop.dataloader_iterator)                 # batch 0
    hook.after_train_iter(runner, batch_idx=0)     # end of iteration 1
    expected = torch.rand(4)                       # what batch 1 would draw
    checkpoint = dict(meta=dict(iter=1))
    hook.before_save_checkpoint(runner, checkpoint)
    torch.rand(7)                                  # e.g. a validation loop
    assert next(loop.dataloader_iterator) == 1     # batch 1: restored
    torch.testing.assert_close(torch.rand(4), expected, rtol=0, atol=0)

    # a resume from that checkpoint: batches 0..0 are skipped, then restored
    resumed = _rng_hook(kind)
    loop2 = SimpleNamespace(dataloader_iterator=iter(range(100)))
    runner2 = SimpleNamespace(model=torch.nn.Linear(1, 1), seed=0, iter=1,
                              epoch=0, train_loop=loop2)
    resumed.after_load_checkpoint(
        runner2, torch.load(io.BytesIO(torch_save_bytes(checkpoint)),
                            weights_only=True))
    resumed.before_train(runner2)
    next(loop2.dataloader_iterator)                # mmengine's skip
    torch.rand(11)
    next(loop2.dataloader_iterator)
    torch.testing.assert_close(torch.rand(4), expected, rtol=0, atol=0)


@KINDS
def test_hook_ignores_load_from_without_resume(kind: str) -> None:
    from aemim_mm.engine import get_rng_state

    checkpoint = dict(meta=dict(iter=4, rng_state=dict(
        format=1, world_size=1, ranks=[get_rng_state()])))
    expected = torch.rand(3)
    hook = _rng_hook(kind)
    loop = SimpleNamespace(dataloader_iterator=iter(range(10)))
    runner = SimpleNamespace(model=torch.nn.Linear(1, 1), seed=0, iter=0,
                             epoch=0, train_loop=loop)
    hook.after_load_checkpoint(runner, checkpoint)
    hook.before_train(runner)      # iteration 0: a new run (load_from)
    for _ in range(6):
        next(loop.dataloader_iterator)
    assert not torch.equal(torch.rand(3), expected)


@KINDS
def test_hook_other_world_size_is_not_restored(kind: str) -> None:
    from aemim_mm.engine import get_rng_state
    hook = _rng_hook(kind)
    checkpoint = dict(meta=dict(iter=4, rng_state=dict(
        format=1, world_size=2, ranks=[get_rng_state()] * 2)))
    runner = _runner(torch.nn.Linear(1, 1), it=4)
    hook.after_load_checkpoint(runner, checkpoint)
    assert _rng_part(hook)._pending is None



# ---------------------------------------------------------------- gathering
class _ToyModel:
    """Built lazily: mmengine's BaseModel, one linear layer, a random draw
    per iteration (so every iteration's generator state differs)."""

    @staticmethod
    def build() -> torch.nn.Module:
        from mmengine.model import BaseModel

        class Toy(BaseModel):

            def __init__(self) -> None:
                super().__init__()
                self.linear = torch.nn.Linear(2, 1)

            def forward(self, inputs, data_samples=None, mode='tensor'):
                noise = torch.rand(inputs.shape[0], 1)
                return dict(loss=(self.linear(inputs) + noise).pow(2).mean())

        return Toy()


def _probe_hook():
    """A hook run before ReproducibleRandomnessHook in after_train_iter: the
    iteration count and the generator states at its end."""
    from mmengine.hooks import Hook

    from aemim_mm.engine import get_rng_state

    class Probe(Hook):
        priority = 'HIGHEST'

        def __init__(self) -> None:
            self.done = 0
            self.states = {}

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None) -> None:
            self.done = runner.iter + 1
            self.states[self.done] = get_rng_state()

    return Probe()


def _assert_same_state(a, b) -> None:
    if isinstance(a, torch.Tensor):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    elif isinstance(a, dict):
        assert set(a) == set(b)
        for k in a:
            _assert_same_state(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same_state(x, y)
    else:
        assert a == b


@KINDS
@pytest.mark.parametrize('train_cfg, checkpoint, saved', [
    # no checkpoint at all: no gather
    (dict(by_epoch=False, max_iters=7), None, {}),
    # every 10 iterations, never reached, no save_last: no gather
    (dict(by_epoch=False, max_iters=7),
     dict(interval=10, by_epoch=False, save_last=False), {}),
    # every 3 iterations from save_begin 2, and the last
    (dict(by_epoch=False, max_iters=7),
     dict(interval=3, by_epoch=False, save_begin=2),
     {2: 'iter_2.pth', 5: 'iter_5.pth', 7: 'iter_7.pth'}),
    # by epoch in an iteration loop: at the end only
    (dict(by_epoch=False, max_iters=7), dict(interval=1, by_epoch=True),
     {7: 'epoch_1.pth'}),
    # every 2 epochs of 2 iterations, and the last epoch
    (dict(by_epoch=True, max_epochs=3), dict(interval=2, by_epoch=True),
     {4: 'epoch_2.pth', 6: 'epoch_3.pth'}),
])
def test_hook_gathers_only_for_checkpoints(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path, train_cfg: dict,
                                           checkpoint: Optional[dict],
                                           saved: Dict[int, str],
                                           kind: str) -> None:
    """With several processes, the states are gathered only after the
    iterations a CheckpointHook saves, and each checkpoint holds the states
    of the end of its iteration (2 processes simulated: the
    gather returns this process's state twice)."""
    from mmengine.runner import Runner

    # the job (and its collectives) live in rng_state_hook
    from aemim_mm.engine.hooks import rng_state_hook as module
    from aemim_mm.engine.hooks.reproducibility_hook import RNG_STATE_KEY
    from aemim_mm.utils.safe_load import safe_load

    probe = _probe_hook()
    gathered = []

    def all_gather_object(obj):
        gathered.append(probe.done)
        return [obj, obj]

    monkeypatch.setattr(module, 'get_world_size', lambda: 2)
    monkeypatch.setattr(module, 'all_gather_object', all_gather_object)
    runner = Runner(
        model=_ToyModel.build(),
        work_dir=str(tmp_path),
        train_dataloader=dict(
            # iteration loops: no epoch end (mmengine sleeps 2 s there)
            dataset=[dict(inputs=torch.randn(2))
                     for _ in range(4 if train_cfg['by_epoch'] else 16)],
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='default_collate'),
            batch_size=2,
            num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=train_cfg,
        default_hooks=dict(
            checkpoint=None if checkpoint is None else dict(
                type='CheckpointHook', **checkpoint)),
        custom_hooks=[_rng_hook(kind), probe],
        randomness=dict(seed=0),
        default_scope='mmpretrain')
    runner.train()

    assert probe.done == (6 if train_cfg['by_epoch'] else 7)
    assert gathered == sorted(saved)
    assert sorted(p.name for p in tmp_path.glob('*.pth')) == sorted(
        saved.values())
    for done, name in saved.items():
        meta = safe_load(tmp_path / name)['meta']
        assert meta['iter'] == done
        rng = meta[RNG_STATE_KEY]
        assert rng['world_size'] == 2 and len(rng['ranks']) == 2
        for state in rng['ranks']:
            _assert_same_state(state, probe.states[done])


# ---------------------------------------------- compatibility = the two hooks
def test_compat_hook_triggers_the_stages_of_the_pair() -> None:
    """Every stage either new hook implements is one the compatibility class
    forwards, and no other."""
    from aemim_mm.engine import (ReproducibleRandomnessHook,
                                 RNGStateCheckpointHook, SampleSeedHook)
    compat = ReproducibleRandomnessHook(rng_state=True, sample_seed=True)
    pair = set(RNGStateCheckpointHook().get_triggered_stages()) | set(
        SampleSeedHook().get_triggered_stages())
    assert set(compat.get_triggered_stages()) == pair
    for cls in (ReproducibleRandomnessHook, RNGStateCheckpointHook,
                SampleSeedHook):
        assert cls.priority == 'VERY_HIGH'


@pytest.mark.parametrize('rng_state, sample_seed',
                         [(True, False), (False, True), (True, True),
                          (False, False)])
def test_compat_hook_builds_the_enabled_hooks(rng_state: bool,
                                              sample_seed: bool) -> None:
    from aemim_mm.engine import (ReproducibleRandomnessHook,
                                 RNGStateCheckpointHook, SampleSeedHook)
    compat = ReproducibleRandomnessHook(rng_state=rng_state,
                                        sample_seed=sample_seed)
    assert isinstance(compat.rng_state_hook, RNGStateCheckpointHook) is \
        rng_state
    assert isinstance(compat.sample_seed_hook, SampleSeedHook) is sample_seed
    assert [type(h) for h in compat.hooks] == (
        [SampleSeedHook] * sample_seed + [RNGStateCheckpointHook] * rng_state)


def _train_toy_with(tmp_path: Path, hooks: list) -> SimpleNamespace:
    """A short mmengine run of the toy model (with a ``sample_seed``
    attribute) with ``hooks``; what the run drew, saved and learnt."""
    from mmengine.runner import Runner

    from aemim_mm.utils.safe_load import safe_load

    torch.manual_seed(0)             # the same weights and data
    model = _ToyModel.build()
    model.sample_seed = None
    probe = _probe_hook()
    seeds = {}
    record = probe.after_train_iter

    def after_train_iter(runner, batch_idx, data_batch=None, outputs=None):
        record(runner, batch_idx, data_batch, outputs)
        seeds[probe.done] = runner.model.sample_seed

    probe.after_train_iter = after_train_iter
    data = [dict(inputs=torch.randn(2)) for _ in range(16)]
    runner = Runner(
        model=model,
        work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=data,
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='default_collate'),
            batch_size=2,
            num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=5),
        default_hooks=dict(checkpoint=dict(
            type='CheckpointHook', interval=2, by_epoch=False)),
        custom_hooks=hooks + [probe],
        randomness=dict(seed=0),
        default_scope='mmpretrain')
    runner.train()
    metas = {p.name: safe_load(p)['meta'] for p in tmp_path.glob('*.pth')}
    return SimpleNamespace(
        states=probe.states, seeds=seeds, metas=metas,
        weights={k: v.clone() for k, v in model.state_dict().items()})


@pytest.mark.parametrize('rng_state, sample_seed',
                         [(True, False), (False, True), (True, True)])
def test_compat_hook_equals_the_pair(tmp_path: Path, rng_state: bool,
                                     sample_seed: bool) -> None:
    """``ReproducibleRandomnessHook(rng_state=a, sample_seed=b)`` gives the
    run that ``RNGStateCheckpointHook`` (if a) and ``SampleSeedHook`` (if b)
    give: the same generator states after every iteration, the same sample
    seeds, the same checkpointed RNG states and the same weights."""
    from aemim_mm.engine import (ReproducibleRandomnessHook,
                                 RNGStateCheckpointHook, SampleSeedHook)
    from aemim_mm.engine.hooks.rng_state_hook import RNG_STATE_KEY

    compat = _train_toy_with(tmp_path / 'compat', [
        ReproducibleRandomnessHook(rng_state=rng_state,
                                   sample_seed=sample_seed)])
    pair = _train_toy_with(
        tmp_path / 'pair', [RNGStateCheckpointHook()] * rng_state +
        [SampleSeedHook()] * sample_seed)
    assert sorted(compat.states) == sorted(pair.states) == [1, 2, 3, 4, 5]
    _assert_same_state(compat.states, pair.states)
    assert compat.seeds == pair.seeds
    assert (None in compat.seeds.values()) is not sample_seed
    assert sorted(compat.metas) == sorted(pair.metas) == [
        'iter_2.pth', 'iter_4.pth', 'iter_5.pth']
    for name, meta in compat.metas.items():
        assert (RNG_STATE_KEY in meta) is rng_state
        assert (RNG_STATE_KEY in pair.metas[name]) is rng_state
        if rng_state:
            _assert_same_state(meta[RNG_STATE_KEY],
                               pair.metas[name][RNG_STATE_KEY])
    _assert_same_state(compat.weights, pair.weights)
