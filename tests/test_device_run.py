"""The GPU kit: tools/device_kit.py, tools/device_run.py (+ .sh), the
equal-time comparison, the DDP check, TimeBudgetHook and the benchmark's
MFU columns; the CPU rehearsal of the whole run (slow)."""
import copy
import errno
import json
import os
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from module_loader import load_tool

REPO = Path(__file__).resolve().parents[1]
SHARED_CIFAR10 = REPO.parent / 'shared' / 'data' / 'cifar10_jpg.tar.gz'


@pytest.fixture(scope='module')
def kit_tool():
    return load_tool('device_kit')


@pytest.fixture(scope='module')
def run_tool():
    return load_tool('device_run')


@pytest.fixture(scope='module')
def bench_tool():
    return load_tool('benchmark')


class Cut(Exception):
    """A process stopped mid-way (stands in for the parent's SIGTERM)."""


# ------------------------------------------------------------ device_kit
@pytest.mark.parametrize('name,expected', [
    ('mmcv_lite-2.1.0-py2.py3-none-any.whl', True),
    ('mmengine-0.10.7-py3-none-any.whl', True),
    ('numpy-2.4.6-cp312-cp312-manylinux_2_17_x86_64.whl', False),
    ('six-1.16.0-py2-none-any.whl', False),
])
def test_is_pure(kit_tool, name, expected):
    assert kit_tool.is_pure(name) is expected


@pytest.mark.parametrize('name,expected', [
    ('mmengine', True), ('mmcv_lite', True),   # roots
    ('timm', True), ('setuptools', True),      # roots although on the device
    ('numpy', False), ('Pillow', False),       # on the device
    ('opencv-python', False),                  # as opencv-python-headless
    ('addict', True), ('yapf', True),          # missing there
])
def test_needed_on_device(kit_tool, name, expected):
    assert kit_tool.needed_on_device(name) is expected


def test_constraints_pin_the_roots(kit_tool):
    pins = kit_tool.read_constraints()
    assert pins['mmengine'] == '0.10.7'
    assert pins['mmpretrain'] == '1.2.0'
    assert pins['mmcv-lite'] == '2.1.0'
    for root in kit_tool.ROOTS:
        assert kit_tool.pinned_spec(root, pins) == f'{root}=={pins[root]}'


def _wheel(path: Path, requires: list) -> Path:
    with zipfile.ZipFile(path, 'w') as zf:
        zf.writestr('pkg-1.0.dist-info/METADATA', '\n'.join(
            ['Metadata-Version: 2.1', 'Name: pkg', 'Version: 1.0'] +
            [f'Requires-Dist: {r}' for r in requires]) + '\n')
    return path


def test_wheel_requirements_apply_the_device_markers(kit_tool, tmp_path):
    wheel = _wheel(tmp_path / 'pkg-1.0-py3-none-any.whl', [
        'addict', 'tomli>=2.0.1; python_version < "3.11"',
        'regex; sys_platform == "win32"', 'pytest; extra == "tests"',
        'platformdirs>=3.5.1; python_version >= "3.8"'])
    names = [r.name for r in kit_tool.wheel_requirements(str(wheel))]
    assert names == ['addict', 'platformdirs']


def test_manifest_refuses_a_kit_that_cannot_travel(kit_tool, tmp_path):
    for folder in ('wheels', 'data'):
        (tmp_path / folder).mkdir()
    (tmp_path / 'wheels' / 'a-1-py3-none-any.whl').write_bytes(b'x' * 1000)
    info = kit_tool.manifest(str(tmp_path), tree_bytes=2000)
    assert info['kit_bytes'] == 1000 and len(info['files']) == 1
    with pytest.raises(RuntimeError, match='exceed the 64 MiB'):
        kit_tool.manifest(str(tmp_path), tree_bytes=64 * 2**20)


def test_build_kit_checks_the_archive_before_any_work(kit_tool, tmp_path):
    out = tmp_path / 'kit'
    with pytest.raises(FileNotFoundError, match='archive not found'):
        kit_tool.build_kit(str(out), str(tmp_path / 'missing.tar.gz'))
    fake = tmp_path / 'cifar10_jpg.tar.gz'
    fake.write_bytes(b'not the archive')
    with pytest.raises(ValueError, match='expected d34c68f6'):
        kit_tool.build_kit(str(out), str(fake))
    assert not out.exists() and not (tmp_path / 'kit.partial').exists()


@pytest.fixture(scope='module')
def kit(tmp_path_factory, kit_tool) -> Path:
    """A real kit (wheels from the registry), built once for this module."""
    if not SHARED_CIFAR10.is_file():
        pytest.skip(f'no CIFAR-10 archive at {SHARED_CIFAR10}')
    out = tmp_path_factory.mktemp('devkit') / 'kit'
    kit_tool.build_kit(str(out), str(SHARED_CIFAR10))
    return out


