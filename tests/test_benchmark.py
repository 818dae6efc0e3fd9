"""tools/benchmark.py on its tiny ``smoke`` preset."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_benchmark(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / 'bench.json'
    env = dict(os.environ, OMP_NUM_THREADS='1', OMP_WAIT_POLICY='PASSIVE')
    proc = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'benchmark.py'), '--preset',
         'smoke', '--warmup', '1', '--reps', '2', '--out', str(out), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert '| mae |' in proc.stdout            # the table on stdout
    return json.loads(out.read_text())


def test_benchmark_reports_every_variant(tmp_path: Path):
    result = run_benchmark(tmp_path)
    rows = result['variants']
    assert list(rows) == ['mae', 'wrapper_attack_off', 'fast_aemim', 'aemim']
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
    # AEMIM: two full MAE passes plus two encoder-only attack steps
    assert 2.0 < rows['aemim']['flop_ratio'] < 4.0


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


@pytest.mark.parametrize('args,message', [
    (['--reps', '0'], '--reps must be >= 1'),
    (['--batch', '0'], '--batch must be >= 1'),
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
