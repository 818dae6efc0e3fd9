"""Former import path of the robustness figures.

They are in :mod:`aemim_mm.visualization` (:mod:`.corruption_heatmap`,
:mod:`.accuracy_vs_eps`); this module re-exports them.
"""
from ..visualization.accuracy_vs_eps import plot_accuracy_vs_eps
from ..visualization.corruption_heatmap import plot_corruption_heatmap

__all__ = ['plot_accuracy_vs_eps', 'plot_corruption_heatmap']