@pytest.mark.slow
def test_kit_is_complete_and_pure(kit, kit_tool):
    """Every root is there, every wheel is pure Python, and every
    requirement of every wheel is in the kit or on the device."""
    info = json.loads((kit / 'MANIFEST.json').read_text())
    wheels = sorted((kit / 'wheels').glob('*.whl'))
    assert [f['path'] for f in info['files']] == [
        f'wheels/{w.name}' for w in wheels] + ['data/cifar10_jpg.tar.gz']
    names = {kit_tool.normalize(w.name.split('-')[0]) for w in wheels}
    assert set(kit_tool.ROOTS) <= names
    for wheel in wheels:
        assert kit_tool.is_pure(wheel.name), wheel.name
        for req in kit_tool.wheel_requirements(str(wheel)):
            assert (kit_tool.normalize(req.name) in names
                    or not kit_tool.needed_on_device(req.name)), (wheel, req)
    assert info['kit_bytes'] + info['tree_bytes'] < 64 * 2**20


# ------------------------------------------------------------ device_run
@pytest.mark.parametrize('name,left,expected', [
    ('cost', 540, 120),                   # its cap
    ('cost', 300, 300 - 20 - 180 - 40 - 5),  # later minimums kept
    ('equal_time', 400, 400 - 40 - 5),    # no cap: all but the sweep's
    ('sweep', 60, 55),
])
def test_stage_limit(run_tool, name, left, expected):
    assert run_tool.stage_limit(name, run_tool.PRESETS['gpu'],
                                left) == pytest.approx(expected)


def test_gpu_stage_minimums_fit_the_budget(run_tool):
    for preset in run_tool.PRESETS.values():
        assert sum(preset[s]['min_s'] for s in run_tool.STAGES) \
            + run_tool.MARGIN_S < preset['budget']
    assert run_tool.PRESETS['gpu']['budget'] <= 9 * 60


def test_run_command_statuses(run_tool, tmp_path):
    assert run_tool.run_command(['true'], 10) == 'ok'
    assert run_tool.run_command(['false'], 10) == 'failed (exit 1)'
    # a stage that overruns is cut with its children
    marker = tmp_path / 'child.pid'
    start = time.monotonic()
    status = run_tool.run_command(
        ['bash', '-c', f'sleep 60 & echo $! > {marker}; wait'], 1.5)
    assert status == 'cut at 2 s'
    assert time.monotonic() - start < 15
    pid = int(marker.read_text())
    assert _gone(pid, within=10.0), f'child {pid} still runs'


