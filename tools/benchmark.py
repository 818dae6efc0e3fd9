"""Side-by-side cost of MAE, the wrapper with the attack off, Fast AEMIM, AEMIM.

All variants are built in ONE process and timed with interleaved repetitions
after a warm-up, so that machine noise hits them alike. One repetition times
one full training iteration (data preprocessor, forward, attack, backward,
optimizer step) of every variant in turn. ``--processes N`` repeats this
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
``GLIBC_TUNABLES`` already in the environment is left as it is.

Usage::

    python tools/benchmark.py --preset cpu [--sweep] [--processes 3] \
        [--out FILE.json]
    python tools/benchmark.py --preset gpu --batch 256 --reps 10

Presets: ``cpu`` = ViT-S/16 (deit-small) at 224 px with the paper's 8 x 512
decoder, batch 16 (Fast AEMIM's 25 % is then 4 samples, 200 encoder tokens;
the subset's smaller matrix products still run a few per cent less
efficiently per FLOP than the full batch's: Fast AEMIM measured 1.326x at
batch 8, 1.30x at 16 and 1.282x at 32, see the README); ``gpu`` =
ViT-B/16 at 224 px, AMP (bf16 autocast), batch 128; ``smoke`` = a tiny model
for the tests. ``--sweep`` adds AEMIM with steps 1-3 at adv_ratio 1 and
with adv_ratio 0.25-1 at steps 1, to show how the cost grows.

Presets that train in fp32 (``cpu``, ``smoke``) also time Fast AEMIM and
AEMIM with the attack alone in mixed precision
(``FeatureDistancePGD(amp_dtype='bfloat16')``, variants ``*_attack_bf16``):
the model trains in fp32 as before, only the attack's passes run under bf16
autocast. That pays where the CPU multiplies bf16 natively (oneDNN; the JSON
records ``cpu_native_bf16``); elsewhere it costs more than fp32.
"""
import argparse
import copy
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from typing import Dict, List, Optional, Tuple

# ``python tools/benchmark.py`` puts tools/ on sys.path, not the repo root.
_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

import torch  # noqa: E402
from mmengine.optim import OptimWrapper  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import aemim_mm  # noqa: E402,F401  (registration)
from aemim_mm.models.profiling import PHASES, phase_seconds  # noqa: E402
from aemim_mm.utils.cli import init_weights_quietly  # noqa: E402
from mmpretrain.registry import MODELS  # noqa: E402
from mmpretrain.structures import DataSample  # noqa: E402

PAPER_DECODER = dict(decoder_embed_dim=512, decoder_depth=8,
                     decoder_num_heads=16)
PRESETS = {
    'cpu': dict(arch='deit-small', embed_dims=384, img_size=224, batch=16,
                amp=False, device='cpu', decoder=PAPER_DECODER),
    'gpu': dict(arch='b', embed_dims=768, img_size=224, batch=128, amp=True,
                device='cuda', decoder=PAPER_DECODER),
    # for the tests: seconds, not minutes
    'smoke': dict(arch='deit-tiny', embed_dims=192, img_size=32, batch=4,
                  amp=False, device='cpu',
                  decoder=dict(decoder_embed_dim=64, decoder_depth=1,
                               decoder_num_heads=2)),
}

#: name -> (wrapped?, attack steps, adv_ratio, the attack's ``amp_dtype``).
Variants = Dict[str, Tuple[bool, int, float, Optional[str]]]
#: ``mae`` is plain mmpretrain.
BASE_VARIANTS: Variants = {
    'mae': (False, 0, 0.0, None),
    'wrapper_attack_off': (True, 0, 0.0, None),
    'fast_aemim': (True, 1, 0.25, None),
    'aemim': (True, 2, 1.0, None),
}
#: Added for presets that train in fp32: the attack alone in mixed precision
#: (``FeatureDistancePGD(amp_dtype='bfloat16')``; an AMP preset already runs
#: it under its autocast).
ATTACK_AMP_VARIANTS: Variants = {
    'fast_aemim_attack_bf16': (True, 1, 0.25, 'bfloat16'),
    'aemim_attack_bf16': (True, 2, 1.0, 'bfloat16'),
}
SWEEP_VARIANTS: Variants = {
    **{f'aemim_steps{t}': (True, t, 1.0, None) for t in (1, 2, 3)},
    **{f'aemim_steps1_ratio{r}': (True, 1, r, None)
       for r in (0.25, 0.5, 0.75)},
}


#: glibc malloc settings of the timed process: keep freed memory for reuse
#: (fixed 32 MiB mmap threshold, the largest glibc allows; no trimming).
TIMING_TUNABLES = ('glibc.malloc.mmap_threshold=33554432:'
                   'glibc.malloc.trim_threshold=68719476736')
