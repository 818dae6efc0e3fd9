"""Visual outputs: titled image grids, loss curves and robustness figures."""
from .accuracy_vs_eps import plot_accuracy_vs_eps
from .corruption_heatmap import plot_corruption_heatmap
from .grid import make_image_grid, to_uint8_images
from .position_map import draw_position_map, position_shift
from .robustness_plots import plot_certified_accuracy, plot_robust_accuracy
from .loss_plot import (moving_average, plot_loss_curves,
                        plot_loss_curves_by_method)

__all__ = [
    'make_image_grid', 'to_uint8_images', 'moving_average', 'plot_loss_curves',
    'plot_loss_curves_by_method', 'plot_accuracy_vs_eps',
    'plot_corruption_heatmap', 'plot_robust_accuracy',
    'plot_certified_accuracy', 'draw_position_map', 'position_shift'
]