def _gone(pid: int, within: float) -> bool:
    """Whether process ``pid`` ends (or is a zombie) within ``within`` s."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with open(f'/proc/{pid}/stat') as f:
                if f.read().rsplit(')', 1)[1].split()[0] == 'Z':
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    return False


def test_parse_args_rejects_a_bad_budget(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'device_run.py'), '--budget',
         '0', '--out', str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert '--budget must be > 0 seconds, got 0.0' in proc.stderr


def test_device_run_sh_needs_the_kit(tmp_path):
    proc = subprocess.run(
        ['bash', str(REPO / 'tools' / 'device_run.sh')],
        env=dict(os.environ, AEMIM_DEVKIT=str(tmp_path / 'nokit'),
                 OUT=str(tmp_path / 'out')), capture_output=True, text=True)
    assert proc.returncode == 2
    assert 'run \'python tools/device_kit.py\' first' in proc.stderr


def test_summary_lists_stages_and_results(run_tool, tmp_path):
    (tmp_path / 'ddp.json').write_text(json.dumps(dict(
        wrapper='AEMIMDistributedDataParallel', backend='nccl', steps=3,
        batch_size=64, max_param_diff=0.0, max_log_diff=dict(loss=0.0),
        tolerance=1e-5, max_param_change=0.01, passed=True)))
    env = dict(device='NVIDIA H200', date='2026-11-30 12:00 UTC',
               python='3.12.3', torch='2.11.0', cuda='13.0',
               packages=dict(mmengine='0.10.7'))
    stages = [dict(name='cost', status='cut at 120 s', seconds=120,
                   limit=120),
              dict(name='ddp', status='ok', seconds=14.2, limit=45)]
    run_tool.write_summary(str(tmp_path), env, stages, 'bash x.sh')
    md = (tmp_path / 'summary.md').read_text()
    assert '| cost | cut at 120 s | 120 | 120 |' in md
    assert '| ddp | ok | 14 | 45 |' in md
    assert 'PASSED' in md and 'NVIDIA H200' in md
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert summary['stages'] == stages


# ------------------------------------------------------------ equal time
def test_seconds_per_epoch_skips_the_start():
    from aemim_repro.equal_time import seconds_per_epoch
    # 10 iterations: the first 2 (20 %) are left out of the median
    times = [5.0, 3.0] + [1.0] * 7 + [2.0]
    assert seconds_per_epoch(times, 100) == pytest.approx(100.0)
    assert seconds_per_epoch([4.0], 10) == pytest.approx(40.0)
    with pytest.raises(ValueError, match='no iteration times'):
        seconds_per_epoch([], 10)


@pytest.mark.parametrize('budget,epoch_s,expected', [
    (60.0, 2.0, 30), (59.9, 2.0, 29), (1.0, 2.0, 1)])
def test_planned_epochs(budget, epoch_s, expected):
    from aemim_repro.equal_time import planned_epochs
    assert planned_epochs(budget, epoch_s) == expected


def test_pretrain_budget():
    from aemim_repro.equal_time import pretrain_budget
    settings = dict(downstream_s=30, min_pretrain_s=20, pretrain_s=None)
    # (300 - 3 x 30) / 3 - 5 s of building and starting each run
    assert pretrain_budget(300, 3, settings, 5.0) == pytest.approx(65.0)
    assert pretrain_budget(300, 3, dict(settings, pretrain_s=25),
                           5.0) == pytest.approx(25.0)
    with pytest.raises(RuntimeError, match='at least 20 s are needed'):
        pretrain_budget(150, 3, settings, 5.0)


def _result(tmp_path: Path) -> dict:
    curves = tmp_path / 'curves.json'
    curves.write_text(json.dumps(dict(records=dict(
        rec_clean=dict(iter=[1, 2, 3], value=[1.0, 0.9, 0.8]),
        rec_adv=dict(iter=[1, 2, 3], value=[1.1, 1.0, 0.9]),
        loss=dict(iter=[1, 2, 3], value=[1.0, 0.9, 0.8])))))
    ev = dict(clean_top1=50.0, adv_clean=50.0,
              fgsm={'1': 40.0, '2': 30.0}, pgd={'1': 35.0, '2': 20.0})
    methods = {}
    for i, m in enumerate(('mae', 'fast_aemim', 'aemim')):
        methods[m] = dict(
            calibration=dict(epoch_seconds=1.0 + i),
            pretrain=dict(planned_epochs=30 - 10 * i, epochs=30 - 10 * i,
                          cut=m == 'aemim', seconds=59.5,
                          loss_curves=str(curves)),
            eval=ev)
    methods['aemim'].pop('eval')          # not reached: dashes
    settings = dict(linprobe=dict(epochs=8), evaluate=dict(adversarial=dict(
        fgsm_eps=[1, 2], pgd_eps=[1, 2], pgd_steps=10, num_samples=1000)))
    return dict(budget_s=60.0, seed=0, settings=settings,
                images=dict(train=50000, test=10000), methods=methods)


def test_equal_time_table_and_plot(tmp_path):
    from aemim_repro.equal_time import format_table, plot
    result = _result(tmp_path)
    table = format_table(result)
    assert '60 s of pre-training per method, seed 0 (one seed)' in table
    assert ('| MAE | 1.00 | 30 | 30 | 59.5 | 50.00 | 40.00 | 30.00 | 35.00 '
            '| 20.00 |') in table
    assert '| AEMIM | 3.00 | 10 | 10 (cut) | 59.5 | - | - | - | - | - |' \
        in table
    png = plot(result, str(tmp_path / 'equal_time.png'))
    assert Path(png).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


# ------------------------------------------------------------ TimeBudgetHook
def _budget_runner(tmp_path, epoch, max_epochs):
    saved = []
    return SimpleNamespace(
        epoch=epoch, max_epochs=max_epochs, work_dir=str(tmp_path),
        train_loop=SimpleNamespace(stop_training=False),
        save_checkpoint=lambda d, f, **kw: saved.append((f, kw))), saved


@pytest.mark.parametrize('budget,epoch,elapsed,cut,saved', [
    (10, 0, 4.0, False, False),   # 4 s + 4 s per epoch fits in 10 s
    (8.5, 1, 6.0, True, True),    # 6 s + 3 s per epoch > 8.5 s: stop, save
    (10, 2, 9.5, True, True),     # 9.5 s + 3.2 s > 10 s
    (10, 4, 9.0, False, True),    # the planned last epoch: save, not cut
])
def test_time_budget_hook(tmp_path, monkeypatch, budget, epoch, elapsed, cut,
                          saved):
    from aemim_repro import hooks
    hook = hooks.TimeBudgetHook(seconds=budget)
    clock = iter([100.0, 100.0 + elapsed])
    monkeypatch.setattr(hooks.time, 'perf_counter', lambda: next(clock))
    runner, calls = _budget_runner(tmp_path, epoch, max_epochs=5)
    hook.before_train(runner)
    hook.after_train_epoch(runner)
    assert runner.train_loop.stop_training is cut
    assert bool(calls) is saved
    if saved:
        assert calls[0] == ('final.pth', dict(save_optimizer=False,
                                              save_param_scheduler=False))
        record = json.loads((tmp_path / 'time_budget.json').read_text())
        assert record == dict(seconds=hook.seconds, elapsed=elapsed,
                              epochs=epoch + 1, max_epochs=5, cut=cut)


@pytest.mark.parametrize('kwargs,message', [
    (dict(seconds=0), 'seconds must be a number > 0, got 0'),
    (dict(seconds=True), 'seconds must be a number > 0, got True'),
    (dict(seconds=5, filename='a/b.pth'), 'filename must be a file name'),
])
def test_time_budget_hook_rejects_bad_options(kwargs, message):
    from aemim_repro.hooks import TimeBudgetHook
    with pytest.raises(ValueError, match=message):
        TimeBudgetHook(**kwargs)


# ------------------------------------------------------------ DDP check
def test_ddp_check_passes_on_gloo(run_tool):
    from aemim_repro.ddp_check import run_ddp_check
    result = run_ddp_check(str(REPO / run_tool.DDP_CONFIG), 'gloo', 'cpu',
                           steps=2, batch_size=4,
                           overrides=run_tool.TINY_MODEL)
    assert result['passed'], result
    assert result['wrapper'] == 'AEMIMDistributedDataParallel'
    assert result['max_param_change'] > 0          # it trained
    assert set(result['max_log_diff']) >= {'loss', 'rec_clean', 'rec_adv'}


def test_ddp_check_sees_a_difference(run_tool, monkeypatch):
    """Control: when the DDP step gets other images, the check fails."""
    from aemim_repro import ddp_check
    calls = []
    from aemim_mm.engine.model_wrappers import AEMIMDistributedDataParallel
    step = AEMIMDistributedDataParallel.train_step

    def other_images(self, data, optim_wrapper):
        calls.append(1)
        data = dict(data, inputs=255 - data['inputs'])
        return step(self, data, optim_wrapper)

    monkeypatch.setattr(AEMIMDistributedDataParallel, 'train_step',
                        other_images)
    result = ddp_check.run_ddp_check(
        str(REPO / run_tool.DDP_CONFIG), 'gloo', 'cpu', steps=1,
        batch_size=4, overrides=run_tool.TINY_MODEL)
    assert calls and not result['passed']
    assert result['max_param_diff'] > result['tolerance']


# ------------------------------------------------------------ benchmark MFU
@pytest.mark.slow
def test_benchmark_reports_mfu_against_a_measured_peak(tmp_path):
    out = tmp_path / 'cost.json'
    env = dict(os.environ, OMP_NUM_THREADS='1', OMP_WAIT_POLICY='PASSIVE')
    proc = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'benchmark.py'), '--preset',
         'smoke', '--warmup', '1', '--reps', '1', '--no-memory',
         '--variants', 'aemim', '--peak-size', '64', '--out', str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result['peak_dtype'] == 'float32' and result['peak_size'] == 64
    assert result['matmul_peak_tflops'] > 0
    for row in result['variants'].values():
        assert row['tflops'] == pytest.approx(
            row['gflops'] / 1e3 / row['median_s'])
        assert row['mfu'] == pytest.approx(
            row['tflops'] / result['matmul_peak_tflops'])
    assert '| TFLOP/s | MFU |' in result['table']
    assert result['table'] in proc.stdout


def test_benchmark_table_without_a_peak_is_unchanged():
    from aemim_mm.benchmark import format_table
    committed = json.loads(
        (REPO / 'docs' / 'results' / 'benchmark_cpu.json').read_text())
    assert 'matmul_peak_tflops' not in committed
    assert 'MFU' not in format_table(committed)


# ------------------------------------------------------------ GPU paths
class _Recorder(torch.nn.Module):
    """A model whose training step records the inputs it is given."""

    def __init__(self, device: str):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1, device=device))
        self.seen = []

    def train_step(self, data: dict, optim_wrapper) -> dict:
        self.seen.append(data['inputs'])
        return {}


def test_runner_puts_the_batch_on_the_preset_device_once():
    """The batch is made on the preset's device when the runner is built
    (``meta`` stands in for ``cuda``), and every step trains on that same
    tensor: no host-to-device copy inside the timed region."""
    from aemim_mm.benchmark import PRESETS, Runner
    preset = dict(PRESETS['smoke'], device='meta')
    model = _Recorder('meta')
    runner = Runner('stub', model, preset)
    inputs = runner.batch['inputs']
    assert inputs.device.type == 'meta' and inputs.dtype == torch.uint8
    assert tuple(inputs.shape) == (4, 3, 32, 32)
    runner.step()
    runner.step()
    assert len(model.seen) == 2 and all(x is inputs for x in model.seen)


def test_runner_step_preprocesses_the_resident_batch():
    """On the smoke preset's model: the data preprocessor runs inside the
    step, on the runner's own tensor (already on the device: not copied)."""
    from mmengine.registry import init_default_scope

    import aemim_mm.benchmark as bench
    from aemim_mm.benchmark.timing import timed_region
    init_default_scope('mmpretrain')
    runner = bench.build_runners({'mae': bench.BASE_VARIANTS['mae']},
                                 bench.PRESETS['smoke'])[0]
    seen = []
    runner.model.data_preprocessor.register_forward_hook(
        lambda module, args, out: seen.append((args[0]['inputs'],
                                               out['inputs'])))
    runner.step()
    (given, preprocessed), = seen
    assert given is runner.batch['inputs']
    assert given.dtype == torch.uint8
    assert preprocessed.dtype == torch.float32
    assert 'put on cuda once, before timing' in timed_region('cuda')


