"""Plot training loss curves to a PNG with matplotlib (Agg, no display)."""
from typing import Dict, Mapping, Optional, Sequence

import numpy as np

#: Readable legend labels for the wrapper's log keys.
DEFAULT_LABELS = {
    'rec_clean': 'clean pretext task (rec_clean)',
    'rec_adv': 'adversarial auxiliary task (rec_adv)',
    'loss': 'total optimised loss (loss)',
}


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
