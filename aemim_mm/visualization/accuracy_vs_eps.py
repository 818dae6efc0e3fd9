"""Accuracy against the attack budget eps, one curve per model (matplotlib)."""
from typing import Dict, Mapping, Sequence


def plot_accuracy_vs_eps(curves: Dict[str, Dict[str, Mapping[float, float]]],
                         path: str, attacks: Sequence[str] = ('fgsm', 'pgd')
                         ) -> None:
    """Accuracy against eps, one panel per attack, one curve per model.

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
    for ax, attack in zip(axes[0], attacks):
        for name, by_attack in curves.items():
            points = sorted((float(e), a)
                            for e, a in by_attack.get(attack, {}).items())
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points],
                        marker='o', label=name)
        ax.set_xlabel('eps (/255)')
        ax.set_ylabel('top-1 accuracy (%)')
        ax.set_title(attack.upper())
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