def test_table_says_what_is_timed():
    from aemim_mm.benchmark import format_table
    result = dict(preset='gpu', device_name='GPU', batch=512, reps=1,
                  warmup=0, variants={}, timed='one training iteration')
    assert format_table(result).splitlines()[1] == \
        'timed: one training iteration'


def test_benchmark_restarts_for_the_allocator_on_cpu_presets_only(
        bench_tool, monkeypatch):
    """The glibc settings only change the CPU's allocator: a GPU preset
    is not restarted (which would import everything twice)."""
    if not sys.platform.startswith('linux'):
        pytest.skip('glibc tunables are Linux-only')
    calls = []
    monkeypatch.setattr(bench_tool.os, 'execve',
                        lambda *a: calls.append(a))
    monkeypatch.delenv('GLIBC_TUNABLES', raising=False)
    bench_tool.exec_with_malloc_settings(['--preset', 'gpu'])
    assert calls == []
    bench_tool.exec_with_malloc_settings(['--preset', 'smoke'])
    assert len(calls) == 1
    assert calls[0][2]['GLIBC_TUNABLES'] == bench_tool.TIMING_TUNABLES


@pytest.mark.parametrize('preset', ['gpu', 'rehearsal'])
def test_sweep_command(run_tool, bench_tool, tmp_path, preset):
    """The sweep: pairwise, without the memory pass and the matrix-product
    peak, its temporary JSON outside --out."""
    args = run_tool.parse_args(['--out', str(tmp_path / 'out')])
    p = run_tool.PRESETS[preset]
    (cmd, ) = run_tool.stage_commands('sweep', args, p, time.time() + 60,
                                      512)
    assert cmd[1] == 'tools/benchmark.py'
    sweep = bench_tool.parse_args(cmd[2:])
    assert sweep.pairwise and sweep.no_memory and sweep.peak_size == 0
    assert (sweep.warmup, sweep.reps, sweep.batch) == (
        p['sweep']['warmup'], p['sweep']['reps'], 512)
    assert sweep.variants == p['sweep']['variants']
    assert sweep.out == str(tmp_path / 'out' / 'cost_sweep.json')
    assert sweep.tmp_dir == args.work_dir
    assert not sweep.tmp_dir.startswith(str(tmp_path / 'out') + os.sep)


