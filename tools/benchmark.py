"""Side-by-side cost of MAE, the wrapper with the attack off, Fast AEMIM, AEMIM.

All variants are built in ONE process and timed with interleaved repetitions
after a warm-up, so that machine noise hits them alike. One repetition times
one full training iteration (data preprocessor, forward, attack, backward,
optimizer step) of every variant in turn; the batch is put on the preset's
device once, before timing, so a GPU iteration holds no host-to-device copy
of the images (the JSON's ``timed`` and the table say what is timed).
``--pairwise`` times each variant against MAE alone instead (MAE and the
variant in interleaved rounds, one variant model at a time, freed after) and
writes ``--out`` after every variant, so that a run stopped early keeps the
variants it finished (``complete`` is false until the last one; the device
run's sweep uses it). ``--processes N`` repeats this
in N fresh processes: on a CPU one process can be off as a whole (the
same one-process command measured the wrapper with the attack off at
1.001x to 1.038x MAE in four runs, see the README); the ratio is then the
median of the N per-process ratios. Reported per variant:

* median iteration time (over all repetitions) and images/s;
* ``ratio``: median time over plain MAE's, the paper's "relative pre-training
  time per epoch", and the smallest and largest ratio of single
  repetitions (each variant's time over MAE's in the same repetition): the
  machine's noise, to read the ratio and the targets against;
* FLOPs of one training iteration, counted by
  :class:`torch.utils.flop_counter.FlopCounterMode` (forward, attack and
  backward), their ratio to MAE's and ``measured / predicted``: the time ratio
  over the FLOP ratio (1.0 = the variant costs what its arithmetic says);
* peak memory: on a GPU the allocator's peak; on a CPU the peak resident
  memory of a fresh subprocess that builds the variant and trains it for the
  same iterations, minus its resident memory before the first iteration;
* with ``--peak-size N`` (default 8192 on a GPU, off on a CPU): the best
  rate of N x N x N matrix products in the training precision (bf16 under
  AMP, else fp32), measured in the same process, and per variant the
  achieved TFLOP/s and the model FLOP utilisation (MFU) against that peak;
* for the ``cpu`` preset, whether the targets of :data:`TARGETS` hold;
* with ``--phases N`` (CPU presets), where each wrapped variant's time goes:
  N iterations under torch's profiler (interleaved rounds, after the
  timing), split into the phases that
  :mod:`aemim_mm.models.profiling` names (clean forward and backward, attack,
  adversarial forward and backward, optimizer), medians over the N, and the
  adversarial pass's time per image over the clean pass's (1.0: the subset
  costs per image what the full batch does).

The C allocator (Linux, glibc). On a GPU, PyTorch's caching allocator keeps
freed blocks and hands them out again. On a CPU, glibc returns large freed
blocks to the operating system and page-faults fresh ones in on the next
pass, which made AEMIM's passes up to 5 % slower than the same passes of MAE
and left peak resident memory depending on allocation history (the same
variant measured 1.20x and 1.37x MAE in one run). So the timed process runs
with ``GLIBC_TUNABLES`` set to keep freed memory (:data:`TIMING_TUNABLES`,
the behaviour of a caching allocator, for every variant alike;
``--malloc default`` opts out), and the memory subprocesses with a fixed
small mmap threshold (:data:`MEMORY_TUNABLES`), so that freed blocks go
back at once and resident memory follows the live tensors. A
``GLIBC_TUNABLES`` already in the environment is left as it is. GPU presets
are not restarted: the settings only change the CPU's allocator, and a
restart would import everything twice.

The JSON also records ``seconds``: the start-up (from the script's first
line to the first model build: imports, argument checks), building the
models, timing, FLOP counting, the peak and the memory measurement. The
device run sizes its sweep from the cost stage's figures. The JSON is
written through a temporary file in ``--tmp-dir`` (outside ``--out``'s
folder), never half-written.

Usage::

    python tools/benchmark.py --preset cpu [--sweep] [--processes 3] \
        [--out FILE.json]
    python tools/benchmark.py --preset gpu --batch 256 --reps 10
    python tools/benchmark.py --preset gpu --sweep --pairwise \
        --variants aemim_steps1 aemim_steps2 --no-memory --peak-size 0

Presets: ``cpu`` = ViT-S/16 (deit-small) at 224 px with the paper's 8 x 512
decoder, batch 16 (Fast AEMIM's 25 % is then 4 samples, 200 encoder tokens;
the subset's smaller matrix products still run a few per cent less
efficiently per FLOP than the full batch's: Fast AEMIM measured 1.326x at
batch 8, 1.30x at 16 and 1.282x at 32, see the README); ``gpu`` =
ViT-B/16 at 224 px, AMP (bf16 autocast), batch 128; ``smoke`` = a tiny model
for the tests. ``--sweep`` adds AEMIM with steps 1-3 at adv_ratio 1 and
with adv_ratio 0.25-1 at steps 1, to show how the cost grows.

``--suite survey`` times the survey's adversaries instead, each against its
plain mmpretrain algorithm (:mod:`aemim_mm.benchmark.survey`): RoCL, CLAE,
ACL, AdvCL, Asym-RoCL, Asym-AdvCL and HCL against SimCLR, BYORL against
BYOL and SimSiam, AdCo, IFM and MoCHi against MoCo v2, CaCo against MoCo
v3, every model built from the method's shipped CIFAR-10 config (the
baseline is the config's ``model.algorithm``, with the same projector, and
its data preprocessor; each steps with the config's optimizer) and fed a
batch of uint8 views (two; AdvCL's three). A bank is timed past its fill,
AdvCL with pseudo-labels for the batch. All models are timed in one process
in interleaved rounds; per method
the table gives its median time over its baseline's, the smallest and
largest ratio of single repetitions, and its FLOP floor: its counted FLOPs
over the baseline's, with whether the time ratio is within 5 % over it.
``--phases N`` profiles N more rounds and splits each variant's time into
the operators FLOPs are counted for and the rest, and each method's time
over its floor into the same parts (with the operators of the largest
excess). Presets ``survey_cpu`` (the configs' models, batch 64) and
``survey_smoke`` (widths / 8, for the tests); ``--variants`` names methods
(each brings its baseline). No memory is measured. On a machine shared
with other work, each timed iteration records how many cores the other
processes used meanwhile (``/proc/stat``); a repetition is quiet when both
iterations of a pair saw under 0.1 cores, and the verdict against the floor
is taken on the quiet repetitions where there are any. ``--wait-quiet S``
waits up to S seconds (untimed) before each iteration for a quiet machine::

    python tools/benchmark.py --suite survey [--preset survey_cpu] \
        [--variants rocl clae] [--phases 1] [--wait-quiet 300] \
        [--out FILE.json]

Presets that train in fp32 (``cpu``, ``smoke``) also time Fast AEMIM and
AEMIM with the attack alone in mixed precision
(``FeatureDistancePGD(amp_dtype='bfloat16')``, variants ``*_attack_bf16``):
the model trains in fp32 as before, only the attack's passes run under bf16
autocast. That pays where the CPU multiplies bf16 natively (oneDNN; the JSON
records ``cpu_native_bf16``); elsewhere it costs more than fp32.
"""
import argparse
import gc
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional

