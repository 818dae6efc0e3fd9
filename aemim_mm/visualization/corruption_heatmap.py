"""Heat map of accuracy over corruptions and severities (matplotlib, Agg)."""
from typing import Mapping

import numpy as np


def plot_corruption_heatmap(top1: Mapping[str, Mapping[int, float]],
                            path: str, title: str = 'top-1 accuracy (%)'
                            ) -> None:
    """Heat map of accuracy, corruptions (rows) x severities (columns).

    Args:
        top1: ``top1[corruption][severity]`` in %.
        path: The PNG file to write.
        title: Figure title.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    corruptions = list(top1)
    severities = sorted({int(s) for by_s in top1.values() for s in by_s})
    grid = np.array([[top1[c].get(s, np.nan) for s in severities]
                     for c in corruptions], dtype=float)
    fig = Figure(figsize=(1.2 * len(severities) + 3,
                          0.35 * len(corruptions) + 1.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
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