@pytest.mark.parametrize('args', [['--processes', '2'], ['--phases', '1']])
def test_pairwise_is_one_process_without_profiling(bench_tool, capsys,
                                                   args):
    with pytest.raises(SystemExit):
        bench_tool.parse_args(['--preset', 'smoke', '--pairwise', *args])
    assert '--pairwise times in this process' in capsys.readouterr().err


def test_pairwise_sweep_cut_after_the_first_variant_keeps_it(
        bench_tool, monkeypatch, tmp_path):
    """--pairwise writes its JSON after each variant: stopped while the
    second variant is built, the first one's result is there, valid and
    marked incomplete, with no temporary file beside it."""
    built = []
    build_runners = bench_tool.build_runners

    def build(variants, preset):
        built.extend(variants)
        if len(built) == 3:
            raise Cut('stopped while building the second variant')
        return build_runners(variants, preset)

    monkeypatch.setattr(bench_tool, 'build_runners', build)
    out, work = tmp_path / 'out' / 'cost_sweep.json', tmp_path / 'work'
    with pytest.raises(Cut):
        bench_tool.main([
            '--preset', 'smoke', '--warmup', '1', '--reps', '2',
            '--no-memory', '--peak-size', '0', '--pairwise', '--sweep',
            '--variants', 'aemim_steps1', 'aemim_steps2', '--out', str(out),
            '--tmp-dir', str(work)])
    assert built == ['mae', 'aemim_steps1', 'aemim_steps2']
    assert os.listdir(out.parent) == ['cost_sweep.json']
    assert os.listdir(work) == []
    result = json.loads(out.read_text())
    assert result['pairwise'] is True and result['complete'] is False
    assert result['planned_variants'] == ['mae', 'aemim_steps1',
                                          'aemim_steps2']
    assert list(result['variants']) == ['mae', 'aemim_steps1']
    row, mae = result['variants']['aemim_steps1'], result['variants']['mae']
    assert len(row['times_s']) == len(row['mae_times_s']) == 2
    assert mae['times_s'] == row['mae_times_s']     # one pairing so far
    assert row['ratio'] == pytest.approx(
        statistics.median(row['times_s']) /
        statistics.median(row['mae_times_s']))
    assert row['gflops'] > mae['gflops'] > 0
    assert result['matmul_peak_tflops'] is None and 'mfu' not in row
    assert set(result['seconds']) == {'startup', 'build', 'timing',
                                      'flops', 'memory', 'peak'}
    assert 'partial result: 2 of 3 variants' in result['table']
    assert 'each variant against MAE alone' in result['table']


@pytest.fixture
def equal_time_stubs(monkeypatch, tmp_path):
    """run_equal_time with its steps stubbed, on a fake clock that each
    calibration advances by 20 s; the calls land in ``calls``."""
    from aemim_repro import equal_time
    clock = [1000.0]
    calls = []

    def calibrate(method, work_dir, data_root, settings, seed):
        calls.append(('calibrate', method))
        clock[0] += 20
        return dict(iters_per_epoch=1, iter_seconds=[1.0],
                    epoch_seconds=1.0, overhead_s=5.0)

    def pretrain(method, work_dir, data_root, settings, seed, budget,
                 epoch_seconds):
        calls.append(('pretrain', method, budget))
        return dict(budget_s=budget, planned_epochs=int(budget),
                    warmup_epochs=0, epochs=int(budget), seconds=budget,
                    cut=False, checkpoint='final.pth',
                    loss_curves=str(tmp_path / 'none.json'))

    def downstream(checkpoint, work_dir, data_root, settings, seed):
        calls.append(('downstream', checkpoint))
        return dict(clean_top1=50.0, adv_clean=50.0, fgsm={'1': 40.0},
                    pgd={'1': 30.0})

    monkeypatch.setattr(equal_time, 'time',
                        SimpleNamespace(time=lambda: clock[0]))
    for name, stub in (('calibrate', calibrate), ('pretrain', pretrain),
                       ('downstream', downstream)):
        monkeypatch.setattr(equal_time, name, stub)
    for split in ('train', 'test'):
        (tmp_path / 'data' / split / 'a').mkdir(parents=True)
        (tmp_path / 'data' / split / 'a' / 'x.png').write_bytes(b'')
    settings = dict(downstream_s=30, min_pretrain_s=20, pretrain_s=None,
                    linprobe=dict(epochs=1), evaluate=dict(adversarial=dict(
                        fgsm_eps=[1], pgd_eps=[1], pgd_steps=2,
                        num_samples=8)))

    def run(deadline):
        return equal_time.run_equal_time(
            str(tmp_path / 'out'), str(tmp_path / 'work'),
            str(tmp_path / 'data'), settings, deadline, log=lambda m: None)

    return SimpleNamespace(run=run, calls=calls, clock=clock,
                           module=equal_time)


