"""Equal wall-time comparison: MAE, Fast AEMIM and AEMIM pre-train for the
SAME number of seconds each, then each encoder is linearly probed and
attacked.

This answers the question of a user with a fixed GPU budget. For every
method, on the same data, seed and machine:

1. **calibrate**: one epoch of the method's CIFAR-10 config
   (``configs/*_vit-t-p4_cifar10.py``) through mmengine's ``Runner``; the
   seconds per epoch are the median iteration time (mmengine's
   ``IterTimerHook``, data loading included) after the first 20 % of the
   iterations, times the iterations per epoch;
2. **pre-train** with the config's own recipe, its schedule resized to the
   epochs that fit the budget (``floor(budget / seconds per epoch)``, the
   config's warm-up share kept); :class:`~aemim_repro.hooks.TimeBudgetHook`
   ends the run at an epoch boundary if it would still overrun, and says so;
3. **export** the clean encoder, **linear probe** it (the CIFAR-10
   linear-probe config, shortened), and measure clean top-1 on the test split
   and FGSM / PGD top-1 on a fixed subset of it.

The whole comparison plans against an absolute deadline (wall-clock epoch
seconds), not a duration counted from its own start: the caller's clock,
which may stop the process at that moment, includes the imports and
start-up that precede this module's first line.

Each finished step is written to ``equal_time.json`` at once; the table and
``equal_time.png`` (loss curves, accuracy against eps) come at the end.
Both are written through temporary files in the work dir and moved into the
output folder, so that a run stopped while writing leaves no temporary file
there.
"""
import gc
import json
import math
import os
import os.path as osp
import statistics
import time
from typing import Any, Callable, Dict, Optional, Sequence

from . import stages

METHODS = ('mae', 'fast_aemim', 'aemim')
LABELS = dict(mae='MAE', fast_aemim='Fast AEMIM', aemim='AEMIM')
#: Iterations at the start of the calibration epoch left out of the median
#: (worker start, first allocations, kernel selection).
CALIBRATION_SKIP = 0.2


def stage_preset(settings: Dict[str, Any]) -> Dict[str, Any]:
    """The mini-reproduction preset keys that :mod:`.stages` reads.

    Args:
        settings: ``encoder_layers``, ``decoder_depth``, ``batch_size``,
            ``num_workers``, ``log_interval``, ``linprobe`` (``epochs``,
            ``warmup_epochs``, ``batch_size``) and ``evaluate``
            (``batch_size``, ``num_workers``, ``adversarial``).
    """
    return dict(
        model=dict(encoder_layers=settings['encoder_layers'],
                   decoder_depth=settings['decoder_depth']),
        pretrain=dict(batch_size=settings['batch_size'],
                      num_workers=settings['num_workers'],
                      checkpoint_interval=1,
                      log_interval=settings['log_interval'], amp=False),
        linprobe=dict(settings['linprobe'],
                      num_workers=settings['num_workers'],
                      log_interval=settings['log_interval']),
        evaluate=settings['evaluate'])


def _no_checkpoints(cfg) -> None:
    """Only :class:`TimeBudgetHook` saves (the final weights)."""
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook',
                                        interval=10**9, save_last=False)


def warmup_share(method: str) -> float:
    """The config's warm-up epochs over its epochs (10 / 200)."""
    from mmengine.config import Config
    from .preset import METHOD_CONFIGS
    cfg = Config.fromfile(osp.join(stages.REPO_ROOT, METHOD_CONFIGS[method]))
    warm = cfg.param_scheduler[0]
    return warm['end'] / cfg.train_cfg.max_epochs


def seconds_per_epoch(iter_seconds: Sequence[float],
                      iters_per_epoch: int) -> float:
    """Steady-state epoch time from one epoch's iteration times.

    Raises:
        ValueError: Without iteration times.
    """
    if not iter_seconds:
        raise ValueError('seconds_per_epoch: no iteration times')
    skip = min(int(len(iter_seconds) * CALIBRATION_SKIP),
               len(iter_seconds) - 1)
    return statistics.median(iter_seconds[skip:]) * iters_per_epoch


def planned_epochs(budget: float, epoch_seconds: float) -> int:
    """Epochs of ``epoch_seconds`` that fit in ``budget`` (at least 1)."""
    if epoch_seconds <= 0:
        raise ValueError(f'epoch_seconds must be > 0, got {epoch_seconds}')
    return max(1, int(math.floor(budget / epoch_seconds)))


