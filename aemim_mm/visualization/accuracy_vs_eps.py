"""Accuracy against the attack budget eps, one curve per model (matplotlib)."""
from typing import Dict, Mapping, Optional, Sequence


def draw_accuracy_vs_eps(axes: Sequence,
                         curves: Dict[str, Dict[str, Mapping[float, float]]],
                         attacks: Sequence[str] = ('fgsm', 'pgd'),
                         colors: Optional[Mapping[str, str]] = None) -> None:
    """Accuracy against eps on ``axes``, one per attack, one curve per model.

    Args:
        axes: One matplotlib axes per attack.
        curves: ``curves[model_name][attack][eps_in_255_units] = accuracy``.
        attacks: The attack of each axes.
        colors: A colour per model name (default: matplotlib's cycle).
    """
    for ax, attack in zip(axes, attacks):
        for name, by_attack in curves.items():
            points = sorted((float(e), a)
                            for e, a in by_attack.get(attack, {}).items())
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points],
                        marker='o', label=name,
                        color=(colors or {}).get(name))
        ax.set_xlabel('eps (/255)')
        ax.set_ylabel('top-1 accuracy (%)')
        ax.set_title(attack.upper())
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)


def plot_accuracy_vs_eps(curves: Dict[str, Dict[str, Mapping[float, float]]],
                         path: str, attacks: Sequence[str] = ('fgsm', 'pgd')
                         ) -> None:
    """Accuracy against eps, one panel per attack, one curve per model
    (:func:`draw_accuracy_vs_eps`), written as a PNG.

    Args:
        curves: ``curves[model_name][attack][eps_in_255_units] = accuracy``.
        path: The PNG file to write.
        attacks: The panels.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5 * len(attacks), 4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(attacks), squeeze=False)
    draw_accuracy_vs_eps(axes[0], curves, attacks)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
