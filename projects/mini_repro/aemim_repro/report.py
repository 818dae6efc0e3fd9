"""Results table (markdown + JSON) and plots of the mini-reproduction.

* ``results.json``: every number, per seed and as mean / std over seeds.
* ``results.md``: the tables (equal epochs, equal wall time, wall time per
  stage), the differences to MAE, the command and the machine.
* ``loss_curves.png``: the clean and adversarial reconstruction losses of
  each method's pre-training (the paper's Fig. 2; MAE has only the clean
  one), mean over seeds.
* ``accuracy_vs_eps.png`` (and ``accuracy_vs_eps_linprobe.png``): top-1
  against the FGSM / PGD budget, one curve per encoder (the paper's Fig. 3).

The numbers (mean / std over seeds) come from :mod:`aemim_repro.stats`;
the figures are drawn by :mod:`aemim_mm.visualization`.
"""
import json
import math
import os
import os.path as osp
import platform
import time
from typing import Any, Dict, List, Sequence

from aemim_mm.visualization.loss_plot import \
    plot_loss_curves_by_method as _plot_loss_curves_by_method

from .preset import METHOD_LABELS
# The statistics live in :mod:`.stats`; imported from here as before.
from .stats import aggregate, encoder_label, stat  # noqa: F401

_STAGE_COLUMNS = (('pretrain', 'pre-train'), ('export', 'export'),
                  ('finetune', 'fine-tune'), ('linprobe', 'linear probe'),
                  ('eval_finetune', 'evaluate FT'),
                  ('eval_linprobe', 'evaluate LP'))


def machine() -> str:
    """CPU / GPU, core count, python and torch versions."""
    import torch
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    gpu = (torch.cuda.get_device_name(0) if torch.cuda.is_available() else
           'no GPU')
    return (f'{cpu}, {os.cpu_count()} cores, {gpu}; OMP_NUM_THREADS='
            f'{os.environ.get("OMP_NUM_THREADS", "unset")}; python '
            f'{platform.python_version()}, torch {torch.__version__}, '
            f'{platform.system()} {platform.release()}')


def _cell(s: Dict[str, Any], digits: int = 2) -> str:
    return f'{s["mean"]:.{digits}f} ± {s["std"]:.{digits}f}'


def _epochs_cell(s: Dict[str, Any]) -> str:
    if s['std'] == 0:
        return f'{s["mean"]:g}'
    return f'{s["mean"]:.1f} ± {s["std"]:.1f}'


def _table(rows: List[List[str]]) -> str:
    head = '| ' + ' | '.join(rows[0]) + ' |'
    sep = '|' + '|'.join('---' for _ in rows[0]) + '|'
    body = ['| ' + ' | '.join(r) + ' |' for r in rows[1:]]
    return '\n'.join([head, sep] + body)


def _metric_columns(agg: Dict[str, Any], kind: str,
                    robust: bool) -> List[tuple]:
    cols = [(f'{kind}/clean_top1', 'clean top-1')]
    if robust:
        cols.append((f'{kind}/corruption_mean', 'C-like mean'))
        any_enc = next(iter(agg.values()))['metrics']
        for attack, name in (('fgsm', 'FGSM'), ('pgd', 'PGD')):
            eps = sorted((k.split('/')[-1] for k in any_enc
                          if k.startswith(f'{kind}/{attack}/')), key=float)
            cols += [(f'{kind}/{attack}/{e}', f'{name} {e}') for e in eps]
    return cols


def _comparison_table(agg: Dict[str, Any], encs: Sequence[str], kind: str,
                      robust: bool) -> str:
    cols = _metric_columns(agg, kind, robust)
    rows = [['encoder', 'pre-train epochs', 'pre-train epoch time (s)'] +
            [c[1] for c in cols]]
    for enc in encs:
        a = agg[enc]
        rows.append([
            encoder_label(enc, a['pretrain_epochs']['mean']),
            _epochs_cell(a['pretrain_epochs']),
            _cell(a['wall_s']['pretrain_epochs_only'], 1)
        ] + [_cell(a['metrics'][k]) for k, _ in cols])
    return _table(rows)


def _differences(agg: Dict[str, Any], pairs: Sequence[tuple],
                 robustness_on: Sequence[str]) -> List[str]:
    lines = []
    for base, other in pairs:
        if base not in agg or other not in agg:
            continue
        parts, better, distinct = [], 0, 0
        keys = ['finetune/clean_top1', 'linprobe/clean_top1']
        for kind in robustness_on:
            keys.append(f'{kind}/corruption_mean')
            pgd = [k for k in agg[base]['metrics']
                   if k.startswith(f'{kind}/pgd/')]
            if pgd:
                keys.append(max(pgd, key=lambda k: float(k.split('/')[-1])))
        for k in keys:
            a, b = agg[base]['metrics'][k], agg[other]['metrics'][k]
            d = b['mean'] - a['mean']
            spread = max(a['std'], b['std'])
            better += d > 0
            distinct += abs(d) > spread and a['n'] > 1
            parts.append(f'{k} {d:+.2f}')
        lines.append(
            f'- **{encoder_label(other)} − '
            f'{encoder_label(base, agg[base]["pretrain_epochs"]["mean"])}**'
            f' (points of top-1): ' + ', '.join(parts) +
            f'. Higher on {better} of {len(keys)}; a difference larger than '
            f'the larger seed std on {distinct} of {len(keys)}.')
    return lines


