"""Plot training loss curves to a PNG with matplotlib (Agg, no display).

:func:`plot_loss_curves`: the curves of one run (what
:class:`~aemim_mm.engine.hooks.LossCurveHook` draws);
:func:`plot_loss_curves_by_method`: several methods, mean over seeds (the
mini-reproduction's Fig. 2).
"""
import json
from typing import Dict, Mapping, Optional, Sequence

import numpy as np

#: Readable legend labels for the wrapper's log keys.
DEFAULT_LABELS = {
    'rec_clean': 'clean pretext task (rec_clean)',
    'rec_adv': 'adversarial auxiliary task (rec_adv)',
    'loss': 'total optimised loss (loss)',
}

#: Line colour of each method in :func:`plot_loss_curves_by_method`.
METHOD_COLORS = dict(mae='tab:blue', fast_aemim='tab:green', aemim='tab:red')


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing moving average (the first points average what exists).

    Args:
        values: The series.
        window: Window length; ``<= 1`` returns the values unchanged.

    Returns:
        np.ndarray: Same length as ``values``.
    """
    v = np.asarray(values, dtype=np.float64)
    if window <= 1 or v.size == 0:
        return v
    csum = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, v.size + 1)
    lo = np.maximum(0, idx - window)
    return (csum[idx] - csum[lo]) / (idx - lo)


def plot_loss_curves(records: Mapping[str, Mapping[str, Sequence[float]]],
                     out_file: str,
                     keys: Sequence[str] = ('rec_clean', 'rec_adv'),
                     smooth: int = 10,
                     title: str = ('AEMIM: clean pretext task vs '
                                   'adversarial auxiliary task'),
                     labels: Optional[Dict[str, str]] = None,
                     gap: Optional[Sequence[str]] = ('rec_clean', 'rec_adv'),
                     dpi: int = 100) -> str:
    """Plot loss series against iteration and save them as a PNG.

    Each series is drawn raw (thin, transparent) and as a trailing moving
    average over ``smooth`` iterations (thick). If both series named by
    ``gap`` have data, a second panel below shows their difference
    (``gap[1] - gap[0]`` at the iterations both have, e.g. how much harder
    the adversarial task is than the clean one).

    Args:
        records: ``key -> {'iter': [...], 'value': [...]}``.
        out_file: PNG path to write.
        keys: Which series of ``records`` to plot; missing or empty ones are
            skipped.
        smooth: Moving-average window in iterations (``<= 1``: none).
        title: Figure title.
        labels: Legend label per key (defaults to :data:`DEFAULT_LABELS`).
        gap: ``(a, b)``: plot ``b - a`` in a second panel; ``None``: no panel.
        dpi: Resolution of the PNG (the figure is 8 x 4.5 inches, 8 x 6 with
            the gap panel).

    Returns:
        str: ``out_file``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = {**DEFAULT_LABELS, **(labels or {})}

    def series(key):
        rec = records.get(key) or {}
        it = np.asarray(rec.get('iter', []), dtype=np.int64)
        val = np.asarray(rec.get('value', []), dtype=np.float64)
        return it, val

    gap_data = None
    if gap is not None and len(gap) == 2:
        (ia, va), (ib, vb) = series(gap[0]), series(gap[1])
        common, pa, pb = np.intersect1d(ia, ib, return_indices=True)
        if common.size:
            gap_data = (common, vb[pb] - va[pa])

    fig = Figure(figsize=(8, 6 if gap_data is not None else 4.5), dpi=dpi)
    FigureCanvasAgg(fig)
    if gap_data is not None:
        ax, ax_gap = fig.subplots(
            2, 1, sharex=True, gridspec_kw=dict(height_ratios=(3, 1.3)))
    else:
        ax, ax_gap = fig.add_subplot(1, 1, 1), None
    colors = ['tab:blue', 'tab:red', 'tab:gray', 'tab:green', 'tab:purple']
    styles = ['-', '--', ':', '-.', '-']
    plotted = 0
    for i, key in enumerate(keys):
        it, val = series(key)
        if not it.size:
            continue
        color, style = colors[i % len(colors)], styles[i % len(styles)]
        label = labels.get(key, key)
        if smooth > 1 and val.size > 1:
            ax.plot(it, val, color=color, alpha=0.25, linewidth=0.8)
            ax.plot(it, moving_average(val, smooth), color=color,
                    linestyle=style, linewidth=2.0,
                    label=f'{label}, mean of last {smooth}')
        else:
            ax.plot(it, val, color=color, linestyle=style, linewidth=1.5,
                    marker='.', label=label)
        plotted += 1
    ax.set_ylabel('reconstruction loss')
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if plotted:
        ax.legend(loc='upper right')
    else:
        ax.text(0.5, 0.5, 'no data yet', ha='center', va='center',
                transform=ax.transAxes)
    if ax_gap is not None:
        it, d = gap_data
        ax_gap.axhline(0.0, color='black', linewidth=0.8)
        if smooth > 1 and d.size > 1:
            ax_gap.plot(it, d, color='tab:purple', alpha=0.25, linewidth=0.8)
            d = moving_average(d, smooth)
        ax_gap.plot(it, d, color='tab:purple', linewidth=2.0)
        ax_gap.set_ylabel(f'{gap[1]} - {gap[0]}')
        ax_gap.grid(True, alpha=0.3)
        ax_gap.set_xlabel('iteration')
    else:
        ax.set_xlabel('iteration')
    fig.tight_layout()
    fig.savefig(out_file, format='png')
    return out_file


