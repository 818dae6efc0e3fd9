"""Visual outputs: titled image grids and loss-curve plots."""
from .grid import make_image_grid, to_uint8_images
from .loss_plot import moving_average, plot_loss_curves

__all__ = [
    'make_image_grid', 'to_uint8_images', 'moving_average', 'plot_loss_curves'
]
