"""The GPU kit: tools/device_kit.py, tools/device_run.py (+ .sh), the
equal-time comparison, the DDP check, TimeBudgetHook and the benchmark's
MFU columns; the CPU rehearsal of the whole run (slow)."""
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from module_loader import load_tool

REPO = Path(__file__).resolve().parents[1]
SHARED_CIFAR10 = REPO.parent / 'shared' / 'data' / 'cifar10_jpg.tar.gz'


@pytest.fixture(scope='module')
def kit_tool():
    return load_tool('device_kit')


@pytest.fixture(scope='module')
def run_tool():
    return load_tool('device_run')


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
    ('cost', 200, 200 - 20 - 150 - 40 - 5),  # later minimums kept
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
    sweep = json.loads((out / 'cost_sweep.json').read_text())
    assert 'aemim_steps3' in sweep['variants'] and 'steps' in sweep['growth']
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