#: The script's first line: ``seconds['startup']`` counts from here.
_STARTED = time.perf_counter()

# ``python tools/benchmark.py`` puts tools/ on sys.path, not the repo root.
_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

import torch  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

import aemim_mm  # noqa: E402,F401  (registration)
from aemim_mm.benchmark import (  # noqa: E402
    FLOOR_TOLERANCE, MEMORY_TUNABLES, PRESETS, QUIET_CORES, SURVEY_PRESETS,
    TARGETS,
    build_runners, build_survey_runners, check_targets, count_flops,
    cpu_has_native_bf16, excess_over_floor, format_survey_table,
    format_table, linear_fit, matmul_peak_tflops, memory_child,
    profile_phases, profile_survey_ops, select_survey_pairs, select_variants,
    survey_rows, time_variants)
from aemim_mm.benchmark.report import write_text_atomically  # noqa: E402
from aemim_mm.benchmark.timing import Runner, timed_region  # noqa: E402

#: glibc malloc settings of the timed process: keep freed memory for reuse
#: (fixed 32 MiB mmap threshold, the largest glibc allows; no trimming).
TIMING_TUNABLES = ('glibc.malloc.mmap_threshold=33554432:'
                   'glibc.malloc.trim_threshold=68719476736')
#: Each suite's presets; the first is its default.
SUITES = {'aemim': PRESETS, 'survey': SURVEY_PRESETS}
DEFAULT_PRESETS = {'aemim': 'cpu', 'survey': 'survey_cpu'}