#: ... and of the memory subprocesses: blocks of 128 KiB and more are mapped
#: and unmapped on free, so resident memory follows the live tensors.
MEMORY_TUNABLES = 'glibc.malloc.mmap_threshold=131072'

#: The performance issue's targets for the ``cpu`` preset: variant -> (what,
#: largest allowed value). ``ratio`` is the time over MAE's, ``mem_ratio``
#: the peak memory over MAE's, at the same batch.
TARGETS = {
    'cpu': [('wrapper_attack_off', 'ratio', 1.02),
            ('fast_aemim', 'ratio', 1.28),
            ('aemim', 'ratio', 2.25),
            ('aemim', 'mem_ratio', 1.30),
            # the same targets with the attack in bf16 (the lever
            # "AMP in the attack", on a CPU with native bf16)
            ('fast_aemim_attack_bf16', 'ratio', 1.28),
            ('aemim_attack_bf16', 'ratio', 2.25),
            ('aemim_attack_bf16', 'mem_ratio', 1.30)],
}


def mae_config(preset: dict) -> dict:
    """mmpretrain MAE, patch 16, with the preset's encoder and decoder."""
    return dict(
        type='MAE',
        backbone=dict(type='MAEViT', arch=preset['arch'],
                      img_size=preset['img_size'], patch_size=16,
                      mask_ratio=0.75),
        neck=dict(type='MAEPretrainDecoder', patch_size=16, in_chans=3,
                  num_patches=(preset['img_size'] // 16)**2,
                  embed_dim=preset['embed_dims'], mlp_ratio=4.,
                  **preset['decoder']),
        head=dict(type='MAEPretrainHead', norm_pix=True, patch_size=16,
                  loss=dict(type='PixelReconstructionLoss', criterion='L2')),
        data_preprocessor=dict(type='SelfSupDataPreprocessor',
                               mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], to_rgb=True))


def select_variants(preset: dict, sweep: bool) -> Variants:
    """The variants a run of ``preset`` times, in table order."""
    return dict(BASE_VARIANTS,
                **({} if preset['amp'] else ATTACK_AMP_VARIANTS),
                **(SWEEP_VARIANTS if sweep else {}))


def build_variant(name: str, variants: Variants,
                  preset: dict) -> torch.nn.Module:
    """The model of one variant, initialised, in train mode, on the device."""
    wrapped, steps, ratio, amp_dtype = variants[name]
    algorithm = mae_config(preset)
    if wrapped:
        cfg = dict(type='AdversarialMIMWrapper', algorithm=algorithm,
                   attack=dict(type='FeatureDistancePGD', eps=2, steps=steps,
                               amp_dtype=amp_dtype),
                   adapter='ln', loss_ratio=0.5, adv_ratio=ratio)
    else:
        cfg = algorithm
    model = MODELS.build(cfg)
    init_weights_quietly(model)
    return model.to(preset['device']).train()


def make_batch(batch: int, size: int, seed: int = 0) -> dict:
    """A batch as ``default_collate`` gives it (uint8 BGR images)."""
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randint(0, 256, (batch, 3, size, size), generator=gen,
                           dtype=torch.uint8)
    return dict(inputs=inputs,
                data_samples=[DataSample() for _ in range(batch)])


class Runner:
    """Trains one variant an iteration at a time."""

    def __init__(self, name: str, model: torch.nn.Module, preset: dict):
        self.name = name
        self.model = model
        self.preset = preset
        self.optim = OptimWrapper(
            torch.optim.AdamW(model.parameters(), lr=1e-4,
                              betas=(0.9, 0.95), weight_decay=0.05))
        self.batch = make_batch(preset['batch'], preset['img_size'])

    def _autocast(self):
        if not self.preset['amp']:
            return nullcontext()
        return torch.autocast(self.preset['device'], dtype=torch.bfloat16)

    def step(self) -> float:
        """One training iteration; returns its wall time in seconds."""
        cuda = self.preset['device'] == 'cuda'
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        with self._autocast():
            self.model.train_step(copy.copy(self.batch), self.optim)
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start

    def flops(self) -> int:
        """FLOPs of one training iteration (forward, attack, backward)."""
        counter = FlopCounterMode(display=False)
        with counter:
            self.step()
        return counter.get_total_flops()


def matmul_peak_tflops(device: str, dtype: torch.dtype, size: int,
                       reps: int = 10) -> float:
    """Best rate of ``size``-cubed matrix products, in TFLOP/s.

    The ceiling the model FLOP utilisation is read against: random
    operands, three untimed products, then the best of ``reps`` timed ones.
    """
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, generator=gen, device=device, dtype=dtype)
    b = torch.randn(size, size, generator=gen, device=device, dtype=dtype)
    cuda = device == 'cuda'
    best = float('inf')
    for i in range(3 + reps):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        torch.mm(a, b)
        if cuda:
            torch.cuda.synchronize()
        if i >= 3:
            best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e12


