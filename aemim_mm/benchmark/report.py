"""The benchmark's result as text: the markdown table (with TFLOP/s and
MFU when a peak was measured), the phase table, the noise line, the
per-repetition spread, the targets and the cost-growth fit; the survey
suite's table against the FLOP floor and its profile; and writing a
result file so that a run stopped at any moment leaves either the previous
file or the new one, and no temporary file beside it."""
import errno
import itertools
import os
import os.path as osp
import shutil
import tempfile
from typing import Callable, Dict, List, Optional, Tuple

from ..models.profiling import PHASES

_TEMP_IDS = itertools.count()   # see write_atomically


def write_atomically(path: str, write: Callable[[str], None],
                     tmp_dir: Optional[str] = None) -> str:
    """Make ``path`` by ``write``-ing a temporary file outside its folder,
    then moving it onto ``path``.

    A result folder whose files are all collected (the device run's
    ``$OUT``) then never holds a half-written file or a temporary one, even
    when the process is killed while writing; the temporary file is left in
    ``tmp_dir`` at worst.

    Args:
        path: The file to make (replaced if it exists).
        write: Writes the content to the path it is given.
        tmp_dir: Folder of the temporary file, outside ``path``'s folder
            (default: the system's temporary folder). On the same file
            system the move is atomic; on another one the file is copied
            onto ``path`` (no temporary file there either).

    Returns:
        ``path``.

    Raises:
        ValueError: If ``tmp_dir`` is ``path``'s folder or inside it.
    """
    folder = osp.dirname(osp.abspath(path))
    tmp_dir = osp.abspath(tmp_dir or tempfile.gettempdir())
    if osp.commonpath([tmp_dir, folder]) == folder:
        raise ValueError(f'write_atomically: the temporary folder {tmp_dir} '
                         f'must be outside {folder}')
    os.makedirs(tmp_dir, exist_ok=True)
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(tmp_dir, f'.{osp.basename(path)}.{os.getpid()}.'
                   f'{next(_TEMP_IDS)}.tmp')
    try:
        write(tmp)
        try:
            os.replace(tmp, path)
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise
            shutil.copyfile(tmp, path)      # another file system
    finally:
        if osp.lexists(tmp):
            os.remove(tmp)
    return path