def time_in_subprocess(index: int,
                       args: argparse.Namespace) -> Dict[str, List[float]]:
    """:func:`time_variants` in a fresh process (``--processes`` > 1).

    Each process builds, places and warms up the models anew, so what makes
    one process slow for one variant is not in every measurement.
    """
    print(f'process {index + 1}/{args.processes}', flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = osp.join(tmp, 'times.json')
        cmd = [sys.executable, osp.abspath(__file__), '--preset',
               args.preset, '--batch', str(args.batch), '--warmup',
               str(args.warmup), '--reps', str(args.reps), '--malloc',
               args.malloc, '--times-to', out]
        if args.sweep:
            cmd.append('--sweep')
        if args.variants:
            cmd += ['--variants', *args.variants]
        subprocess.run(cmd, check=True)
        with open(out) as f:
            return json.load(f)

def measure_cpu_memory(name: str, args: argparse.Namespace) -> int:
    """Peak resident memory added by training ``name``, in a fresh process."""
    cmd = [sys.executable, osp.abspath(__file__), '--preset', args.preset,
           '--batch', str(args.batch), '--memory-of', name,
           '--reps', str(args.warmup + 1)]
    if args.sweep:
        cmd.append('--sweep')
    env = dict(os.environ)
    # unset, or the timing settings of our own re-exec: measure with ours
    if env.get('GLIBC_TUNABLES') in (None, TIMING_TUNABLES):
        env['GLIBC_TUNABLES'] = MEMORY_TUNABLES
    out = subprocess.run(cmd, capture_output=True, text=True, env=env,
                         check=True).stdout
    return int(out.strip().splitlines()[-1])

def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--suite', choices=sorted(SUITES), default='aemim',
                        help='aemim (default): MAE, the wrapper, Fast AEMIM, '
                        'AEMIM; survey: the survey\'s adversaries, each '
                        'against its plain algorithm')
    parser.add_argument('--preset', default=None,
                        choices=sorted(PRESETS) + sorted(SURVEY_PRESETS),
                        help='default: cpu (aemim), survey_cpu (survey)')
    parser.add_argument('--batch', type=int, default=None,
                        help='batch size (default: the preset\'s)')
    parser.add_argument('--warmup', type=int, default=2,
                        help='untimed interleaved rounds before the timed '
                        'ones (default 2; the first round allocates, see '
                        'time_variants)')
    parser.add_argument('--reps', type=int, default=5,
                        help='timed, interleaved repetitions (default 5)')
    parser.add_argument('--processes', type=int, default=1,
                        help='time in this many fresh processes, each with '
                        'its own warm-up and repetitions; the ratio is the '
                        'median of the per-process ratios (default 1: in '
                        'this process)')
    parser.add_argument('--sweep', action='store_true',
                        help='add steps 1-3 and adv_ratio 0.25-1 variants')
    parser.add_argument('--variants', nargs='+', default=None,
                        help='only these variants (mae is always included; '
                        'survey: methods, each with its baseline)')
    parser.add_argument('--phases', type=int, default=0, metavar='N',
                        help='also profile N iterations of each wrapped '
                        'variant and split their time into phases (CPU '
                        'presets; default 0: no profiling)')
    parser.add_argument('--peak-size', type=int, default=None, metavar='N',
                        help='measure the matrix-product peak with N x N '
                        'operands and report MFU against it (default: 8192 '
                        'on a GPU, 0 = off on a CPU)')
    parser.add_argument('--no-memory', action='store_true',
                        help='skip the per-variant memory measurement')
    parser.add_argument('--malloc', choices=['cache', 'default'],
                        default='cache',
                        help='cache (default): time with glibc keeping freed '
                        'memory, as a caching allocator does; default: '
                        'glibc as configured (see the module docstring)')
    parser.add_argument('--pairwise', action='store_true',
                        help='time each variant against MAE alone, one '
                        'variant model at a time, and write --out after '
                        'each (a stopped run keeps what it finished)')
    parser.add_argument('--wait-quiet', type=float, default=0.0,
                        metavar='S',
                        help='survey: before each iteration, wait up to S '
                        's (untimed) for the other processes of the '
                        'machine to use under 0.1 cores (default 0: off)')
    parser.add_argument('--out', default='work_dirs/benchmark/result.json',
                        help='JSON output file')
    parser.add_argument('--tmp-dir', default=None,
                        help='where the JSON is written before it is moved '
                        'onto --out; outside --out\'s folder (default: the '
                        'system\'s temporary folder)')
    parser.add_argument('--memory-of', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--times-to', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.preset is None:
        args.preset = DEFAULT_PRESETS[args.suite]
    if args.preset not in SUITES[args.suite]:
        parser.error(f'--preset {args.preset} is not a preset of --suite '
                     f'{args.suite}; choose from {sorted(SUITES[args.suite])}')
    if args.wait_quiet < 0:
        parser.error(f'--wait-quiet must be >= 0, got {args.wait_quiet}')
    if args.suite != 'survey' and args.wait_quiet:
        parser.error('--wait-quiet is for --suite survey')
    if args.suite == 'survey':
        for flag, given in (('--sweep', args.sweep),
                            ('--pairwise', args.pairwise),
                            ('--processes', args.processes != 1),
                            ('--peak-size', bool(args.peak_size))):
            if given:
                parser.error(f'{flag} is not for --suite survey (one '
                             'process times every method with its baseline)')
    for name in ('warmup', 'reps', 'processes'):
        if getattr(args, name) < (0 if name == 'warmup' else 1):
            parser.error(f'--{name} must be >= {0 if name == "warmup" else 1},'
                         f' got {getattr(args, name)}')
    if args.batch is not None and args.batch < 1:
        parser.error(f'--batch must be >= 1, got {args.batch}')
    if args.peak_size is not None and args.peak_size < 0:
        parser.error(f'--peak-size must be >= 0, got {args.peak_size}')
    if args.phases < 0:
        parser.error(f'--phases must be >= 0, got {args.phases}')
    if args.pairwise and (args.processes > 1 or args.phases):
        parser.error('--pairwise times in this process without profiling: '
                     'leave out --processes and --phases')
    if args.phases and preset_of(args)['device'] != 'cpu':
        parser.error(f'--phases: preset {args.preset} runs on a GPU, where '
                     'the profiler\'s host-side ranges do not time the '
                     'device; use a CPU preset, or a torch profiler trace '
                     '(the ranges are named there too)')
    return args


def preset_of(args: argparse.Namespace) -> dict:
    """The preset ``--preset`` names in ``--suite``'s presets."""
    return SUITES[args.suite][args.preset]


def measure_memory(runner: Runner, args: argparse.Namespace,
                   preset: dict) -> Optional[int]:
    """Peak memory one training iteration of ``runner`` adds, in bytes (see
    the module docstring), or ``None`` with ``--no-memory``."""
    if args.no_memory:
        return None
    if preset['device'] == 'cuda':
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        runner.step()
        return torch.cuda.max_memory_allocated() - base
    return measure_cpu_memory(runner.name, args)


def variant_row(name: str, variants: dict, preset: dict,
                own: List[List[float]], base: List[List[float]],
                flops: Dict[str, int], memory: Dict[str, Optional[int]],
                peak: Optional[float]) -> dict:
    """One variant's row of the result.

    Args:
        name: The variant.
        variants: All variants (steps, adv_ratio, attack precision).
        preset: The preset (``batch``).
        own: The variant's iteration times, one list per process (per
            pairing with ``--pairwise``).
        base: MAE's times of the same processes (pairings), in the same
            order.
        flops: FLOPs of one iteration, per variant (``mae`` included).
        memory: Peak memory in bytes per variant, ``None`` if not measured.
        peak: The measured matrix-product peak in TFLOP/s, or ``None``.
    """
    times = [t for group in own for t in group]
    med = statistics.median(times)
    # per process: the ratio of the medians; over processes: the median
    process_ratios = [statistics.median(o) / statistics.median(b)
                      for o, b in zip(own, base)]
    ratio = statistics.median(process_ratios)
    flop_ratio = flops[name] / flops['mae']
    row = dict(
        steps=variants[name][1], adv_ratio=variants[name][2],
        attack_amp_dtype=variants[name][3],
        median_s=med, images_per_s=preset['batch'] / med,
        ratio=ratio, gflops=flops[name] / 1e9,
        flop_ratio=flop_ratio, measured_over_predicted=ratio / flop_ratio,
        peak_mem_mib=(None if memory[name] is None else
                      memory[name] / 2**20),
        mem_ratio=(None if memory[name] is None or not memory['mae'] else
                   memory[name] / memory['mae']), times_s=times,
        process_ratios=process_ratios)
    if peak:
        row.update(tflops=flops[name] / med / 1e12,
                   mfu=flops[name] / med / 1e12 / peak)
    return row


def finish(result: dict, rows: Dict[str, dict], out: str,
           tmp_dir: Optional[str]) -> dict:
    """Put ``rows``, the growth fits, the targets and the table into
    ``result`` and write it to ``out`` (atomically, see ``--tmp-dir``)."""
    result['variants'] = rows
    growth = {}
    steps = [n for n in rows if n.startswith('aemim_steps') and 'ratio' not
             in n]
    if len(steps) >= 3:
        growth['steps'] = linear_fit([rows[n]['steps'] for n in steps],
                                     [rows[n]['median_s'] for n in steps])
    ratios = [n for n in rows if n.startswith('aemim_steps1')]
    if len(ratios) >= 3:
        growth['adv_ratio'] = linear_fit(
            [rows[n]['adv_ratio'] for n in ratios],
            [rows[n]['median_s'] for n in ratios])
    result['growth'] = growth
    result['targets'] = check_targets(rows, TARGETS.get(result['preset'],
                                                        []))
    result['table'] = format_table(result)
    write_text_atomically(out, json.dumps(result, indent=2), tmp_dir)
    return result


@contextmanager
def adding_seconds(seconds: Dict[str, float], what: str) -> Iterator[None]:
    """Add the wall time of the ``with`` block to ``seconds[what]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[what] = (seconds.get(what, 0.0) + time.perf_counter() -
                         start)


def run_pairwise(args: argparse.Namespace, preset: dict, variants: dict,
                 result: dict, peak: Optional[float]) -> dict:
    """``--pairwise``: MAE is built once; each other variant is built,
    timed with MAE in interleaved rounds (its own warm-up and
    repetitions), its FLOPs (and memory) measured, and freed; ``--out`` is
    written after each, with ``complete`` false until the last.

    Returns:
        The result (as written to ``--out``).
    """
    seconds = result['seconds']
    others = [n for n in variants if n != 'mae']
    with adding_seconds(seconds, 'build'):
        mae = build_runners({'mae': variants['mae']}, preset)[0]
    flops: Dict[str, int] = {}
    memory: Dict[str, Optional[int]] = {}
    own: Dict[str, List[float]] = {}
    paired_mae: Dict[str, List[float]] = {}
    for k, name in enumerate(others):
        print(f'variant {k + 1}/{len(others)}: {name} against mae',
              flush=True)
        with adding_seconds(seconds, 'build'):
            runner = build_runners({name: variants[name]}, preset)[0]
        with adding_seconds(seconds, 'timing'):
            times = time_variants([mae, runner], args)
        own[name], paired_mae[name] = times[name], times['mae']
        with adding_seconds(seconds, 'flops'):
            if 'mae' not in flops:
                flops['mae'] = mae.flops()
            flops[name] = runner.flops()
        with adding_seconds(seconds, 'memory'):
            if 'mae' not in memory:
                memory['mae'] = measure_memory(mae, args, preset)
            memory[name] = measure_memory(runner, args, preset)
        del runner, times
        gc.collect()
        if preset['device'] == 'cuda':
            torch.cuda.empty_cache()
        pairings = [paired_mae[n] for n in own]
        rows = {'mae': variant_row('mae', variants, preset, pairings,
                                   pairings, flops, memory, peak)}
        for done in own:
            rows[done] = dict(
                variant_row(done, variants, preset, [own[done]],
                            [paired_mae[done]], flops, memory, peak),
                mae_times_s=paired_mae[done])
        result['complete'] = k + 1 == len(others)
        finish(result, rows, args.out, args.tmp_dir)
        print(f'JSON ({k + 1} of {len(others)} variants): {args.out}',
              flush=True)
    print(result['table'])
    return result


def run_survey(args: argparse.Namespace, preset: dict,
               argv: Optional[List[str]]) -> dict:
    """``--suite survey``: every method and its baseline built, timed in
    interleaved rounds, their FLOPs counted (and with ``--phases`` their
    time profiled); the JSON written to ``--out`` and the table printed.

    Returns:
        The result (as written to ``--out``).
    """
    try:
        pairs = select_survey_pairs(args.variants)
    except ValueError as e:
        raise SystemExit(f'--variants: {e}')
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    names = [n for p in pairs for n in (p.baseline, p.method)]
    print(f'benchmark: suite survey, preset {args.preset}, batch '
          f'{preset["batch"]}, device {preset["device"]}, torch threads '
          f'{torch.get_num_threads()}, variants {names}', flush=True)
    seconds = dict(startup=time.perf_counter() - _STARTED)
    result = dict(
        suite='survey', preset=args.preset, batch=preset['batch'],
        img_size=preset['img_size'], device=preset['device'],
        device_name=(torch.cuda.get_device_name() if preset['device'] ==
                     'cuda' else f'CPU, {os.cpu_count()} cores'),
        torch=torch.__version__, threads=torch.get_num_threads(),
        warmup=args.warmup, reps=args.reps,
        glibc_tunables=os.environ.get('GLIBC_TUNABLES'),
        command='python tools/benchmark.py ' + ' '.join(
            sys.argv[1:] if argv is None else argv),
        timed=(timed_region(preset['device']) + '; the views of each '
               'sample as a list (a joint-embedding method), the images as '
               'one tensor (a MIM one), the config\'s optimizer'),
        floor_tolerance=FLOOR_TOLERANCE, quiet_cores=QUIET_CORES,
        wait_quiet=args.wait_quiet,
        pairs=[dict(method=p.method, baseline=p.baseline, config=p.config)
               for p in pairs],
        seconds=seconds)
    with adding_seconds(seconds, 'build'):
        runners = build_survey_runners(pairs, preset,
                                       wait_quiet=args.wait_quiet)
    print(f'timing: {args.warmup} warm-up and {args.reps} timed '
          f'interleaved rounds of {len(runners)} variants', flush=True)
    with adding_seconds(seconds, 'timing'):
        times = time_variants(runners, args)
    # the timed iterations: each runner's last ``reps`` so far
    contention = {r.name: r.contention[-args.reps:] for r in runners}
    print('counting FLOPs (one more iteration each)', flush=True)
    with adding_seconds(seconds, 'flops'):
        flops = {r.name: count_flops(r) for r in runners}
    rows = survey_rows(pairs, preset, times, flops, contention)
    if args.phases:
        print(f'profiling the operators of {", ".join(names)} '
              f'({args.phases} interleaved rounds)', flush=True)
        with adding_seconds(seconds, 'phases'):
            ops = profile_survey_ops(runners, args.phases)
        result['phases'] = dict(
            iterations=args.phases, variants=ops,
            over_floor={p.method: excess_over_floor(rows, ops, p.method)
                        for p in pairs})
    result['waited_s'] = sum(sum(r.waited) for r in runners)
    result['variants'] = rows
    result['table'] = format_survey_table(result)
    write_text_atomically(args.out, json.dumps(result, indent=2),
                          args.tmp_dir)
    print(result['table'])
    print(f'JSON: {args.out}')
    return result


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    preset = dict(preset_of(args))
    preset['batch'] = args.batch or preset['batch']
    args.batch = preset['batch']
    if args.suite == 'survey':
        return run_survey(args, preset, argv)
    if preset['device'] == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--preset gpu needs a CUDA device; none is visible.')
    variants = select_variants(preset, args.sweep)
    if args.variants:
        unknown = sorted(set(args.variants) - set(variants))
        if unknown:
            raise SystemExit(f'--variants: unknown {unknown}; choose from '
                             f'{sorted(variants)} (--sweep adds the sweep)')
        variants = {k: v for k, v in variants.items()
                    if k == 'mae' or k in args.variants}
    if args.pairwise and len(variants) < 2:
        raise SystemExit('--pairwise: no variant to time against mae')
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    if args.memory_of:
        memory_child(args.memory_of, variants, preset, args.reps)
        return {}
    if args.times_to:   # a --processes child
        with open(args.times_to, 'w') as f:
            json.dump(time_variants(build_runners(variants, preset), args),
                      f)
        return {}

    print(f'benchmark: preset {args.preset}, batch {preset["batch"]}, '
          f'device {preset["device"]}, torch threads '
          f'{torch.get_num_threads()}, variants {list(variants)}', flush=True)
    seconds = dict(startup=time.perf_counter() - _STARTED)
    native_bf16 = (cpu_has_native_bf16() if preset['device'] == 'cpu'
                   else None)
    if native_bf16 is False and any(v[3] for v in variants.values()):
        print('note: this CPU has no native bf16 matrix products; the '
              '*_attack_bf16 variants run emulated (slower)', flush=True)
    peak_size = args.peak_size
    if peak_size is None:
        peak_size = 8192 if preset['device'] == 'cuda' else 0
    peak_dtype = torch.bfloat16 if preset['amp'] else torch.float32
    result = dict(
        preset=args.preset, batch=preset['batch'], device=preset['device'],
        device_name=(torch.cuda.get_device_name() if preset['device'] ==
                     'cuda' else f'CPU, {os.cpu_count()} cores'),
        cpu_native_bf16=native_bf16,
        matmul_peak_tflops=None, peak_size=peak_size or None,
        peak_dtype=None,
        torch=torch.__version__, threads=torch.get_num_threads(),
        warmup=args.warmup, reps=args.reps, processes=args.processes,
        glibc_tunables=os.environ.get('GLIBC_TUNABLES'),
        command='python tools/benchmark.py ' + ' '.join(
            sys.argv[1:] if argv is None else argv),
        timed=timed_region(preset['device']), seconds=seconds)
    if args.pairwise:
        result.update(pairwise=True, complete=False,
                      planned_variants=list(variants))

    def measure_peak() -> Optional[float]:
        with adding_seconds(seconds, 'peak'):
            peak = (matmul_peak_tflops(preset['device'], peak_dtype,
                                       peak_size) if peak_size else None)
        result.update(matmul_peak_tflops=peak, peak_dtype=str(
            peak_dtype).replace('torch.', '') if peak else None)
        return peak

    if args.pairwise:   # the peak first: every partial result has MFU
        return run_pairwise(args, preset, variants, result, measure_peak())
    if args.processes == 1:
        with adding_seconds(seconds, 'build'):
            runners = build_runners(variants, preset)
        with adding_seconds(seconds, 'timing'):
            per_process = [time_variants(runners, args)]
    else:   # each process: its own build, warm-up and repetitions
        with adding_seconds(seconds, 'timing'):
            per_process = [time_in_subprocess(k, args)
                           for k in range(args.processes)]
        with adding_seconds(seconds, 'build'):
            runners = build_runners(variants, preset)  # for FLOPs, memory
    with adding_seconds(seconds, 'flops'):
        flops = {r.name: r.flops() for r in runners}
    peak = measure_peak()
    with adding_seconds(seconds, 'memory'):
        memory = {r.name: measure_memory(r, args, preset) for r in runners}

    if args.phases:
        wrapped = [r for r in runners if variants[r.name][0]]
        print(f'profiling the phases of {", ".join(r.name for r in wrapped)}'
              f' ({args.phases} interleaved rounds)', flush=True)
        with adding_seconds(seconds, 'phases'):
            phases = profile_phases(wrapped, args.phases)
        result['phases'] = dict(iterations=args.phases, variants=phases)

    rows = {name: variant_row(name, variants, preset,
                              [proc[name] for proc in per_process],
                              [proc['mae'] for proc in per_process], flops,
                              memory, peak)
            for name in variants}
    finish(result, rows, args.out, args.tmp_dir)
    print(result['table'])
    print(f'JSON: {args.out}')
    return result

def exec_with_malloc_settings(argv: List[str]) -> None:
    """Restart this script with :data:`TIMING_TUNABLES` (glibc only reads
    them at start-up); returns without restarting where they do not apply
    (GPU presets, ``--malloc default``, a set ``GLIBC_TUNABLES``, not
    Linux)."""
    args = parse_args(argv)
    if (args.malloc != 'cache' or args.memory_of
            or preset_of(args)['device'] != 'cpu'
            or not sys.platform.startswith('linux')
            or 'GLIBC_TUNABLES' in os.environ):
        return
    env = dict(os.environ, GLIBC_TUNABLES=TIMING_TUNABLES)
    os.execve(sys.executable, [sys.executable, osp.abspath(__file__)] + argv,
              env)


if __name__ == '__main__':
    exec_with_malloc_settings(sys.argv[1:])
    main()
