"""tools/benchmark.py on its tiny ``smoke`` preset, and the library behind
it (:mod:`aemim_mm.benchmark`)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import aemim_mm.benchmark as benchmark_lib
from module_loader import load_tool

REPO = Path(__file__).resolve().parents[1]
LINUX = sys.platform.startswith('linux')


def run_benchmark(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / 'bench.json'
    env = dict(os.environ, OMP_NUM_THREADS='1', OMP_WAIT_POLICY='PASSIVE')
    env.pop('GLIBC_TUNABLES', None)     # the script chooses its own
    proc = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'benchmark.py'), '--preset',
         'smoke', '--warmup', '1', '--reps', '2', '--out', str(out), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert '| mae |' in proc.stdout            # the table on stdout
    # progress stays readable: no per-parameter initialisation log
    assert 'init_weights' not in proc.stdout + proc.stderr
    return json.loads(out.read_text())


@pytest.mark.slow
def test_benchmark_reports_every_variant(tmp_path: Path):
    result = run_benchmark(tmp_path)
    rows = result['variants']
    assert list(rows) == ['mae', 'wrapper_attack_off', 'fast_aemim', 'aemim',
                          'fast_aemim_attack_bf16', 'aemim_attack_bf16']
    assert [r['attack_amp_dtype'] for r in rows.values()] == [None] * 4 + [
        'bfloat16'] * 2
    assert rows['mae']['ratio'] == pytest.approx(1.0)
    for name, row in rows.items():
        assert len(row['times_s']) == 2 and row['median_s'] > 0, name
        assert row['images_per_s'] == pytest.approx(4 / row['median_s'])
        assert row['peak_mem_mib'] > 0, name
    # the arithmetic: AEMIM > Fast AEMIM > MAE == wrapper with the attack off
    flops = {n: r['gflops'] for n, r in rows.items()}
    assert flops['wrapper_attack_off'] == pytest.approx(flops['mae'],
                                                        rel=0.01)
    assert flops['aemim'] > flops['fast_aemim'] > flops['mae']
    # the attack's precision changes its speed, not its arithmetic
    for name in ('fast_aemim', 'aemim'):
        assert flops[f'{name}_attack_bf16'] == pytest.approx(flops[name],
                                                             rel=0.01)
    # AEMIM: two full MAE passes plus two encoder-only attack steps
    assert 2.0 < rows['aemim']['flop_ratio'] < 4.0
    assert result['targets'] == []      # the smoke preset has none
    if LINUX:   # timed with the caching malloc settings (re-exec)
        assert result['glibc_tunables'] == load_tool('benchmark').TIMING_TUNABLES


@pytest.mark.slow
@pytest.mark.skipif(not LINUX, reason='glibc tunables are Linux-only')
def test_malloc_default_keeps_the_environment(tmp_path: Path):
    result = run_benchmark(tmp_path, '--malloc', 'default', '--no-memory',
                           '--variants', 'wrapper_attack_off')
    assert result['glibc_tunables'] is None


def test_targets_are_checked_and_printed():
    bench = benchmark_lib
    rows = {'wrapper_attack_off': dict(ratio=1.01),
            'fast_aemim': dict(ratio=1.2801),
            'aemim': dict(ratio=2.25, mem_ratio=None),
            'fast_aemim_attack_bf16': dict(ratio=1.27),
            'aemim_attack_bf16': dict(ratio=2.2501, mem_ratio=1.1)}
    checked = bench.check_targets(rows, bench.TARGETS['cpu'])
    assert [(t['variant'], t['what'], t['met']) for t in checked] == [
        ('wrapper_attack_off', 'ratio', True),
        ('fast_aemim', 'ratio', False),     # 1.2801 > 1.28: no rounding
        ('aemim', 'ratio', True),
        ('aemim', 'mem_ratio', None),       # memory not measured
        ('fast_aemim_attack_bf16', 'ratio', True),
        ('aemim_attack_bf16', 'ratio', False),
        ('aemim_attack_bf16', 'mem_ratio', True)]
    table = bench.format_table(dict(
        preset='cpu', device_name='CPU', batch=16, reps=1, warmup=0,
        variants={}, targets=checked))
    assert 'target fast_aemim ratio <= 1.28: 1.280, NOT met' in table
    assert 'target aemim mem_ratio <= 1.3: -, not measured' in table


@pytest.mark.parametrize('times,expected', [
    ([2.6, 2.2, 2.7], (1.1, 1.3)),      # each over MAE's time of its rep
    ([2.0, 2.0, 2.0], (0.9090909, 1.0)),
    ([2.0, 2.0], None),                 # not one time per repetition
    (None, None),                       # an old result without times
])
def test_rep_ratio_range(times, expected):
    bench = benchmark_lib
    rows = {'mae': dict(times_s=[2.0, 2.0, 2.2]),
            'fast_aemim': {} if times is None else dict(times_s=times)}
    spread = bench.rep_ratio_range(rows, 'fast_aemim')
    if expected is None:
        assert spread is None
    else:
        torch.testing.assert_close(spread, expected)


def test_table_shows_the_spread_of_repetitions():
    bench = benchmark_lib
    row = dict(steps=1, adv_ratio=0.25, median_s=2.6, images_per_s=1.0,
               ratio=1.3, gflops=1.0, flop_ratio=1.28,
               measured_over_predicted=1.3 / 1.28, peak_mem_mib=None,
               mem_ratio=None, times_s=[2.6, 2.2, 2.7])
    mae = dict(row, steps=0, adv_ratio=0.0, ratio=1.0, times_s=[2.0] * 3)
    rows = {'mae': mae, 'fast_aemim': row}
    table = bench.format_table(dict(
        preset='cpu', device_name='CPU', batch=16, reps=3, warmup=0,
        variants=rows, targets=bench.check_targets(
            rows, [('fast_aemim', 'ratio', 1.28)])))
    assert '| fast_aemim | 1 | 0.25 | 2.600 | 1.00 | 1.300 | 1.100–1.350 |' \
        in table
    assert 'target fast_aemim ratio <= 1.28: 1.300 (repetitions ' \
        '1.100–1.350), NOT met' in table
    # MAE's identical iterations: the run's noise
    assert 'noise: plain MAE, identical iterations, 2.000–2.000 s/iter ' \
        '(max / min 1.000)' in table


@pytest.mark.parametrize('times,expected', [
    ([3.3, 3.5, 3.4], '3.300–3.500 s/iter (max / min 1.061)'),
    ([7.44, 9.97], '7.440–9.970 s/iter (max / min 1.340)'),
])
def test_noise_line(times, expected):
    bench = benchmark_lib
    assert bench.format_noise(times) == \
        f'noise: plain MAE, identical iterations, {expected}'


@pytest.mark.slow
def test_benchmark_sweep_and_growth_fit(tmp_path: Path):
    result = run_benchmark(tmp_path, '--sweep', '--no-memory', '--variants',
                           'aemim_steps1', 'aemim_steps2', 'aemim_steps3')
    assert set(result['variants']) == {'mae', 'aemim_steps1', 'aemim_steps2',
                                       'aemim_steps3'}
    gflops = [result['variants'][f'aemim_steps{t}']['gflops']
              for t in (1, 2, 3)]
    # each attack step adds the same arithmetic
    assert gflops[2] - gflops[1] == pytest.approx(gflops[1] - gflops[0],
                                                  rel=0.01)
    assert 'steps' in result['growth']


@pytest.mark.slow
def test_benchmark_phases(tmp_path: Path):
    """--phases profiles the wrapped variants and splits their time."""
    result = run_benchmark(tmp_path, '--no-memory', '--phases', '1',
                           '--variants', 'wrapper_attack_off', 'aemim')
    phases = result['phases']
    assert phases['iterations'] == 1
    assert list(phases['variants']) == ['wrapper_attack_off', 'aemim']
    off, aemim = phases['variants']['wrapper_attack_off'], phases[
        'variants']['aemim']
    assert (off['subset'], aemim['subset']) == (0, 4)   # smoke batch 4
    assert off['attack'] == 0 and off['adv_per_image_over_clean'] is None
    assert aemim['attack'] > 0 and aemim['adv_per_image_over_clean'] > 0
    for row in (off, aemim):
        parts = sum(row[k] for k in ('clean_forward', 'clean_backward',
                                     'attack', 'adversarial_forward',
                                     'adversarial_backward', 'optimizer',
                                     'rest'))
        assert parts == pytest.approx(row['iteration'])
        assert row['rest'] >= 0
    table = benchmark_lib.format_phases(phases)
    assert '| aemim | 4 | ' in table and 'attack' in table.splitlines()[2]


def test_phases_are_profiled_in_interleaved_rounds():
    """profile_phases steps the variants in turn, round after round (as the
    timing does), and reports per variant the medians of its rounds."""
    from types import SimpleNamespace

    from torch.profiler import record_function

    from aemim_mm.models.profiling import CLEAN_FORWARD
    from aemim_mm.models.randomness import SampleRandomness
    bench = benchmark_lib
    calls = []

    def stub(name, adv_ratio):
        def step():
            calls.append(name)
            with record_function(CLEAN_FORWARD):
                torch.ones(8).sum()
            return 1.0
        def select_adversarial(batch, device):    # the wrapper's rule
            return SampleRandomness(batch, device).select(adv_ratio)
        return SimpleNamespace(
            name=name, step=step, preset=dict(batch=8),
            model=SimpleNamespace(select_adversarial=select_adversarial))

    result = bench.profile_phases([stub('a', 0.0), stub('b', 0.25)], 3)
    assert calls == ['a', 'b'] * 3
    assert (result['a']['subset'], result['b']['subset']) == (0, 2)
    for row in result.values():
        assert row['iteration'] == 1.0 and row['clean_forward'] > 0
        assert row['rest'] == pytest.approx(1.0 - sum(
            row[k] for k in bench.PHASES))


@pytest.mark.slow
@pytest.mark.parametrize('args,message', [
    (['--phases', '-1'], '--phases must be >= 0'),
    (['--preset', 'gpu', '--phases', '1'], '--phases: preset gpu runs on a '
     'GPU'),
    (['--reps', '0'], '--reps must be >= 1'),
    (['--batch', '0'], '--batch must be >= 1'),
    (['--processes', '0'], '--processes must be >= 1'),
    (['--variants', 'nope'], "--variants: unknown \\['nope'\\]"),
])
def test_benchmark_rejects_bad_arguments(tmp_path: Path, args, message):
    proc = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'benchmark.py'), '--preset',
         'smoke', *args], cwd=REPO, capture_output=True, text=True,
        timeout=120)
    assert proc.returncode != 0
    import re
    assert re.search(message, proc.stderr + proc.stdout), proc.stderr[-2000:]


@pytest.mark.slow
def test_benchmark_in_several_processes(tmp_path: Path):
    """--processes 2: two timing subprocesses; the ratio is the median of
    the per-process ratios, the times are pooled."""
    result = run_benchmark(tmp_path, '--processes', '2', '--no-memory',
                           '--variants', 'wrapper_attack_off')
    assert result['processes'] == 2
    rows = result['variants']
    for row in rows.values():
        assert len(row['times_s']) == 4 and len(row['process_ratios']) == 2
    torch.testing.assert_close(rows['mae']['process_ratios'], [1.0, 1.0])
    wrapper = rows['wrapper_attack_off']
    assert wrapper['ratio'] == pytest.approx(
        sum(wrapper['process_ratios']) / 2)     # median of two
    per_process = [wrapper['times_s'][:2], wrapper['times_s'][2:]]
    mae = [rows['mae']['times_s'][:2], rows['mae']['times_s'][2:]]
    for k in range(2):
        assert wrapper['process_ratios'][k] == pytest.approx(
            (sum(per_process[k]) / 2) / (sum(mae[k]) / 2))


def test_warm_up_and_repetitions_are_interleaved_rounds(monkeypatch):
    """Every warm-up round, like every timed one, steps each variant once
    in turn (a model's first iteration allocates; see time_variants)."""
    import argparse
    bench = benchmark_lib
    order = []
    monkeypatch.setattr(bench.Runner, 'step',
                        lambda self: order.append(self.name) or 0.5)
    variants = {k: bench.BASE_VARIANTS[k] for k in ('mae', 'fast_aemim')}
    runners = bench.build_runners(variants, bench.PRESETS['smoke'])
    times = bench.time_variants(runners,
                                argparse.Namespace(warmup=2, reps=3))
    assert order == ['mae', 'fast_aemim'] * 5
    assert times == {'mae': [0.5] * 3, 'fast_aemim': [0.5] * 3}
