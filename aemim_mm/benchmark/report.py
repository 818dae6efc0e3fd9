"""The benchmark's result as text: the markdown table (with TFLOP/s and
MFU when a peak was measured), the phase table, the noise line, the
per-repetition spread, the targets and the cost-growth fit."""
from typing import Dict, List, Optional, Tuple

from ..models.profiling import PHASES

def linear_fit(xs: List[float], ys: List[float]) -> Dict[str, float]:
    """Least-squares line through (xs, ys) and its largest relative error."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx)**2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    icpt = my - slope * mx
    worst = max(abs(y - (icpt + slope * x)) / y for x, y in zip(xs, ys))
    return dict(intercept=icpt, slope=slope, max_rel_dev=worst)

def rep_ratio_range(rows: Dict[str, dict],
                    name: str) -> Optional[Tuple[float, float]]:
    """Smallest and largest ratio of one repetition's time of ``name`` to
    MAE's time in the same repetition (``None`` without per-rep times).

    The spread of these ratios shows how far the machine's noise moves the
    reported ratio (per process the ratio of the medians; over processes
    their median). With ``--processes`` the times of all processes are
    pooled in order, so repetitions still pair up.
    """
    times = rows.get(name, {}).get('times_s')
    base = rows.get('mae', {}).get('times_s')
    if not times or not base or len(times) != len(base):
        return None
    ratios = [t / b for t, b in zip(times, base)]
    return min(ratios), max(ratios)


def format_table(result: dict) -> str:
    """The result as a markdown table (with TFLOP/s and MFU columns when
    the run measured a matrix-product peak)."""
    peak = result.get('matmul_peak_tflops')
    lines = [
        f'preset {result["preset"]}, {result["device_name"]}, batch '
        f'{result["batch"]}, {_processes(result)}{result["reps"]} '
        f'interleaved repetitions after {result["warmup"]} warm-up', '',
        '| variant | steps | adv_ratio | median s/iter | images/s | ratio to '
        'MAE | ratio per repetition | GFLOPs | FLOP ratio | measured / '
        'predicted | peak mem MiB | mem ratio |' +
        (' TFLOP/s | MFU |' if peak else ''),
        '|' + '---|' * (14 if peak else 12)
    ]
    rows = result['variants']
    for name, r in rows.items():
        mem = ('-' if r['peak_mem_mib'] is None else
               f'{r["peak_mem_mib"]:.0f}')
        mem_ratio = '-' if r['mem_ratio'] is None else f'{r["mem_ratio"]:.3f}'
        lines.append(
            f'| {name} | {r["steps"]} | {r["adv_ratio"]} | '
            f'{r["median_s"]:.3f} | {r["images_per_s"]:.2f} | '
            f'{r["ratio"]:.3f} | {_format_range(rep_ratio_range(rows, name))}'
            f' | {r["gflops"]:.1f} | {r["flop_ratio"]:.3f} |'
            f' {r["measured_over_predicted"]:.3f} | {mem} | {mem_ratio} |' +
            (f' {r["tflops"]:.3g} | {100 * r["mfu"]:.1f} % |' if peak
             else ''))
    if peak:
        lines += ['', f'matrix-product peak measured in this run: '
                  f'{peak:.3g} TFLOP/s ({result["peak_dtype"]}, '
                  f'{result["peak_size"]}^3); MFU = FLOPs / s / peak']
    after = []
    if rows.get('mae', {}).get('times_s'):
        after.append(format_noise(rows['mae']['times_s']))
    for what, fit in result.get('growth', {}).items():
        after.append(f'cost vs {what}: {fit["intercept"]:.3f} + '
                     f'{fit["slope"]:.3f} x {what} s/iter, largest deviation '
                     f'from the line {100 * fit["max_rel_dev"]:.1f} %')
    if after:
        lines += [''] + after
    if result.get('targets'):
        lines.append('')
    verdict = {True: 'met', False: 'NOT met', None: 'not measured'}
    for t in result.get('targets', []):
        value = '-' if t['value'] is None else f'{t["value"]:.3f}'
        spread = rep_ratio_range(rows, t['variant'])
        if t['what'] == 'ratio' and spread is not None:
            value += f' (repetitions {_format_range(spread)})'
        lines.append(f'target {t["variant"]} {t["what"]} <= {t["limit"]}: '
                     f'{value}, {verdict[t["met"]]}')
    if result.get('phases'):
        lines += ['', format_phases(result['phases'])]
    return '\n'.join(lines)


def format_phases(phases: dict) -> str:
    """The ``--phases`` result as a markdown table (seconds)."""
    cols = PHASES + ('rest', 'iteration')
    lines = [
        f'phases: seconds per iteration, medians of {phases["iterations"]} '
        'profiled iterations in interleaved rounds', '',
        '| variant | subset | ' + ' | '.join(c.replace('_', ' ')
                                            for c in cols) +
        ' | adversarial pass per image / clean pass per image |',
        '|' + '---|' * (len(cols) + 3)
    ]
    for name, p in phases['variants'].items():
        ratio = p['adv_per_image_over_clean']
        lines.append(
            f'| {name} | {p["subset"]} | ' +
            ' | '.join(f'{p[c]:.3f}' for c in cols) +
            f' | {"-" if ratio is None else f"{ratio:.3f}"} |')
    return '\n'.join(lines)


def format_noise(mae_times: List[float]) -> str:
    """How far identical iterations of plain MAE spread in this run: the
    machine's noise, against which the ratios and targets are read."""
    low, high = min(mae_times), max(mae_times)
    return (f'noise: plain MAE, identical iterations, {low:.3f}–{high:.3f} '
            f's/iter (max / min {high / low:.3f})')


def _processes(result: dict) -> str:
    count = result.get('processes', 1)
    return '' if count == 1 else f'{count} processes x '


def _format_range(bounds: Optional[Tuple[float, float]]) -> str:
    return '-' if bounds is None else f'{bounds[0]:.3f}–{bounds[1]:.3f}'


def check_targets(rows: Dict[str, dict], targets) -> List[dict]:
    """Each target with its measured value and whether it holds (``None``:
    the variant or the memory measurement was not run)."""
    checked = []
    for variant, what, limit in targets:
        value = rows.get(variant, {}).get(what)
        checked.append(dict(variant=variant, what=what, limit=limit,
                            value=value,
                            met=None if value is None else value <= limit))
    return checked
