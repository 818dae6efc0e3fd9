"""Figures of the robustness evaluation (matplotlib, Agg backend)."""
from typing import Dict, Mapping, Sequence

import numpy as np


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def plot_corruption_heatmap(top1: Mapping[str, Mapping[int, float]],
                            path: str, title: str = 'top-1 accuracy (%)'
                            ) -> None:
    """Heat map of accuracy, corruptions (rows) x severities (columns).

    Args:
        top1: ``top1[corruption][severity]`` in %.
        path: The PNG file to write.
        title: Figure title.
    """
    plt = _pyplot()
    corruptions = list(top1)
    severities = sorted({int(s) for by_s in top1.values() for s in by_s})
    grid = np.array([[top1[c].get(s, np.nan) for s in severities]
                     for c in corruptions], dtype=float)
    fig, ax = plt.subplots(figsize=(1.2 * len(severities) + 3,
                                    0.35 * len(corruptions) + 1.5))
    image = ax.imshow(grid, cmap='viridis', vmin=0, vmax=100, aspect='auto')
    ax.set_xticks(range(len(severities)), [str(s) for s in severities])
    ax.set_yticks(range(len(corruptions)), corruptions)
    ax.set_xlabel('severity')
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            ax.text(j, i, f'{grid[i, j]:.1f}', ha='center', va='center',
                    color='white' if grid[i, j] < 60 else 'black', fontsize=7)
    fig.colorbar(image, ax=ax)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_accuracy_vs_eps(curves: Dict[str, Dict[str, Mapping[float, float]]],
                         path: str, attacks: Sequence[str] = ('fgsm', 'pgd')
                         ) -> None:
    """Accuracy against eps, one panel per attack, one curve per model.

    Args:
        curves: ``curves[model_name][attack][eps_in_255_units] = accuracy``.
        path: The PNG file to write.
        attacks: The panels.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(attacks), figsize=(5 * len(attacks), 4),
                             squeeze=False)
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
    plt.close(fig)