def test_equal_time_plans_against_the_deadline(equal_time_stubs, tmp_path):
    """Pre-training shares what the deadline leaves after the calibration
    (three 20 s epochs on the fake clock), not a duration counted from the
    comparison's own start."""
    t = equal_time_stubs
    result = t.run(deadline=1300.0)
    # (1300 - 1060 - 3 x 30 s of downstream) / 3 - 5 s overhead
    assert [c[2] for c in t.calls if c[0] == 'pretrain'] == [45.0] * 3
    assert result['budget_s'] == 45.0 and result['deadline'] == 1300.0
    assert result['seconds'] == 300.0
    assert sorted(os.listdir(tmp_path / 'out')) == ['equal_time.json',
                                                    'equal_time.png']


@pytest.mark.parametrize('left', [-5.0, 0.0, 149.0])
def test_equal_time_refuses_a_deadline_it_cannot_meet(equal_time_stubs,
                                                      tmp_path, left):
    """A deadline past, or nearer than 3 x (20 + 30) s: nothing runs."""
    t = equal_time_stubs
    with pytest.raises(RuntimeError, match='left before the deadline'):
        t.run(deadline=t.clock[0] + left)
    assert t.calls == []
    assert not (tmp_path / 'out').exists()


def test_equal_time_cut_while_saving_leaves_no_temporary(
        equal_time_stubs, monkeypatch, tmp_path):
    """Stopped in the middle of writing equal_time.json: no file in the
    output folder (the temporary one was in the work dir)."""
    t = equal_time_stubs

    def dump(obj, f, **kwargs):
        f.write('{"cut')
        raise Cut('stopped while writing')

    monkeypatch.setattr(t.module, 'json', SimpleNamespace(dump=dump,
                                                          load=json.load))
    with pytest.raises(Cut):
        t.run(deadline=1300.0)
    assert os.listdir(tmp_path / 'out') == []
    assert not list((tmp_path / 'work').rglob('*.tmp'))


def test_write_atomically_keeps_temporaries_out_of_the_folder(
        tmp_path, monkeypatch):
    from aemim_mm.benchmark import report
    out, tmp = tmp_path / 'out', tmp_path / 'work'
    out.mkdir()

    def write(path):
        assert os.listdir(out) == []          # nothing there while writing
        assert Path(path).parent == tmp
        Path(path).write_text('new')

    report.write_atomically(str(out / 'a.json'), write, str(tmp))
    assert os.listdir(out) == ['a.json'] and os.listdir(tmp) == []

    def cut(path):
        Path(path).write_text('half')
        raise Cut

    with pytest.raises(Cut):
        report.write_atomically(str(out / 'a.json'), cut, str(tmp))
    assert os.listdir(out) == ['a.json'] and os.listdir(tmp) == []
    assert (out / 'a.json').read_text() == 'new'
    with pytest.raises(ValueError, match='must be outside'):
        report.write_text_atomically(str(out / 'b.json'), 'x',
                                     str(out / 'sub'))
    # on another file system: copied onto the file, no temporary left

    def cross_device(src, dst):
        raise OSError(errno.EXDEV, 'Invalid cross-device link')

    monkeypatch.setattr(report.os, 'replace', cross_device)
    report.write_text_atomically(str(out / 'a.json'), 'copied', str(tmp))
    assert (out / 'a.json').read_text() == 'copied'
    assert os.listdir(out) == ['a.json'] and os.listdir(tmp) == []


def test_summary_is_written_through_the_work_dir(run_tool, tmp_path):
    out, work = tmp_path / 'out', tmp_path / 'work'
    env = dict(device='CPU', date='2026-11-30 12:00 UTC', python='3.12.3',
               torch='2.11.0', cuda=None, packages={})
    run_tool.write_summary(str(out), env, [], 'bash x.sh', str(work))
    assert sorted(os.listdir(out)) == ['summary.json', 'summary.md']
    assert os.listdir(work) == []


def test_work_dir_inside_out_is_refused(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'device_run.py'), '--out',
         str(tmp_path), '--work-dir', str(tmp_path / 'work')],
        capture_output=True, text=True)
    assert proc.returncode == 2
    assert '--work-dir must be outside --out' in proc.stderr


