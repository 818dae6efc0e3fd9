"""The prepared GPU run: stages under one wall-clock budget.

Run it through ``bash tools/device_run.sh`` (which installs the kit of
``tools/device_kit.py`` first); docs/device_run.md says how and why. Stages,
in order, each a subprocess with its own time limit, so that a slow or hung
stage is cut and the later ones still run:

1. ``cost``: ``tools/benchmark.py`` (the paper's Table 4: MAE, the wrapper
   with the attack off, Fast AEMIM, AEMIM; ViT-B/16 at 224 px on the
   ``gpu`` preset) at the first batch of the preset's list that runs ->
   ``cost.json``;
2. ``ddp``: :func:`aemim_repro.ddp_check.run_ddp_check`, the clean-first
   DDP step (NCCL on a GPU) against the same step without DDP ->
   ``ddp.json``;
3. ``equal_time``: :func:`aemim_repro.equal_time.run_equal_time`, MAE,
   Fast AEMIM and AEMIM pre-trained for the same seconds each on CIFAR-10,
   linear probe, FGSM / PGD -> ``equal_time.json``, ``equal_time.png``;
   it plans against the stage's absolute deadline (``--deadline``, epoch
   seconds: the moment this process stops it), so its own start-up is
   counted; waiting for the CIFAR-10 extraction (started at the beginning,
   running beside the first stages) is charged to this stage;
4. ``sweep``: the benchmark's steps 1-3 / adv_ratio 0.25-1 variants,
   ``--pairwise`` (each against MAE alone, ``cost_sweep.json`` rewritten
   after each, so a cut sweep keeps what it finished), without the memory
   pass and the matrix-product peak (the cost stage measured both) ->
   ``cost_sweep.json``.

A stage gets ``min(its cap, time left - what the stages after it need)``;
one that would get less than its own minimum is skipped. A later stage
needs its minimum, except the sweep once ``cost.json`` exists: then what
:func:`sweep_estimate` makes of the cost stage's measured start-up, build,
FLOP-count and iteration seconds (between the sweep's minimum and cap).
After every stage ``summary.json`` and ``summary.md`` are written anew (the
device, the versions, each stage's status, seconds and command, and the
result tables), so whatever is cut, what ran is kept. At most 8 files land
in ``--out``: ``run.log`` (from device_run.sh) and the seven named here;
every file is written through a temporary one in ``--work-dir`` (outside
``--out``) and moved in, so a stage cut while writing leaves no temporary
file there.

Usage (in the repository root; device_run.sh passes ``--out``, ``--kit``
and ``--started``)::

    bash tools/device_run.sh [--preset gpu|rehearsal] [--budget SECONDS]
"""
import argparse
import datetime
import importlib.metadata
import json
import os
import os.path as osp
import platform
import signal
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: The mini-reproduction project (``aemim_repro``: the DDP check and the
#: equal-time comparison), beside the package and not installed with it.
#: On ``sys.path`` here, so also in every ``--stage`` subprocess (this file).
PROJECT = osp.join(REPO_ROOT, 'projects', 'mini_repro')
for _path in (REPO_ROOT, PROJECT):
    if _path not in sys.path:
        sys.path.insert(0, _path)

#: The AEMIM config whose model the DDP check trains.
DDP_CONFIG = 'configs/aemim_vit-t-p4_cifar10.py'
#: The sweep's variants (tools/benchmark.py ``--sweep``).
SWEEP = ['aemim_steps1', 'aemim_steps2', 'aemim_steps3',
         'aemim_steps1_ratio0.25', 'aemim_steps1_ratio0.5',
         'aemim_steps1_ratio0.75']
#: A tiny ViT for the rehearsal's DDP check.
TINY_MODEL = {
    'model.algorithm.backbone.arch': dict(
        _delete_=True, embed_dims=32, num_layers=2, num_heads=2,
        feedforward_channels=64),
    'model.algorithm.neck.embed_dim': 32,
    'model.algorithm.neck.decoder_embed_dim': 16,
    'model.algorithm.neck.decoder_depth': 1,
    'model.algorithm.neck.decoder_num_heads': 2,
}
ATTACKS = dict(fgsm_eps=[1, 2, 4, 8], pgd_eps=[1, 2, 4, 8])

PRESETS: Dict[str, Dict[str, Any]] = {
    # one H200 or one H100 80 GB: every stage sized from the measured rates
    # in docs/device_run.md ("Sizing")
    'gpu': dict(
        device='cuda', budget=540, backend='nccl',
        cost=dict(args=['--preset', 'gpu', '--warmup', '2', '--reps', '10'],
                  batches=[512, 256], cap=120, min_s=45),
        ddp=dict(cap=45, min_s=20, steps=3, batch_size=64, overrides=None),
        # min_s: the least the comparison can use, 3 x (min_pretrain_s +
        # downstream_s) (aemim_repro.equal_time.needed_seconds)
        equal_time=dict(
            cap=None, min_s=180, train_per_class=None, test_per_class=None,
            settings=dict(
                encoder_layers=None, decoder_depth=None, batch_size=512,
                num_workers=14, log_interval=20,
                linprobe=dict(epochs=5, warmup_epochs=1, batch_size=512),
                evaluate=dict(batch_size=500, num_workers=14,
                              adversarial=dict(num_samples=1000,
                                               pgd_steps=10, batch_size=500,
                                               **ATTACKS)),
                downstream_s=40, min_pretrain_s=20, pretrain_s=None)),
        sweep=dict(cap=80, min_s=40, variants=SWEEP, warmup=1, reps=5)),
    # the same stages on a CPU in a few minutes (tests/test_device_run.py):
    # the caps are loose, the work is small (fixed 3 s of pre-training)
    'rehearsal': dict(
        device='cpu', budget=900, backend='gloo',
        cost=dict(args=['--preset', 'smoke', '--warmup', '1', '--reps', '1',
                        '--no-memory', '--peak-size', '64'],
                  batches=[4, 2], cap=240, min_s=30),
        ddp=dict(cap=120, min_s=20, steps=2, batch_size=4,
                 overrides=TINY_MODEL),
        equal_time=dict(
            cap=360, min_s=120, train_per_class=4, test_per_class=4,
            settings=dict(
                encoder_layers=2, decoder_depth=1, batch_size=20,
                num_workers=0, log_interval=1,
                linprobe=dict(epochs=1, warmup_epochs=0, batch_size=20),
                evaluate=dict(batch_size=40, num_workers=0,
                              adversarial=dict(num_samples=8, pgd_steps=2,
                                               batch_size=8, **ATTACKS)),
                downstream_s=20, min_pretrain_s=1, pretrain_s=3)),
        sweep=dict(cap=240, min_s=25, variants=SWEEP[:3], warmup=1,
                   reps=1)),
}
STAGES = ('cost', 'ddp', 'equal_time', 'sweep')
#: Seconds a stage may run past its limit while it is being stopped, and
#: kept at the end for the summary.
GRACE_S = 5
MARGIN_S = 5
#: The slowest sweep variant (``aemim_steps3``) over AEMIM: 1.053 in FLOPs
#: and 1.046 in time in docs/results/benchmark_cpu.json (ViT-S, CPU),
#: rounded up.
SWEEP_SLOWEST = 1.1


def log(message: str) -> None:
    """A progress line with the wall-clock time."""
    print(f'[device_run {time.strftime("%H:%M:%S")}] {message}', flush=True)


def stage_limit(name: str, preset: Dict[str, Any], left: float,
                needs: Optional[Dict[str, float]] = None) -> float:
    """Seconds stage ``name`` may take with ``left`` seconds to go: its cap,
    or less so that every later stage keeps what it needs.

    Args:
        name: The stage.
        preset: The run's preset.
        left: Seconds to the end of the budget.
        needs: Seconds a later stage needs, where known better than its
            ``min_s`` (:func:`sweep_need`).
    """
    needs = needs or {}
    later = STAGES[STAGES.index(name) + 1:]
    reserve = sum(needs.get(s, preset[s]['min_s']) for s in later) + MARGIN_S
    cap = preset[name]['cap']
    limit = left - reserve
    return limit if cap is None else min(cap, limit)


def sweep_estimate(cost: Dict[str, Any],
                   sweep: Dict[str, Any]) -> Optional[float]:
    """Seconds the sweep should take, from the cost stage's result.

    The sweep runs the same script as the cost stage, at the same batch:
    its start-up; per model (MAE and each variant) the cost stage's mean
    seconds of building, FLOP counting and first iterations (the timing's
    seconds beyond its medians: allocation, kernel selection); and per
    variant ``warmup + reps`` rounds of MAE and of a variant
    :data:`SWEEP_SLOWEST` times AEMIM's median.

    Args:
        cost: ``cost.json``.
        sweep: The preset's ``sweep`` (``variants``, ``warmup``, ``reps``).

    Returns:
        The estimate, or ``None`` if ``cost`` lacks the figures (a result of
        an older benchmark, or without AEMIM).
    """
    seconds, rows = cost.get('seconds'), cost.get('variants', {})
    if not seconds or 'mae' not in rows or 'aemim' not in rows:
        return None
    models = len(rows)
    medians = sum(r['median_s'] for r in rows.values())
    first = max(0.0, seconds.get('timing', 0.0) -
                (cost['warmup'] + cost['reps']) * medians) / models
    per_model = (seconds.get('build', 0.0) + seconds.get('flops', 0.0)) \
        / models + first
    count = len(sweep['variants'])
    pair = rows['mae']['median_s'] + SWEEP_SLOWEST * rows['aemim']['median_s']
    return (seconds['startup'] + (1 + count) * per_model +
            count * (sweep['warmup'] + sweep['reps']) * pair)


def sweep_need(out: str, preset: Dict[str, Any]) -> float:
    """Seconds to keep for the sweep: :func:`sweep_estimate` of
    ``out/cost.json`` between the sweep's ``min_s`` and ``cap``, or its
    ``min_s`` without that file."""
    sweep = preset['sweep']
    path = osp.join(out, 'cost.json')
    if not osp.isfile(path):
        return sweep['min_s']
    with open(path) as f:
        estimate = sweep_estimate(json.load(f), sweep)
    if estimate is None:
        return sweep['min_s']
    need = max(sweep['min_s'], estimate)
    return need if sweep['cap'] is None else min(sweep['cap'], need)


def stage_env(name: str) -> Dict[str, str]:
    """The environment of stage ``name``'s subprocess: this one's, with
    deterministic cuBLAS and NCCL warnings for the DDP check (its
    diagnostics if the collective hangs; an ``NCCL_DEBUG`` already set is
    kept)."""
    env = dict(os.environ)
    if name == 'ddp':
        env['CUBLAS_WORKSPACE_CONFIG'] = ':4096:8'   # costs speed: ddp only
        env.setdefault('NCCL_DEBUG', 'WARN')
    return env


def run_command(cmd: List[str], limit: float,
                env: Optional[Dict[str, str]] = None) -> str:
    """Run ``cmd`` for at most ``limit`` seconds: ``'ok'``, ``'failed (exit
    N)'`` or ``'cut at N s'`` (the whole process group is stopped)."""
    log(f'$ {" ".join(cmd)}  (limit {limit:.0f} s)')
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env,
                            start_new_session=True)
    try:
        code = proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        return f'cut at {limit:.0f} s'
    return 'ok' if code == 0 else f'failed (exit {code})'