def profile_phases(runners: List[Runner],
                   iters: int) -> Dict[str, Dict[str, float]]:
    """Seconds per phase of each runner's iteration (CPU), medians over
    ``iters`` profiled iterations, taken in interleaved rounds like the
    timed repetitions (a drift of the machine's speed then shifts every
    variant alike, not the last ones).

    Returns:
        Per runner: the :data:`~aemim_mm.models.profiling.PHASES`, ``rest``
        (the iteration outside them: data preprocessing, logging),
        ``iteration`` (the profiled iteration's wall time), ``subset`` (the
        adversarial samples per iteration) and ``adv_per_image_over_clean``:
        the adversarial pass's forward and backward time per image over the
        clean pass's (``None`` without a subset).
    """
    runs: Dict[str, List[dict]] = {r.name: [] for r in runners}
    start = time.perf_counter()
    for i in range(iters):
        for runner in runners:
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                wall = runner.step()
            phases = phase_seconds(prof)
            runs[runner.name].append(
                dict(phases, rest=wall - sum(phases.values()),
                     iteration=wall))
        done = time.perf_counter() - start
        print(f'  profiled round {i + 1}/{iters} done, eta '
              f'{done / (i + 1) * (iters - i - 1):.0f} s', flush=True)
    result = {}
    for runner in runners:
        rows = runs[runner.name]
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        batch = runner.preset['batch']
        subset = runner.model.select_adversarial(
            batch, torch.device('cpu')).numel()
        clean = (med['clean_forward'] + med['clean_backward']) / batch
        adv = med['adversarial_forward'] + med['adversarial_backward']
        med['subset'] = subset
        med['adv_per_image_over_clean'] = (adv / subset / clean
                                           if subset and clean else None)
        result[runner.name] = med
    return result


def build_runners(variants: Variants, preset: dict) -> List[Runner]:
    """One :class:`Runner` per variant, in the order of ``variants``."""
    return [Runner(n, build_variant(n, variants, preset), preset)
            for n in variants]


def time_variants(runners: List[Runner],
                  args: argparse.Namespace) -> Dict[str, List[float]]:
    """Warm up, then time interleaved repetitions.

    Args:
        runners: The runners of every variant.
        args: ``warmup`` and ``reps``.

    Returns:
        Per variant, one iteration time per repetition (seconds).
    """
    # Warm-up in interleaved rounds, like the timed ones. A model's first
    # iteration allocates its optimizer state, so the next model's pass
    # lands on memory never touched before (page faults: after one warm-up
    # round MAE's first timed iteration took 4.32 s against a median of
    # 3.44 s, see the README); from the second round on every pass reuses
    # memory the process already holds.
    for _ in range(args.warmup):
        for runner in runners:
            runner.step()
    times: Dict[str, List[float]] = {r.name: [] for r in runners}
    start = time.perf_counter()
    for rep in range(args.reps):                         # interleaved
        for runner in runners:
            times[runner.name].append(runner.step())
        done = time.perf_counter() - start
        print(f'  repetition {rep + 1}/{args.reps} done, eta '
              f'{done / (rep + 1) * (args.reps - rep - 1):.0f} s', flush=True)
    return times


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


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 matrix products natively on this CPU."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _status_kib(field: str) -> int:
    """A ``kB`` field of /proc/self/status (``VmRSS``, ``VmHWM``)."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'/proc/self/status has no {field}')


def reset_peak_rss() -> None:
    """Make the kernel's peak-RSS mark (VmHWM) the current RSS (Linux)."""
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')


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


def memory_child(name: str, variants, preset: dict, iters: int) -> None:
    """Body of the ``--memory-of`` subprocess: print the peak RSS increase."""
    runner = Runner(name, build_variant(name, variants, preset), preset)
    reset_peak_rss()
    before = _status_kib('VmRSS')
    for _ in range(iters):
        runner.step()
    print((_status_kib('VmHWM') - before) * 1024)