def test_nvidia_smi_missing_or_failing(run_tool, tmp_path, monkeypatch):
    monkeypatch.setenv('PATH', str(tmp_path))
    assert run_tool.nvidia_smi().startswith(
        'unavailable (FileNotFoundError')
    fake = tmp_path / 'nvidia-smi'
    fake.write_text('#!/bin/sh\necho "NVML: driver not loaded" >&2\n'
                    'exit 9\n')
    fake.chmod(0o755)
    assert run_tool.nvidia_smi() == \
        'unavailable (exit 9: NVML: driver not loaded)'


def test_environment_on_a_gpu_without_nvidia_smi(run_tool, tmp_path,
                                                 monkeypatch):
    """A missing nvidia-smi is recorded, not raised (it would stop the run
    before any stage)."""
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'get_device_name',
                        lambda device=None: 'Fake GPU')
    monkeypatch.setattr(torch.cuda, 'get_device_properties',
                        lambda device=None: SimpleNamespace(
                            total_memory=80 * 2**30))
    monkeypatch.setenv('PATH', str(tmp_path))
    info = run_tool.environment('gpu', str(tmp_path / 'kit'))
    assert info['device'] == 'Fake GPU'
    assert info['device_memory_gib'] == 80.0
    assert info['nvidia_smi'].startswith('unavailable (FileNotFoundError')


def test_ddp_stage_environment(run_tool, monkeypatch):
    monkeypatch.delenv('NCCL_DEBUG', raising=False)
    env = run_tool.stage_env('ddp')
    assert env['NCCL_DEBUG'] == 'WARN'
    assert env['CUBLAS_WORKSPACE_CONFIG'] == ':4096:8'
    for other in ('cost', 'equal_time', 'sweep'):
        assert 'NCCL_DEBUG' not in run_tool.stage_env(other)
        assert 'CUBLAS_WORKSPACE_CONFIG' not in run_tool.stage_env(other)
    monkeypatch.setenv('NCCL_DEBUG', 'INFO')      # the caller's is kept
    assert run_tool.stage_env('ddp')['NCCL_DEBUG'] == 'INFO'


def _cost(**seconds) -> dict:
    return dict(warmup=2, reps=10, seconds=seconds, variants=dict(
        mae=dict(median_s=0.1), wrapper_attack_off=dict(median_s=0.1),
        fast_aemim=dict(median_s=0.15), aemim=dict(median_s=0.25)))


def test_sweep_estimate_from_the_cost_stage(run_tool):
    sweep = dict(run_tool.PRESETS['gpu']['sweep'], warmup=1, reps=5)
    cost = _cost(startup=12.0, build=8.0, timing=14.0, flops=4.0)
    # per model: (8 + 4) / 4 s + (14 - 12 x 0.6) / 4 s of first iterations
    # = 4.7 s; 7 models; 6 x 6 rounds of 0.1 + 1.1 x 0.25 s
    assert run_tool.sweep_estimate(cost, sweep) == pytest.approx(
        12 + 7 * 4.7 + 6 * 6 * 0.375)
    assert run_tool.sweep_estimate(dict(cost, seconds=None), sweep) is None


@pytest.mark.parametrize('cost,expected', [
    (None, 40),                                   # no cost.json: min_s
    (_cost(startup=12.0, build=8.0, timing=14.0, flops=4.0), 58.4),
    (_cost(startup=1.0, build=0.0, timing=0.0, flops=0.0), 40),   # min_s
    (_cost(startup=60.0, build=8.0, timing=14.0, flops=4.0), 80),  # cap
])
def test_sweep_need(run_tool, tmp_path, cost, expected):
    if cost is not None:
        (tmp_path / 'cost.json').write_text(json.dumps(cost))
    assert run_tool.sweep_need(str(tmp_path), run_tool.PRESETS['gpu']) == \
        pytest.approx(expected)


def test_equal_time_minimum_covers_what_the_comparison_needs(run_tool):
    from aemim_repro.equal_time import METHODS, needed_seconds
    for preset in run_tool.PRESETS.values():
        assert preset['equal_time']['min_s'] >= needed_seconds(
            len(METHODS), preset['equal_time']['settings'])


def _extraction(run_tool, monkeypatch, seconds):
    procs = []

    def start(args):
        procs.append(subprocess.Popen(['sleep', str(seconds)]))
        return procs[-1]

    calls = []

    def run(cmd, limit, env=None):
        calls.append((cmd, limit, time.time()))
        return 'ok'

    monkeypatch.setattr(run_tool, 'start_extraction', start)
    monkeypatch.setattr(run_tool, 'run_command', run)
    return procs, calls


def test_extraction_wait_is_charged_to_equal_time(run_tool, monkeypatch,
                                                  tmp_path):
    """The equal-time stage's clock starts before it waits for CIFAR-10;
    its subprocess gets what is left and the absolute deadline."""
    procs, calls = _extraction(run_tool, monkeypatch, 2)
    code = run_tool.main(['--preset', 'rehearsal', '--stages', 'equal_time',
                          '--out', str(tmp_path / 'out')])
    assert code == 0
    summary = json.loads((tmp_path / 'out' / 'summary.json').read_text())
    (stage, ) = summary['stages']
    assert stage['status'] == 'ok'
    assert 1.9 <= stage['data_wait_s'] <= stage['seconds']
    (cmd, limit, at), = calls
    deadline = float(cmd[cmd.index('--deadline') + 1])
    assert deadline == pytest.approx(at + limit, abs=0.2)
    assert limit <= stage['limit'] - 1.9
    assert sorted(os.listdir(tmp_path / 'out')) == ['summary.json',
                                                    'summary.md']


