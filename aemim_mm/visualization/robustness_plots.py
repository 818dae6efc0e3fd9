"""The literature's robustness figures: robust accuracy per model (clean,
PGD-20, AutoAttack's stages) and certified accuracy against the L2 radius
(matplotlib, written as PNG)."""
from typing import Dict, Mapping, Sequence

#: The bars of :func:`plot_robust_accuracy`, in order, with their labels.
ROBUST_BARS = (('clean_acc', 'clean'), ('pgd20_acc', 'PGD-20'),
               ('apgd-ce', 'APGD-CE'), ('apgd-t', 'APGD-T'),
               ('square', 'AutoAttack (+ Square)'))


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def plot_robust_accuracy(results: Mapping[str, dict], path: str) -> None:
    """Grouped bars, one group per model: clean accuracy, PGD-20's and the
    robust accuracy after each AutoAttack stage (what is absent from a
    result is left out).

    Args:
        results: Per model name, :func:`~aemim_mm.evaluation.
            robust_accuracy.evaluate_robust_accuracy`'s result.
        path: The PNG file to write.
    """
    import numpy as np
    fig = _figure(max(5.0, 1.6 * len(results) + 2), 4)
    ax = fig.subplots()
    width = 0.8 / len(ROBUST_BARS)
    for k, (key, label) in enumerate(ROBUST_BARS):
        values = [r.get(key, r.get('autoattack_stages', {}).get(key))
                  for r in results.values()]
        if all(v is None for v in values):
            continue
        xs = np.arange(len(results)) + (k - len(ROBUST_BARS) / 2 + 0.5) * width
        ax.bar(xs, [np.nan if v is None else v for v in values], width,
               label=label)
    ax.set_xticks(range(len(results)))
    ax.set_xticklabels(list(results), rotation=20, ha='right', fontsize=8)
    first = next(iter(results.values()), {})
    ax.set_ylabel('accuracy (%)')
    ax.set_title(f'L-inf eps {first.get("eps", "?")}, '
                 f'{first.get("n_examples", "?")} images')
    ax.set_ylim(0, 100)
    ax.grid(axis='y', alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_certified_accuracy(curves: Mapping[str, Dict[str, Sequence[float]]],
                            path: str) -> None:
    """Certified accuracy against the L2 radius, one curve per model.

    Args:
        curves: Per model name, ``{'radius': [...], 'accuracy': [...]}``
            (radii in [0, 1] pixel units, accuracy in %).
        path: The PNG file to write.
    """
    fig = _figure(5.5, 4)
    ax = fig.subplots()
    for name, curve in curves.items():
        ax.plot(curve['radius'], curve['accuracy'], label=name)
    ax.set_xlabel('L2 radius ([0, 1] pixel units)')
    ax.set_ylabel('certified accuracy (%)')
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