def linear_fit(xs: List[float], ys: List[float]) -> Dict[str, float]:
    """Least-squares line through (xs, ys) and its largest relative error."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx)**2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    icpt = my - slope * mx
    worst = max(abs(y - (icpt + slope * x)) / y for x, y in zip(xs, ys))
    return dict(intercept=icpt, slope=slope, max_rel_dev=worst)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--preset', choices=sorted(PRESETS), default='cpu')
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
                        help='only these variants (mae is always included)')
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
    parser.add_argument('--out', default='work_dirs/benchmark/result.json',
                        help='JSON output file')
    parser.add_argument('--memory-of', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--times-to', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
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
    if args.phases and PRESETS[args.preset]['device'] != 'cpu':
        parser.error(f'--phases: preset {args.preset} runs on a GPU, where '
                     'the profiler\'s host-side ranges do not time the '
                     'device; use a CPU preset, or a torch profiler trace '
                     '(the ranges are named there too)')
    return args


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    preset = dict(PRESETS[args.preset])
    preset['batch'] = args.batch or preset['batch']
    args.batch = preset['batch']
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
    native_bf16 = (cpu_has_native_bf16() if preset['device'] == 'cpu'
                   else None)
    if native_bf16 is False and any(v[3] for v in variants.values()):
        print('note: this CPU has no native bf16 matrix products; the '
              '*_attack_bf16 variants run emulated (slower)', flush=True)
    if args.processes == 1:
        runners = build_runners(variants, preset)
        per_process = [time_variants(runners, args)]
    else:   # each process: its own build, warm-up and repetitions
        per_process = [time_in_subprocess(k, args)
                       for k in range(args.processes)]
        runners = build_runners(variants, preset)   # for FLOPs and memory
    flops = {r.name: r.flops() for r in runners}
    peak_size = args.peak_size
    if peak_size is None:
        peak_size = 8192 if preset['device'] == 'cuda' else 0
    peak_dtype = torch.bfloat16 if preset['amp'] else torch.float32
    peak = (matmul_peak_tflops(preset['device'], peak_dtype, peak_size)
            if peak_size else None)
    memory: Dict[str, Optional[int]] = {}
    for runner in runners:
        if args.no_memory:
            memory[runner.name] = None
        elif preset['device'] == 'cuda':
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            runner.step()
            memory[runner.name] = torch.cuda.max_memory_allocated() - base
        else:
            memory[runner.name] = measure_cpu_memory(runner.name, args)

    phases = {}
    if args.phases:
        wrapped = [r for r in runners if variants[r.name][0]]
        print(f'profiling the phases of {", ".join(r.name for r in wrapped)}'
              f' ({args.phases} interleaved rounds)', flush=True)
        phases = profile_phases(wrapped, args.phases)

    rows = {}
    for name in variants:
        times = [t for proc in per_process for t in proc[name]]
        med = statistics.median(times)
        # per process: the ratio of the medians; over processes: the median
        process_ratios = [
            statistics.median(proc[name]) / statistics.median(proc['mae'])
            for proc in per_process]
        ratio = statistics.median(process_ratios)
        flop_ratio = flops[name] / flops['mae']
        rows[name] = dict(
            steps=variants[name][1], adv_ratio=variants[name][2],
            attack_amp_dtype=variants[name][3],
            median_s=med, images_per_s=preset['batch'] / med,
            ratio=ratio, gflops=flops[name] / 1e9,
            flop_ratio=flop_ratio, measured_over_predicted=ratio /
            flop_ratio, peak_mem_mib=(None if memory[name] is None else
                                      memory[name] / 2**20),
            mem_ratio=(None if memory[name] is None or not memory['mae'] else
                       memory[name] / memory['mae']), times_s=times,
            process_ratios=process_ratios)
        if peak:
            rows[name].update(tflops=flops[name] / med / 1e12,
                              mfu=flops[name] / med / 1e12 / peak)
    result = dict(
        preset=args.preset, batch=preset['batch'], device=preset['device'],
        device_name=(torch.cuda.get_device_name() if preset['device'] ==
                     'cuda' else f'CPU, {os.cpu_count()} cores'),
        cpu_native_bf16=native_bf16,
        matmul_peak_tflops=peak, peak_size=peak_size or None,
        peak_dtype=str(peak_dtype).replace('torch.', '') if peak else None,
        torch=torch.__version__, threads=torch.get_num_threads(),
        warmup=args.warmup, reps=args.reps, processes=args.processes,
        glibc_tunables=os.environ.get('GLIBC_TUNABLES'),
        command='python tools/benchmark.py ' + ' '.join(
            sys.argv[1:] if argv is None else argv),
        variants=rows)
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
    result['targets'] = check_targets(rows, TARGETS.get(args.preset, []))
    if phases:
        result['phases'] = dict(iterations=args.phases, variants=phases)
    result['table'] = format_table(result)
    print(result['table'])
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(result, f, indent=2)
    print(f'JSON: {args.out}')
    return result


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


def exec_with_malloc_settings(argv: List[str]) -> None:
    """Restart this script with :data:`TIMING_TUNABLES` (glibc only reads
    them at start-up); returns without restarting where they do not apply."""
    args = parse_args(argv)
    if (args.malloc != 'cache' or args.memory_of
            or not sys.platform.startswith('linux')
            or 'GLIBC_TUNABLES' in os.environ):
        return
    env = dict(os.environ, GLIBC_TUNABLES=TIMING_TUNABLES)
    os.execve(sys.executable, [sys.executable, osp.abspath(__file__)] + argv,
              env)


if __name__ == '__main__':
    exec_with_malloc_settings(sys.argv[1:])
    main()