def test_extraction_past_the_stage_limit_cuts_the_stage(
        run_tool, monkeypatch, tmp_path):
    preset = copy.deepcopy(run_tool.PRESETS['rehearsal'])
    preset['equal_time'].update(cap=2, min_s=1)
    monkeypatch.setitem(run_tool.PRESETS, 'rehearsal', preset)
    procs, calls = _extraction(run_tool, monkeypatch, 60)
    start = time.monotonic()
    code = run_tool.main(['--preset', 'rehearsal', '--stages', 'equal_time',
                          '--out', str(tmp_path / 'out')])
    assert code == 1 and calls == []
    assert time.monotonic() - start < 30
    (stage, ) = json.loads(
        (tmp_path / 'out' / 'summary.json').read_text())['stages']
    assert stage['status'].startswith('cut: the CIFAR-10 extraction')
    assert stage['seconds'] == pytest.approx(2, abs=1)
    assert procs[0].poll() is not None              # stopped


# ------------------------------------------------------------ rehearsal
RESULT_FILES = {'run.log', 'summary.md', 'summary.json', 'cost.json',
                'cost_sweep.json', 'ddp.json', 'equal_time.json',
                'equal_time.png'}


@pytest.mark.slow
def test_rehearsal_runs_every_stage(kit, tmp_path):
    """The GPU command on its CPU preset: the kit installed into a fresh
    site folder, every stage within its limit, every result file."""
    out = tmp_path / 'out'
    env = dict(os.environ, OUT=str(out), AEMIM_DEVKIT=str(kit),
               PYTHON=sys.executable, OMP_NUM_THREADS='1',
               OMP_WAIT_POLICY='PASSIVE')
    proc = subprocess.run(
        ['bash', str(REPO / 'tools' / 'device_run.sh'), '--preset',
         'rehearsal'], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=1200)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
    files = {p.name for p in out.iterdir()}
    assert files == RESULT_FILES
    assert all((out / f).stat().st_size < 16 * 2**20 for f in files)
    summary = json.loads((out / 'summary.json').read_text())
    assert [s['name'] for s in summary['stages']] == [
        'cost', 'ddp', 'equal_time', 'sweep']
    assert all(s['status'] == 'ok' for s in summary['stages'])
    # the kit's packages were the ones imported
    assert str(kit) not in summary['environment']['packages']
    assert summary['environment']['packages']['mmengine'] == '0.10.7'
    cost = json.loads((out / 'cost.json').read_text())
    assert list(cost['variants'])[:4] == [
        'mae', 'wrapper_attack_off', 'fast_aemim', 'aemim']
    assert all('mfu' in r for r in cost['variants'].values())
    assert 'put on cpu once, before timing' in cost['timed']
    assert cost['timed'] in cost['table']
    assert cost['seconds']['startup'] > 0
    sweep = json.loads((out / 'cost_sweep.json').read_text())
    assert 'aemim_steps3' in sweep['variants'] and 'steps' in sweep['growth']
    # pairwise, complete, without the memory pass and the peak
    assert sweep['pairwise'] is True and sweep['complete'] is True
    assert sweep['matmul_peak_tflops'] is None
    for name, row in sweep['variants'].items():
        assert row['peak_mem_mib'] is None and 'mfu' not in row
        assert name == 'mae' or len(row['mae_times_s']) == len(
            row['times_s'])
    stage = {s['name']: s for s in summary['stages']}
    assert stage['equal_time']['data_wait_s'] >= 0
    assert stage['equal_time']['kept_for_sweep'] >= 25
    assert '--deadline' in stage['equal_time']['command']
    assert json.loads((out / 'ddp.json').read_text())['passed']
    eq = json.loads((out / 'equal_time.json').read_text())
    for method in ('mae', 'fast_aemim', 'aemim'):
        r = eq['methods'][method]
        assert r['pretrain']['epochs'] >= 1
        assert set(r['eval']['fgsm']) == {'1', '2', '4', '8'}
    md = (out / 'summary.md').read_text()
    assert '## Cost (Table 4)' in md and '## Equal wall time' in md
    assert 'bash tools/device_run.sh --preset rehearsal' in md


def test_ensure_distutils_enables_setuptools_shim(run_tool, monkeypatch):
    """Python >= 3.12 has no distutils; the kit's setuptools shim stands in
    (simulated here by hiding the module)."""
    import _distutils_hack
    monkeypatch.setitem(sys.modules, 'distutils', None)   # ImportError
    before = list(sys.meta_path)
    calls = []
    monkeypatch.setattr(_distutils_hack, 'add_shim',
                        lambda: calls.append('add_shim'))
    run_tool.ensure_distutils()
    assert calls == ['add_shim'] and sys.meta_path == before
    monkeypatch.delitem(sys.modules, 'distutils')
    calls.clear()
    run_tool.ensure_distutils()     # importable: nothing to do
    assert calls == []
