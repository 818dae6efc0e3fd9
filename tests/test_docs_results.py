"""Documentation checks: the performance tables and numbers of
docs/performance.md are what the tools print for the committed results in
docs/results/.

These test the docs, not the code: a change of a table without a new run
(or of a committed JSON without its rows) fails here. The
code that makes the tables is tested in tests/test_benchmark.py.
"""
import json
from pathlib import Path

import pytest

import aemim_mm.benchmark as benchmark_lib
from module_loader import load_tool

REPO = Path(__file__).resolve().parents[1]
PERFORMANCE = REPO / 'docs' / 'performance.md'
pytestmark = pytest.mark.docs


@pytest.mark.parametrize('result_file', ['benchmark_cpu.json'])
def test_performance_doc_tables_come_from_the_committed_results(result_file):
    """Every row and target line of docs/performance.md's table is what
    format_table prints for the committed JSON, whose command is quoted."""
    bench = benchmark_lib
    result = json.loads((REPO / 'docs' / 'results' / result_file).read_text())
    doc = PERFORMANCE.read_text()
    assert result['command'].split(' ', 1)[1] in doc   # the command
    lines = [ln for ln in bench.format_table(result).splitlines()
             if ln.startswith(('| ', 'target ', 'cost vs ', 'noise: '))]
    assert len(lines) > len(result['variants'])
    for line in lines:
        assert line in doc, f'docs/performance.md lacks: {line}'


def test_performance_doc_phase_table_comes_from_the_committed_result():
    """docs/performance.md's phase table is what format_phases prints for the
    committed --phases run, whose command is quoted."""
    bench = benchmark_lib
    result = json.loads((REPO / 'docs' / 'results' /
                         'benchmark_cpu_phases.json').read_text())
    doc = PERFORMANCE.read_text()
    assert f'--phases {result["phases"]["iterations"]} ' in result['command']
    assert result['command'].split(' ', 1)[1] in doc
    lines = [ln for ln in bench.format_phases(result['phases']).splitlines()
             if ln]
    assert len(lines) == 3 + len(result['phases']['variants'])
    for line in lines:
        assert line in doc, f'docs/performance.md lacks: {line}'
    mae = result['variants']['mae']['median_s']
    assert f'timed MAE at {mae:.3f} s/iter' in doc


@pytest.mark.parametrize('result_file,preset', [
    ('benchmark_cpu_batch8.json', False), ('benchmark_cpu.json', True),
    ('benchmark_cpu_batch32.json', False)])
def test_performance_doc_batch_table_comes_from_the_committed_results(result_file,
                                                             preset):
    result = json.loads((REPO / 'docs' / 'results' / result_file).read_text())
    rows, batch = result['variants'], result['batch']
    doc = PERFORMANCE.read_text()
    fast = rows['fast_aemim']
    line = (f'| {batch}{" (preset)" if preset else ""} | {batch // 4} | '
            f'{rows["wrapper_attack_off"]["ratio"]:.3f} | '
            f'{fast["ratio"]:.3f} ({fast["measured_over_predicted"]:.3f}) | '
            f'{rows["aemim"]["ratio"]:.3f} | '
            f'{rows["aemim"]["mem_ratio"]:.3f} |')
    assert line in doc
    assert f'--batch {batch} --reps {result["reps"]} --warmup ' \
        f'{result["warmup"]} --out docs/results/{result_file}' in doc \
        or preset


REPEATS = ['benchmark_cpu.json'] + [f'benchmark_cpu_repeat{i}.json'
                                    for i in (1, 2, 3, 4)]


@pytest.mark.parametrize('run', [1, 2, 3, 4])
def test_performance_doc_repeat_rows_come_from_the_committed_results(run):
    result = json.loads((REPO / 'docs' / 'results' /
                         f'benchmark_cpu_repeat{run}.json').read_text())
    rows = result['variants']
    line = (f'| repeat {run} | {rows["mae"]["median_s"]:.3f} | '
            f'{rows["wrapper_attack_off"]["ratio"]:.3f} | '
            f'{rows["fast_aemim"]["ratio"]:.3f} | '
            f'{rows["aemim"]["ratio"]:.3f} | '
            f'{rows["fast_aemim_attack_bf16"]["ratio"]:.3f} | '
            f'{rows["aemim_attack_bf16"]["ratio"]:.3f} |')
    doc = PERFORMANCE.read_text()
    assert line in doc
    assert result['command'] == (
        'python tools/benchmark.py --preset cpu --processes 3 --reps 3 '
        f'--warmup 2 --no-memory --out docs/results/benchmark_cpu_repeat{run}'
        '.json')
    assert result['batch'] == 16


def test_performance_doc_run_to_run_summary_comes_from_the_committed_results():
    """Ranges, medians and 'met in k of n' of docs/performance.md's noise paragraph."""
    import statistics
    bench = benchmark_lib
    results = [json.loads((REPO / 'docs' / 'results' / f).read_text())
               for f in REPEATS]
    doc = ' '.join(PERFORMANCE.read_text().split())
    limits = {v: limit for v, what, limit in bench.TARGETS['cpu']
              if what == 'ratio'}
    for name in ('wrapper_attack_off', 'fast_aemim', 'aemim',
                 'fast_aemim_attack_bf16', 'aemim_attack_bf16'):
        ratios = [r['variants'][name]['ratio'] for r in results]
        met, runs = sum(x <= limits[name] for x in ratios), len(ratios)
        assert (f'{min(ratios):.3f}–{max(ratios):.3f}× (met in {met} of '
                f'{runs})' in doc), name
        assert f'over the {["four", "five"][runs - 4]} runs' in doc
        assert f'{statistics.median(ratios):.3f}×' in doc, name


def test_performance_doc_attack_precision_table_comes_from_the_committed_result():
    tool = load_tool('attack_precision')
    result = json.loads((REPO / 'docs' / 'results' /
                         'attack_precision_vit-s.json').read_text())
    doc = PERFORMANCE.read_text()
    assert result['command'].split(' ', 1)[1] in doc
    for line in tool.format_rows(result['rows'],
                                 result['amp_dtype']).splitlines():
        assert '  ' + line in doc, f'docs/performance.md lacks: {line}'


def test_performance_doc_cpu_training_tunables_are_the_benchmarks():
    """The allocator setting docs/performance.md gives for CPU training is
    the one the benchmark times with."""
    benchmark = load_tool('benchmark')
    doc = PERFORMANCE.read_text()
    assert (f'`GLIBC_TUNABLES={benchmark.TIMING_TUNABLES} .venv/bin/python '
            'tools/train.py CONFIG`') in doc