def plot_loss_curves_by_method(results: Dict[str, Dict[int, Dict]],
                               methods: Sequence[str], out_file: str,
                               iters_per_epoch: int) -> str:
    """Fig. 2 of the mini-reproduction, with the methods' names.

    :func:`aemim_mm.visualization.loss_plot.plot_loss_curves_by_method` with
    :data:`METHOD_LABELS` as legend names.
    """
    return _plot_loss_curves_by_method(
        results, methods, out_file, iters_per_epoch, labels=METHOD_LABELS)


def _eps_curves(agg: Dict[str, Any], kind: str) -> Dict[str, Dict]:
    curves = {}
    for enc, a in agg.items():
        m = a['metrics']
        if f'{kind}/adv_clean' not in m:
            continue
        label = encoder_label(enc, a['pretrain_epochs']['mean'])
        curves[label] = {}
        for attack in ('fgsm', 'pgd'):
            pts = {0.0: m[f'{kind}/adv_clean']['mean']}
            for k, s in m.items():
                if k.startswith(f'{kind}/{attack}/'):
                    pts[float(k.split('/')[-1])] = s['mean']
            curves[label][attack] = pts
    return curves


def _relative_paths(node: Any, out_dir: str) -> Any:
    """Paths under ``out_dir`` (or the repository) made relative to it."""
    from .stages import REPO_ROOT
    if isinstance(node, dict):
        return {k: _relative_paths(v, out_dir) for k, v in node.items()}
    if isinstance(node, list):
        return [_relative_paths(v, out_dir) for v in node]
    if isinstance(node, str) and osp.isabs(node):
        for root in (out_dir, REPO_ROOT):
            if node == root or node.startswith(root.rstrip(os.sep) + os.sep):
                rel = osp.relpath(node, root)
                return rel if root == out_dir else f'<repo>/{rel}'
    return node


def write_report(preset: Dict[str, Any], out_dir: str,
                 results: Dict[str, Dict[int, Dict[str, Any]]],
                 data: Dict[str, Any], corr: Dict[str, Any],
                 command: str) -> Dict[str, Any]:
    """Write ``results.{md,json}`` and the PNGs into ``out_dir``.

    Returns:
        The JSON content.
    """
    from aemim_mm.visualization.accuracy_vs_eps import plot_accuracy_vs_eps
    robust_on = list(preset['evaluate']['robustness_on'])
    agg = aggregate(results, robust_on)
    methods = list(preset['methods'])
    targets = list(preset['equal_time']['targets'])
    n_train = data['images']['train']
    ipe = math.ceil(n_train / preset['pretrain']['batch_size'])
    figures = dict(loss_curves='loss_curves.png')
    plot_loss_curves_by_method(results, methods,
                               osp.join(out_dir, 'loss_curves.png'), ipe)
    for kind in robust_on:
        name = ('accuracy_vs_eps.png' if kind == 'finetune' else
                f'accuracy_vs_eps_{kind}.png')
        plot_accuracy_vs_eps(_eps_curves(agg, kind), osp.join(out_dir, name))
        figures[f'accuracy_vs_eps_{kind}'] = name

    smoke = preset['smoke']
    layers = preset['model']['encoder_layers']
    model = ('ViT-T/4 (192 dims, 3 heads, 12 blocks), decoder 4 blocks'
             if layers is None else
             f'a SHALLOWER ViT-T/4: {layers} encoder block(s) instead of 12 '
             f'(192 dims, 3 heads), decoder '
             f'{preset["model"]["decoder_depth"] or 4} block(s)')
    when = time.strftime('%Y-%m-%d %H:%M:%S %Z')
    info = dict(
        title=('Mini-reproduction on CIFAR-10: MAE vs Fast AEMIM vs AEMIM'
               + (' — SMOKE RUN' if smoke else '')),
        smoke=smoke, command=command, machine=machine(), date=when,
        seeds=list(preset['seeds']), model=model, data=data,
        corruptions=corr, preset=preset, figures=figures,
        comparisons=dict(
            equal_epochs=methods,
            equal_wall_time=[[f'mae_eqtime_{t}', t] for t in targets]),
        encoders=agg,
        per_seed={enc: {str(s): r for s, r in by_seed.items()}
                  for enc, by_seed in results.items()})
    info = _relative_paths(info, out_dir)
    with open(osp.join(out_dir, 'results.json'), 'w') as f:
        json.dump(info, f, indent=1)
    with open(osp.join(out_dir, 'results.md'), 'w') as f:
        f.write(_markdown(info, agg, preset, methods, targets, robust_on))
    return info