def nvidia_smi() -> str:
    """``nvidia-smi``'s line of the first GPU (name, driver, memory), or
    ``'unavailable (why)'`` where it is missing, fails or hangs."""
    try:
        smi = subprocess.run(
            ['nvidia-smi', '--query-gpu=name,driver_version,memory.total',
             '--format=csv,noheader'], capture_output=True, text=True,
            timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        return f'unavailable ({type(e).__name__}: {e})'
    if smi.returncode != 0:
        why = (smi.stderr.strip() or smi.stdout.strip())[:200]
        return f'unavailable (exit {smi.returncode}: {why})'
    return smi.stdout.strip()


def environment(preset_name: str, kit: str) -> Dict[str, Any]:
    """Device, versions and kit of this run."""
    import torch
    info: Dict[str, Any] = dict(
        preset=preset_name, python=platform.python_version(),
        torch=torch.__version__, cuda=torch.version.cuda,
        host_cpus=os.cpu_count(),
        date=datetime.datetime.now(datetime.timezone.utc).strftime(
            '%Y-%m-%d %H:%M UTC'))
    if torch.cuda.is_available():
        info['device'] = torch.cuda.get_device_name(0)
        props = torch.cuda.get_device_properties(0)
        info['device_memory_gib'] = round(props.total_memory / 2**30, 1)
        info['nvidia_smi'] = nvidia_smi()
    else:
        info['device'] = f'CPU ({platform.processor() or "x86_64"})'
    info['packages'] = {}
    for name in ('mmengine', 'mmpretrain', 'mmcv-lite', 'timm', 'numpy',
                 'torchvision', 'adversarial-robustness-toolbox'):
        try:
            info['packages'][name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            info['packages'][name] = None
    manifest = osp.join(kit, 'MANIFEST.json')
    if osp.isfile(manifest):
        with open(manifest) as f:
            info['kit_python'] = json.load(f).get('python')
    return info


def write_summary(out: str, env: Dict[str, Any],
                  stages: List[Dict[str, Any]], command: str,
                  tmp_dir: Optional[str] = None) -> None:
    """``summary.json`` and ``summary.md`` from what exists now, each
    written through a temporary file in ``tmp_dir`` (outside ``out``; see
    :func:`~aemim_mm.benchmark.report.write_atomically`)."""
    from aemim_mm.benchmark.report import write_text_atomically
    results = {}
    for name in ('cost', 'cost_sweep', 'ddp', 'equal_time'):
        path = osp.join(out, f'{name}.json')
        if osp.isfile(path):
            with open(path) as f:
                results[name] = json.load(f)
    write_text_atomically(
        osp.join(out, 'summary.json'),
        json.dumps(dict(command=command, environment=env, stages=stages),
                   indent=2), tmp_dir)
    lines = [
        '# aemim_mm device run', '',
        f'`{command}` on {env["device"]} ({env["date"]}); Python '
        f'{env["python"]}, torch {env["torch"]}, CUDA {env["cuda"]}; '
        + ', '.join(f'{k} {v}' for k, v in env['packages'].items()), '',
        '| stage | status | seconds | limit s |', '|---|---|---|---|'
    ]
    for s in stages:
        lines.append(f'| {s["name"]} | {s["status"]} | {s["seconds"]:.0f} | '
                     f'{s["limit"]:.0f} |')
    for name, title in (('cost', 'Cost (Table 4)'),
                        ('cost_sweep', 'Cost sweep')):
        if name in results:
            if results[name].get('complete') is False:
                title += ' (partial)'
            lines += ['', f'## {title}', '',
                      f'`{results[name]["command"]}`', '',
                      results[name]['table']]
    if 'ddp' in results:
        d = results['ddp']
        lines += ['', '## DDP (one process)', '',
                  f'{d["wrapper"]} over {d["backend"]} vs the plain step, '
                  f'{d["steps"]} steps of batch {d["batch_size"]}: largest '
                  f'parameter difference {d["max_param_diff"]:.3g}, largest '
                  f'logged difference '
                  f'{max(d["max_log_diff"].values()):.3g} (tolerance '
                  f'{d["tolerance"]:g}; weights moved up to '
                  f'{d["max_param_change"]:.3g}): '
                  f'{"PASSED" if d["passed"] else "FAILED"}']
    if 'equal_time' in results and results['equal_time'].get('table'):
        lines += ['', '## Equal wall time, CIFAR-10', '',
                  results['equal_time']['table'], '',
                  '![equal time](equal_time.png)']
    write_text_atomically(osp.join(out, 'summary.md'),
                          '\n'.join(lines) + '\n', tmp_dir)


def stage_commands(name: str, args: argparse.Namespace,
                   preset: Dict[str, Any], deadline: float,
                   batch: Optional[int]) -> List[List[str]]:
    """The command(s) of a stage, tried in order until one succeeds.

    Args:
        name: The stage.
        args: This run's arguments (``out``, ``work_dir``, ...).
        preset: The run's preset.
        deadline: Epoch seconds (``time.time()``) at which the stage is
            stopped; passed to the ``--stage`` subprocesses.
        batch: The batch the cost stage ran (the sweep's).
    """
    py = sys.executable
    if name in ('cost', 'sweep'):
        base = [py, 'tools/benchmark.py', *preset['cost']['args'],
                '--tmp-dir', args.work_dir]
        if name == 'cost':
            return [base + ['--batch', str(b), '--out',
                            osp.join(args.out, 'cost.json')]
                    for b in preset['cost']['batches']]
        sweep = preset['sweep']
        return [base + [
            '--warmup', str(sweep['warmup']), '--reps', str(sweep['reps']),
            '--no-memory', '--peak-size', '0', '--pairwise', '--batch',
            str(batch), '--sweep', '--variants', *sweep['variants'], '--out',
            osp.join(args.out, 'cost_sweep.json')]]
    return [[py, osp.join('tools', 'device_run.py'), '--stage', name,
             '--preset', args.preset, '--out', args.out, '--kit', args.kit,
             '--work-dir', args.work_dir, '--deadline', f'{deadline:.3f}']]


def ensure_distutils() -> None:
    """Make ``import distutils`` work on Python >= 3.12 (mmengine's Runner
    imports it to log the environment; the stdlib has none since 3.12).

    The kit's setuptools provides it through its ``_distutils_hack``, which
    a site folder's ``.pth`` file would enable; the kit's folder is on
    ``PYTHONPATH``, where no ``.pth`` file is read, so it is enabled here.
    """
    try:
        import distutils  # noqa: F401
    except ImportError:
        import _distutils_hack
        _distutils_hack.add_shim()


def cifar10_folder(args: argparse.Namespace) -> str:
    """Where the kit's CIFAR-10 archive is extracted."""
    return osp.join(args.work_dir, 'cifar10_full')


def start_extraction(args: argparse.Namespace) -> subprocess.Popen:
    """Extract the kit's CIFAR-10 archive in a subprocess (one CPU core),
    while the first stages run."""
    return subprocess.Popen(
        [sys.executable, 'tools/prepare_cifar10.py', '--src',
         osp.join(args.kit, 'data', 'cifar10_jpg.tar.gz'), '--out',
         cifar10_folder(args)], cwd=REPO_ROOT)


def wait_for_extraction(extract: subprocess.Popen,
                        deadline: float) -> Optional[str]:
    """Wait for :func:`start_extraction` until ``deadline`` (epoch seconds).

    Returns:
        ``None`` once it succeeded, else the equal-time stage's status (the
        extraction is stopped if the deadline passes).
    """
    try:
        code = extract.wait(timeout=max(deadline - time.time(), 0.0))
    except subprocess.TimeoutExpired:
        extract.kill()
        extract.wait()
        return ('cut: the CIFAR-10 extraction did not end within the '
                'stage\'s limit')
    return None if code == 0 else f'failed: CIFAR-10 extraction (exit {code})'


def run_stage(name: str, args: argparse.Namespace) -> int:
    """Body of a ``--stage`` subprocess (``ddp``, ``equal_time``)."""
    preset = PRESETS[args.preset]
    ensure_distutils()
    import aemim_mm  # noqa: F401  (registration)
    from aemim_mm.benchmark.report import write_text_atomically
    if name == 'ddp':
        from aemim_repro.ddp_check import run_ddp_check
        p = preset['ddp']
        result = run_ddp_check(osp.join(REPO_ROOT, DDP_CONFIG),
                               preset['backend'], preset['device'],
                               steps=p['steps'], batch_size=p['batch_size'],
                               overrides=p['overrides'])
        write_text_atomically(osp.join(args.out, 'ddp.json'),
                              json.dumps(result, indent=2), args.work_dir)
        log(f'ddp: {"PASSED" if result["passed"] else "FAILED"}, largest '
            f'parameter difference {result["max_param_diff"]:.3g}')
        return 0 if result['passed'] else 1
    from aemim_mm.datasets.cifar10_archive import prepare_cifar10
    from aemim_repro.equal_time import run_equal_time
    from aemim_repro.stages import make_data
    p = preset['equal_time']
    full = cifar10_folder(args)
    prepare_cifar10(osp.join(args.kit, 'data', 'cifar10_jpg.tar.gz'), full)
    data = make_data(osp.join(args.work_dir, 'cifar10'), full, False,
                     p['train_per_class'], p['test_per_class'])
    # GRACE_S before the parent stops it: the stage ends on its own
    run_equal_time(args.out, osp.join(args.work_dir, 'equal_time'),
                   data['root'], p['settings'], args.deadline - GRACE_S,
                   log=log)
    return 0


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--preset', choices=sorted(PRESETS), default='gpu')
    parser.add_argument('--budget', type=float, default=None,
                        help='wall-clock seconds for everything, counted '
                        'from --started (default: the preset\'s)')
    parser.add_argument('--out', default='work_dirs/device_run',
                        help='result folder (at most 8 files)')
    parser.add_argument('--kit', default='.devkit', help='the kit folder')
    parser.add_argument('--work-dir', default=None,
                        help='checkpoints and logs (default: a folder '
                        'beside --out, not returned)')
    parser.add_argument('--started', type=float, default=None,
                        help='epoch seconds the run started at (default: '
                        'now)')
    parser.add_argument('--stages', nargs='+', choices=STAGES,
                        default=list(STAGES), help='run only these')
    parser.add_argument('--stage', choices=('ddp', 'equal_time'),
                        default=None, help=argparse.SUPPRESS)
    parser.add_argument('--deadline', type=float, default=None,
                        help=argparse.SUPPRESS)    # epoch s, --stage only
    args = parser.parse_args(argv)
    if args.budget is not None and args.budget <= 0:
        parser.error(f'--budget must be > 0 seconds, got {args.budget}')
    if args.stage and args.deadline is None:
        parser.error('--stage needs --deadline')
    if args.work_dir is None:
        args.work_dir = osp.join(osp.dirname(osp.abspath(args.out)),
                                 osp.basename(osp.abspath(args.out)) +
                                 '_work')
    out = osp.abspath(args.out)
    if osp.commonpath([osp.abspath(args.work_dir), out]) == out:
        parser.error(f'--work-dir must be outside --out ({args.out}): '
                     'every file in --out comes back')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.work_dir, exist_ok=True)
    if args.stage:
        return run_stage(args.stage, args)
    preset = PRESETS[args.preset]
    started = args.started or time.time()
    deadline = started + (args.budget or preset['budget'])
    command = 'bash tools/device_run.sh --preset ' + args.preset + (
        f' --budget {args.budget:g}' if args.budget else '')
    env = environment(args.preset, args.kit)
    log(f'preset {args.preset} on {env["device"]}: '
        f'{deadline - time.time():.0f} s for stages {args.stages}')
    # CIFAR-10 is extracted while the first stages run (one CPU core)
    extract = (start_extraction(args) if 'equal_time' in args.stages
               else None)
    stages: List[Dict[str, Any]] = []
    batch = None
    failed = False
    for name in STAGES:
        if name not in args.stages:
            continue
        needs = {}
        if name != 'sweep' and 'sweep' in args.stages:
            needs['sweep'] = sweep_need(args.out, preset)
        left = deadline - time.time()
        limit = stage_limit(name, preset, left, needs)
        record = dict(name=name, limit=max(limit, 0.0), seconds=0.0)
        if 'sweep' in needs and name == 'equal_time':
            record['kept_for_sweep'] = needs['sweep']
            log(f'keeping {needs["sweep"]:.0f} s for the sweep')
        if limit < preset[name]['min_s']:
            record['status'] = (f'skipped: {max(limit, 0):.0f} s left, needs '
                                f'{preset[name]["min_s"]}')
        elif name == 'sweep' and batch is None:
            record['status'] = 'skipped: the cost stage found no batch'
        else:
            start, status, cmd = time.time(), None, []
            stage_deadline = start + limit
            if name == 'equal_time':     # the wait is this stage's time
                status = wait_for_extraction(extract, stage_deadline)
                record['data_wait_s'] = time.time() - start
            for i, cmd in enumerate(
                    [] if status else
                    stage_commands(name, args, preset, stage_deadline,
                                   batch)):
                remaining = stage_deadline - time.time()
                if remaining <= 0:
                    break
                status = run_command(cmd, remaining, stage_env(name))
                if status == 'ok':
                    if name == 'cost':
                        batch = preset['cost']['batches'][i]
                    break
            record.update(status=status or 'not run',
                          command=' '.join(cmd),
                          seconds=time.time() - start)
        failed |= record['status'] != 'ok'
        stages.append(record)
        log(f'stage {name}: {record["status"]} '
            f'({record["seconds"]:.0f} s of {record["limit"]:.0f})')
        write_summary(args.out, env, stages, command, args.work_dir)
    if extract is not None and extract.poll() is None:     # never waited for
        extract.kill()
        extract.wait()
    log(f'done: {deadline - time.time():.0f} s of the budget left; results '
        f'in {args.out}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