def needed_seconds(num_methods: int, settings: Dict[str, Any]) -> float:
    """The least time the comparison can use: ``min_pretrain_s`` and
    ``downstream_s`` for each method (the calibration comes on top)."""
    return num_methods * (settings['min_pretrain_s'] +
                          settings['downstream_s'])


def pretrain_budget(left: float, num_methods: int,
                    settings: Dict[str, Any], overhead: float) -> float:
    """Training-loop seconds of each method: what ``left`` holds after every
    method's probe and evaluation (``downstream_s``) and its run's building
    and starting (``overhead``), shared equally, or ``pretrain_s`` if set
    and smaller.

    Raises:
        RuntimeError: If that is less than ``min_pretrain_s``.
    """
    budget = ((left - num_methods * settings['downstream_s']) / num_methods
              - overhead)
    if settings.get('pretrain_s') is not None:
        budget = min(budget, settings['pretrain_s'])
    if budget < settings['min_pretrain_s']:
        raise RuntimeError(
            f'equal_time: {left:.0f} s left after calibration leaves '
            f'{budget:.1f} s of pre-training per method; at least '
            f'{settings["min_pretrain_s"]} s are needed')
    return budget


def calibrate(method: str, work_dir: str, data_root: str,
              settings: Dict[str, Any], seed: int) -> Dict[str, Any]:
    """One epoch of ``method``: its steady-state seconds per epoch, and the
    seconds of the run outside its iterations (building, starting)."""
    from mmengine.runner import Runner
    import aemim_mm  # noqa: F401  (registration)
    from . import hooks  # noqa: F401
    cfg = stages.pretrain_config(method, work_dir, seed, data_root,
                                 stage_preset(settings), 1, 0)
    _no_checkpoints(cfg)
    cfg.custom_hooks = []
    start = time.monotonic()
    runner = Runner.from_cfg(cfg)
    runner.train()
    wall = time.monotonic() - start
    times = [float(t) for t in
             runner.message_hub.get_scalar('train/time').data[0]]
    iters = len(runner.train_dataloader)
    return dict(iters_per_epoch=iters, iter_seconds=times,
                epoch_seconds=seconds_per_epoch(times, iters),
                overhead_s=max(wall - sum(times), 0.0))


def pretrain(method: str, work_dir: str, data_root: str,
             settings: Dict[str, Any], seed: int, budget: float,
             epoch_seconds: float) -> Dict[str, Any]:
    """Pre-train ``method`` for ``budget`` seconds (see the module doc)."""
    epochs = planned_epochs(budget, epoch_seconds)
    warmup = min(int(round(warmup_share(method) * epochs)), epochs - 1)
    cfg = stages.pretrain_config(method, work_dir, seed, data_root,
                                 stage_preset(settings), epochs, warmup)
    _no_checkpoints(cfg)
    cfg.custom_hooks.append(dict(type='TimeBudgetHook', seconds=budget))
    stages.train(cfg)
    with open(osp.join(work_dir, 'time_budget.json')) as f:
        spent = json.load(f)
    return dict(budget_s=budget, planned_epochs=epochs, warmup_epochs=warmup,
                epochs=spent['epochs'], seconds=spent['elapsed'],
                cut=spent['cut'], checkpoint=osp.join(work_dir, 'final.pth'),
                loss_curves=osp.join(work_dir, 'loss_curves.json'))


def downstream(checkpoint: str, work_dir: str, data_root: str,
               settings: Dict[str, Any], seed: int) -> Dict[str, Any]:
    """Export, linear probe, clean top-1 and FGSM / PGD of one encoder."""
    from aemim_mm.apis.export import export_encoder
    encoder = osp.join(work_dir, 'encoder_mmpretrain.pth')
    export_encoder(checkpoint, formats=['mmpretrain'],
                   paths={'mmpretrain': encoder})
    preset = stage_preset(settings)
    probe_dir = osp.join(work_dir, 'linprobe')
    cfg = stages.classifier_config('linprobe', encoder, probe_dir, seed,
                                   data_root, preset)
    stages.train(cfg)    # the Runner trains a copy of cfg
    ckpt = osp.join(probe_dir, f'epoch_{preset["linprobe"]["epochs"]}.pth')
    return stages.evaluate_classifier(cfg, ckpt, osp.join(data_root, 'test'),
                                      None, preset, seed, adversarial=True)