def _markdown(info: Dict[str, Any], agg: Dict[str, Any],
              preset: Dict[str, Any], methods: Sequence[str],
              targets: Sequence[str], robust_on: Sequence[str]) -> str:
    p, ev = preset['pretrain'], preset['evaluate']
    out = [f'# {info["title"]}', '']
    if info['smoke']:
        out += [
            '> **SMOKE RUN — these numbers are NOT evidence about AEMIM.** '
            'They come from a few hundred images, a shallower encoder and a '
            'couple of epochs, and only show that every stage of the '
            'pipeline runs and produces finite numbers. The real run is the '
            '`gpu` preset (docs/mini_repro.md).', ''
        ]
    adv = ev['adversarial']
    corr = info['corruptions']
    n = len(info['seeds'])
    out += [
        f'- command: `{info["command"]}`',
        f'- machine: {info["machine"]}',
        f'- date: {info["date"]}',
        f'- preset: `{preset["preset_name"]}`; seeds {info["seeds"]} '
        f'(mean ± sample std over {n} seed(s)'
        + ('; with one seed the ± 0.00 is no spread' if n == 1 else '') + ')',
        f'- model: {info["model"]}, 32 px, patch 4',
        f'- data: CIFAR-10, {info["data"]["images"]["train"]} training '
        f'images (pre-training, fine-tuning, linear probe), '
        f'{info["data"]["images"]["test"]} test images (clean top-1)',
        f'- pre-training: {p["epochs"]} epoch(s) ({p["warmup_epochs"]} '
        f'warm-up), batch {p["batch_size"]}, lr 1.5e-4 × batch / 256; '
        f'fine-tune {preset["finetune"]["epochs"]} epoch(s), linear probe '
        f'{preset["linprobe"]["epochs"]} epoch(s) (the CIFAR-10 configs, '
        f'shortened; lr scaled with the batch); the last epoch is evaluated',
        f'- CIFAR-10-C-like: {corr["images"]} test images × '
        f'{len(corr["corruptions"])} corruptions × severities '
        f'{corr["severities"]} ({corr["generator"]}); FGSM / PGD-'
        f'{adv["pgd_steps"]} (ART, L∞, eps in /255, PGD step '
        f'2.5·eps/steps, '
        f'random start) on {adv["num_samples"] or "all"} test images',
        '- all accuracies are top-1 in %; wall times in seconds on the '
        'machine above; "pre-train epoch time" is the summed wall time of '
        'the training epochs (EpochTimeHook), the quantity the equal-wall-'
        'time runs match', ''
    ]
    out += [f'## Equal pre-training epochs ({p["epochs"]} each)', '']
    for kind, name in (('finetune', 'Fine-tuned'),
                       ('linprobe', 'Linear probe')):
        out += [f'**{name}**', '',
                _comparison_table(agg, methods, kind, kind in robust_on), '']
    if targets:
        out += ['## Equal pre-training wall time', '',
                'MAE is pre-trained again, with its full (shortened) '
                'schedule, for the number of epochs whose wall time matches '
                'the other method\'s pre-training: round(target epoch time '
                '/ MAE\'s mean epoch time, both measured in this run, per '
                'seed).', '']
        encs = [e for t in targets for e in (f'mae_eqtime_{t}', t)]
        for kind, name in (('finetune', 'Fine-tuned'),
                           ('linprobe', 'Linear probe')):
            out += [f'**{name}**', '',
                    _comparison_table(agg, encs, kind, kind in robust_on),
                    '']
    out += ['## Differences to MAE', '',
            'Mean of the method minus mean of MAE; this decides nothing '
            'when the difference is within the seed spread.', '']
    pairs = [('mae', m) for m in methods if m != 'mae']
    pairs += [(f'mae_eqtime_{t}', t) for t in targets]
    out += _differences(agg, pairs, robust_on) + ['']
    out += ['## Wall time per stage (s)', '']
    rows = [['encoder'] + [c[1] for c in _STAGE_COLUMNS] + ['total']]
    for enc, a in agg.items():
        rows.append([encoder_label(enc, a['pretrain_epochs']['mean'])] +
                    [_cell(a['wall_s'][k], 1) for k, _ in _STAGE_COLUMNS] +
                    [_cell(a['wall_s']['total'], 1)])
    out += [_table(rows), '']
    out += ['## Figures', '',
            f'- ![loss curves]({info["figures"]["loss_curves"]}) '
            '`loss_curves.png`: reconstruction loss of the clean pretext '
            'task (solid) and of the adversarial auxiliary task (dashed) '
            'during pre-training (paper Fig. 2), mean over seeds; lower '
            'panel: adversarial minus clean loss. The clean loss is over the '
            'whole batch, the adversarial one over the attacked samples '
            '(all for AEMIM, a random 25 % for Fast AEMIM, so its gap also '
            'holds the sampling noise of that subset).']
    for kind in robust_on:
        f = info['figures'][f'accuracy_vs_eps_{kind}']
        out.append(f'- ![accuracy vs eps]({f}) `{f}`: top-1 of the '
                   f'{"fine-tuned" if kind == "finetune" else "linear-probe"}'
                   ' classifiers against the FGSM / PGD budget (paper '
                   'Fig. 3), mean over seeds; eps 0 is the clean accuracy '
                   'of the attacked subset.')
    out.append('')
    return '\n'.join(out)