def plot_loss_curves_by_method(
        results: Mapping[str, Mapping[int, Mapping]],
        methods: Sequence[str],
        out_file: str,
        iters_per_epoch: int,
        labels: Optional[Mapping[str, str]] = None) -> str:
    """The paper's Fig. 2: clean and adversarial loss of several methods.

    The upper panel shows each method's clean (solid) and adversarial
    (dashed) reconstruction loss against the epoch, the lower one their
    difference. Each curve is the mean over seeds at the iterations all
    seeds have, smoothed by a trailing moving average. Method ``'mae'`` has
    only its ``loss`` (its only, clean, reconstruction loss).

    Args:
        results: ``results[method][seed]['pretrain']['loss_curves']``: the
            JSON file :class:`~aemim_mm.engine.hooks.LossCurveHook` wrote.
        methods: The methods to draw, among :data:`METHOD_COLORS`' keys.
        out_file: PNG path to write.
        iters_per_epoch: Converts iterations to epochs on the x axis.
        labels: Legend name per method (``None``: the method's key).

    Returns:
        str: ``out_file``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = labels or {}
    fig = Figure(figsize=(8, 6.5), dpi=100)
    FigureCanvasAgg(fig)
    ax, ax_gap = fig.subplots(
        2, 1, sharex=True, gridspec_kw=dict(height_ratios=(3, 1.4)))
    for method in methods:
        curves = []
        for seed in sorted(results.get(method, {})):
            with open(results[method][seed]['pretrain']['loss_curves']) as f:
                curves.append(json.load(f)['records'])
        if not curves:
            continue
        series = [('loss', 'clean', '-')] if method == 'mae' else [
            ('rec_clean', 'clean', '-'), ('rec_adv', 'adversarial', '--')
        ]
        smoothed = {}
        for key, what, style in series:
            common = None
            for rec in curves:
                it = set(rec[key]['iter'])
                common = it if common is None else common & it
            if not common:
                continue
            its = np.array(sorted(common))
            vals = np.mean([
                np.interp(its, rec[key]['iter'], rec[key]['value'])
                for rec in curves
            ], axis=0)
            window = max(1, min(50, its.size // 10))
            smoothed[key] = (its, moving_average(vals, window))
            ax.plot(its / iters_per_epoch, smoothed[key][1],
                    color=METHOD_COLORS[method], linestyle=style,
                    linewidth=1.8,
                    label=f'{labels.get(method, method)} {what}')
        if 'rec_adv' in smoothed and 'rec_clean' in smoothed:
            its, pa, pb = np.intersect1d(smoothed['rec_clean'][0],
                                         smoothed['rec_adv'][0],
                                         return_indices=True)
            ax_gap.plot(its / iters_per_epoch,
                        smoothed['rec_adv'][1][pb] -
                        smoothed['rec_clean'][1][pa],
                        color=METHOD_COLORS[method], linewidth=1.5,
                        label=labels.get(method, method))
    ax_gap.axhline(0.0, color='black', linewidth=0.8)
    ax_gap.set_xlabel('pre-training epoch')
    ax_gap.set_ylabel('adversarial − clean')
    ax_gap.grid(True, alpha=0.3)
    if ax_gap.get_legend_handles_labels()[0]:
        ax_gap.legend(loc='upper right', fontsize=8)
    ax.set_ylabel('reconstruction loss (mean over seeds)')
    ax.set_title('clean pretext task vs adversarial auxiliary task')
    ax.grid(True, alpha=0.3)
    ax.legend(loc='upper right', fontsize=8)
    fig.tight_layout()
    fig.savefig(out_file)
    return out_file