def format_table(result: Dict[str, Any]) -> str:
    """The comparison as a markdown table."""
    adv = result['settings']['evaluate']['adversarial']
    eps = [f'{float(e):g}' for e in adv['fgsm_eps']]
    pgd = [f'{float(e):g}' for e in adv['pgd_eps']]
    lines = [
        f'equal wall time: {result["budget_s"]:.0f} s of pre-training per '
        f'method, seed {result["seed"]} (one seed), '
        f'{result["images"]["train"]} training / {result["images"]["test"]} '
        f'test images; linear probe {result["settings"]["linprobe"]["epochs"]}'
        f' epochs; FGSM / PGD-{adv["pgd_steps"]} on '
        f'{adv["num_samples"]} test images, eps in /255', '',
        '| method | s/epoch (calibrated) | epochs planned | epochs reached | '
        'pre-training s | clean top-1 | ' +
        ' | '.join(f'FGSM {e}' for e in eps) + ' | ' +
        ' | '.join(f'PGD {e}' for e in pgd) + ' |',
        '|' + '---|' * (6 + len(eps) + len(pgd))
    ]
    for method, r in result['methods'].items():
        pre, ev = r.get('pretrain'), r.get('eval')
        cells = [LABELS[method],
                 f'{r["calibration"]["epoch_seconds"]:.2f}'
                 if r.get('calibration') else '-']
        cells += ([str(pre['planned_epochs']),
                   f'{pre["epochs"]}{" (cut)" if pre["cut"] else ""}',
                   f'{pre["seconds"]:.1f}'] if pre else ['-'] * 3)
        if ev:
            cells.append(f'{ev["clean_top1"]:.2f}')
            cells += [f'{ev["fgsm"][e]:.2f}' for e in eps]
            cells += [f'{ev["pgd"][e]:.2f}' for e in pgd]
        else:
            cells += ['-'] * (1 + len(eps) + len(pgd))
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def plot(result: Dict[str, Any], out_file: str,
         tmp_dir: Optional[str] = None) -> str:
    """Loss curves (clean solid, adversarial dashed) against the share of
    the budget, and FGSM / PGD top-1 against eps
    (:func:`~aemim_mm.visualization.accuracy_vs_eps.draw_accuracy_vs_eps`),
    one colour per method; a PNG written through a temporary file in
    ``tmp_dir`` (:func:`~aemim_mm.benchmark.report.write_atomically`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from aemim_mm.benchmark.report import write_atomically
    from aemim_mm.visualization.accuracy_vs_eps import draw_accuracy_vs_eps
    from aemim_mm.visualization.loss_plot import moving_average
    fig = Figure(figsize=(15, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax_loss, ax_fgsm, ax_pgd = fig.subplots(1, 3)
    colors = {LABELS[m]: c for m, c in
              dict(mae='tab:blue', fast_aemim='tab:green',
                   aemim='tab:red').items()}
    curves = {}
    for method, r in result['methods'].items():
        pre, ev = r.get('pretrain'), r.get('eval')
        if pre and osp.isfile(pre['loss_curves']):
            with open(pre['loss_curves']) as f:
                records = json.load(f)['records']
            series = ([('loss', 'clean', '-')] if method == 'mae' else
                      [('rec_clean', 'clean', '-'),
                       ('rec_adv', 'adversarial', '--')])
            for key, what, style in series:
                rec = records.get(key) or {}
                if not rec.get('iter'):
                    continue
                its = [i / rec['iter'][-1] for i in rec['iter']]
                window = max(1, min(50, len(its) // 10))
                ax_loss.plot(its, moving_average(rec['value'], window),
                             color=colors[LABELS[method]], linestyle=style,
                             label=f'{LABELS[method]} {what}')
        if ev:      # eps 0: the attacked subset's clean accuracy
            curves[LABELS[method]] = {
                attack: {0.0: ev['adv_clean'], **ev[attack]}
                for attack in ('fgsm', 'pgd')}
    draw_accuracy_vs_eps((ax_fgsm, ax_pgd), curves, colors=colors)
    ax_loss.set_xlabel('share of the pre-training run')
    ax_loss.set_ylabel('reconstruction loss (moving average)')
    ax_loss.set_title(f'pre-training, {result["budget_s"]:.0f} s each')
    ax_loss.grid(True, alpha=0.3)
    if ax_loss.get_legend_handles_labels()[0]:
        ax_loss.legend(fontsize=8)
    steps = result['settings']['evaluate']['adversarial']['pgd_steps']
    for ax, name in ((ax_fgsm, 'FGSM'), (ax_pgd, f'PGD-{steps}')):
        ax.set_ylabel('linear-probe top-1 (%)')
        ax.set_title(f'{name}, linear probe')
    fig.tight_layout()
    return write_atomically(out_file,
                            lambda tmp: fig.savefig(tmp, format='png'),
                            tmp_dir)


def run_equal_time(out_dir: str, work_dir: str, data_root: str,
                   settings: Dict[str, Any], deadline: float, seed: int = 0,
                   methods: Sequence[str] = METHODS,
                   log: Callable[[str], None] = print) -> Dict[str, Any]:
    """The whole comparison, done by ``deadline``.

    Args:
        out_dir: Where ``equal_time.json`` and ``equal_time.png`` go.
        work_dir: mmengine work dirs (checkpoints, logs) and the temporary
            files of what goes to ``out_dir``; outside ``out_dir``.
        data_root: Prepared CIFAR-10: ``train/<class>/``, ``test/<class>/``.
        settings: See :func:`stage_preset`; also ``downstream_s``, the
            seconds kept for each encoder's probe and evaluation,
            ``min_pretrain_s``, and ``pretrain_s``: the training seconds of
            each method, or ``None`` for all that the deadline leaves.
        deadline: Wall-clock time (epoch seconds, as ``time.time()``) by
            which everything is to be done.
        seed: The one seed.
        methods: The methods, in order.
        log: Progress lines.

    Returns:
        What ``equal_time.json`` holds.

    Raises:
        RuntimeError: If the deadline leaves less than
            :func:`needed_seconds` at the start (nothing is run), or less
            than ``min_pretrain_s`` per method for pre-training after the
            calibration.
    """
    from aemim_mm.benchmark.report import write_atomically
    from aemim_mm.evaluation.corruption import list_class_images
    from aemim_mm.evaluation.progress import format_seconds
    start = time.time()
    if deadline - start < needed_seconds(len(methods), settings):
        raise RuntimeError(
            f'equal_time: {deadline - start:.0f} s left before the deadline; '
            f'at least {needed_seconds(len(methods), settings):.0f} s are '
            f'needed ({len(methods)} x (min_pretrain_s + downstream_s)) '
            'besides the calibration')
    os.makedirs(out_dir, exist_ok=True)
    json_path = osp.join(out_dir, 'equal_time.json')
    result: Dict[str, Any] = dict(
        seed=seed, seconds=deadline - start, deadline=deadline,
        settings=settings, budget_s=None,
        images=dict(train=len(list_class_images(osp.join(data_root,
                                                          'train'))),
                    test=len(list_class_images(osp.join(data_root,
                                                         'test')))),
        methods={m: {} for m in methods})

    def save() -> None:
        def write(tmp: str) -> None:
            with open(tmp, 'w') as f:
                json.dump(result, f, indent=2)
        write_atomically(json_path, write, work_dir)

    def step(message: str) -> None:
        now = time.time()
        log(f'[equal_time {now - start:.0f}/{deadline - start:.0f} s, '
            f'{format_seconds(max(deadline - now, 0))} left] {message}')

    for method in methods:
        step(f'calibrating {method} (one epoch)')
        cal = calibrate(method, osp.join(work_dir, method, 'calibrate'),
                        data_root, settings, seed)
        result['methods'][method]['calibration'] = cal
        save()
        gc.collect()
        step(f'{method}: {cal["epoch_seconds"]:.2f} s per epoch')
    left = deadline - time.time()
    overhead = max(result['methods'][m]['calibration']['overhead_s']
                   for m in methods)
    budget = pretrain_budget(left, len(methods), settings, overhead)
    result['budget_s'] = budget
    for method in methods:
        r = result['methods'][method]
        step(f'pre-training {method} for {budget:.0f} s '
             f'({planned_epochs(budget, r["calibration"]["epoch_seconds"])}'
             ' epochs planned)')
        r['pretrain'] = pretrain(
            method, osp.join(work_dir, method, 'pretrain'), data_root,
            settings, seed, budget, r['calibration']['epoch_seconds'])
        save()
        gc.collect()    # the finished run's loader workers
    for method in methods:
        r = result['methods'][method]
        step(f'linear probe and attacks of {method}')
        r['eval'] = downstream(r['pretrain']['checkpoint'],
                               osp.join(work_dir, method, 'downstream'),
                               data_root, settings, seed)
        save()
        gc.collect()
    result['table'] = format_table(result)
    save()
    plot(result, osp.join(out_dir, 'equal_time.png'), work_dir)
    step('done')
    log(result['table'])
    return result