def write_text_atomically(path: str, text: str,
                          tmp_dir: Optional[str] = None) -> str:
    """:func:`write_atomically` of a text file."""

    def write(tmp: str) -> None:
        with open(tmp, 'w') as f:
            f.write(text)

    return write_atomically(path, write, tmp_dir)


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
    pooled in order, so repetitions still pair up. A row timed against MAE
    alone (``--pairwise``) holds MAE's times of its own rounds
    (``mae_times_s``); they are used instead of MAE's row.
    """
    row = rows.get(name, {})
    times = row.get('times_s')
    base = row.get('mae_times_s') or rows.get('mae', {}).get('times_s')
    if not times or not base or len(times) != len(base):
        return None
    ratios = [t / b for t, b in zip(times, base)]
    return min(ratios), max(ratios)


def format_table(result: dict) -> str:
    """The result as a markdown table (with TFLOP/s and MFU columns when
    the run measured a matrix-product peak)."""
    peak = result.get('matmul_peak_tflops')
    rounds = (f'{result["reps"]} interleaved repetitions after '
              f'{result["warmup"]} warm-up')
    if result.get('pairwise'):
        rounds = f'each variant against MAE alone, {rounds}'
    lines = [
        f'preset {result["preset"]}, {result["device_name"]}, batch '
        f'{result["batch"]}, {_processes(result)}{rounds}'
    ] + ([f'timed: {result["timed"]}'] if result.get('timed') else []) + [
        '',
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
    if result.get('complete') is False:
        lines += ['', f'partial result: {len(rows)} of '
                  f'{len(result["planned_variants"])} variants '
                  f'({", ".join(result["planned_variants"])})']
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


def format_survey_table(result: dict) -> str:
    """A ``--suite survey`` result as markdown: per method, its time and
    FLOPs against its plain algorithm's, the time ratio with the spread of
    single repetitions, the FLOP ratio (the floor) and whether the time
    ratio is within the tolerance over it; then the noise line and, with
    ``--phases``, :func:`format_survey_ops`."""
    rows = result['variants']
    tolerance = result['floor_tolerance']
    lines = [
        f'preset {result["preset"]}, {result["device_name"]}, batch '
        f'{result["batch"]}, {result["reps"]} interleaved repetitions after '
        f'{result["warmup"]} warm-up'
    ] + ([f'timed: {result["timed"]}'] if result.get('timed') else []) + [
        '',
        '| method | baseline | baseline s/iter | method s/iter | time ratio '
        '| ratio per repetition | quiet repetitions | time ratio, quiet '
        'repetitions | baseline GFLOPs | method GFLOPs | FLOP ratio (floor) '
        '| time ratio (quiet if any) / floor | within '
        f'{100 * tolerance:.0f} % of floor |',
        '|' + '---|' * 13
    ]
    for name, r in rows.items():
        if r['role'] != 'method':
            continue
        base = rows[r['baseline']]
        quiet, quiet_ratio = r.get('quiet_reps'), r.get('quiet_ratio')
        quiet = '-' if quiet is None else \
            f'{len(quiet)} of {len(r["times_s"])}'
        lines.append(
            f'| {name} | {r["baseline"]} | {base["median_s"]:.3f} | '
            f'{r["median_s"]:.3f} | {r["ratio"]:.3f} | '
            f'{_format_range((min(r["rep_ratios"]), max(r["rep_ratios"])))}'
            f' | {quiet}'
            f' | {"-" if quiet_ratio is None else f"{quiet_ratio:.3f}"}'
            f' | {base["gflops"]:.1f} | {r["gflops"]:.1f} | '
            f'{r["flop_ratio"]:.3f} | {r["measured_over_predicted"]:.3f} | '
            f'{"yes" if r["within_floor"] else "no"} |')
    lines += ['', 'noise: max / min of identical iterations: ' + ', '.join(
        f'{name} {max(r["times_s"]) / min(r["times_s"]):.3f}'
        for name, r in rows.items())]
    if all(r.get('contention_cores') for r in rows.values()):
        lines.append(
            'contention: other processes\' CPU during each timed iteration, '
            f'in cores (per repetition; quiet: under '
            f'{result["quiet_cores"]}): ' + ', '.join(
                f'{name} ' + ' '.join(f'{c:.2f}'
                                      for c in r['contention_cores'])
                for name, r in rows.items()))
    if result.get('wait_quiet'):
        lines.append(
            f'waited for a quiet machine (up to {result["wait_quiet"]:g} s '
            f'before each iteration, outside the timed region): '
            f'{result["waited_s"]:.0f} s in all')
    if result.get('phases'):
        lines += ['', format_survey_ops(result)]
    return '\n'.join(lines)


def format_survey_ops(result: dict) -> str:
    """The ``--suite survey --phases`` profile as two markdown tables:
    where each variant's profiled iteration goes (seconds), and how far each
    method is over its floor there (``phases['over_floor']``, see
    :func:`~.survey.excess_over_floor`), split into the FLOP operators and
    the rest, with the operators of the largest excess."""
    rows, phases = result['variants'], result['phases']
    ops = phases['variants']
    lines = [
        f'phases: seconds per iteration, medians of {phases["iterations"]} '
        'profiled iterations in interleaved rounds (the profiler\'s own '
        'cost included); FLOP ops: the operators FLOPs are counted for '
        '(convolutions, matrix products), other: the rest', '',
        '| variant | iteration | attack | optimizer | FLOP ops | other | '
        'GFLOP/s in FLOP ops | contention (cores) |',
        '|' + '---|' * 8
    ]
    for name, p in ops.items():
        cores = p.get('contention')
        lines.append(
            f'| {name} | {p["iteration"]:.3f} | {p["attack"]:.3f} | '
            f'{p["optimizer"]:.3f} | {p["flop_ops"]:.3f} | '
            f'{p["other"]:.3f} | '
            f'{rows[name]["gflops"] / p["flop_ops"]:.1f} | '
            f'{"-" if cores is None else f"{cores:.2f}"} |')
    lines += [
        '', 'over the floor: method s - FLOP ratio x baseline s, in the '
        'profiled iterations', '',
        '| method | FLOP ratio x baseline s | method s | excess s | of which '
        'FLOP ops s | of which other s | largest excess (s) |',
        '|' + '---|' * 7
    ]
    for name, ex in phases['over_floor'].items():
        largest = ', '.join(f'{op} {s:.3f}' for op, s in ex['largest'])
        lines.append(
            f'| {name} | {ex["floor_x_baseline"]:.3f} | '
            f'{ex["iteration"]:.3f} | {ex["excess"]:.3f} | '
            f'{ex["flop_ops"]:.3f} | {ex["other"]:.3f} | {largest} |')
    return '\n'.join(lines)
