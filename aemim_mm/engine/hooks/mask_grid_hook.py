"""Draw ADIOS's learned masks, as an image grid, during training.

:class:`MaskGridHook` is :class:`~.image_grid_hook.AttackImageGridHook`'s
schedule and drawing (every ``vis_interval`` iterations and after the last
one, rank 0, the batch's first samples, a forked RNG, the runner's
visualizer) with the columns that the model's ``visualize`` gives, in its
order: for :class:`~aemim_mm.models.ADIOS`, the view, each mask over the
view, and each masked view.
"""
from typing import Any, Dict

import torch
from mmpretrain.registry import HOOKS

from .image_grid_hook import AttackImageGridHook


@HOOKS.register_module()
class MaskGridHook(AttackImageGridHook):
    """Write a grid of a masking model's ``visualize`` result.

    Args:
        vis_interval: Draw a grid every this many iterations; 0 disables the
            periodic grids.
        vis_at_end: Also draw a grid after the last training iteration.
        vis_num_samples: Rows of the grid (at most the batch size).
        grid_name: Image name passed to the visualizer (the LocalVisBackend
            saves ``<log_dir>/vis_data/vis_image/<grid_name>_<iter>.png``).
        min_cell_size: Small images are enlarged (nearest neighbour) to at
            least this many pixels per cell side.

    Raises:
        ValueError: On an invalid argument, naming the hook.
    """

    def __init__(self,
                 vis_interval: int = 1000,
                 vis_at_end: bool = True,
                 vis_num_samples: int = 4,
                 grid_name: str = 'adios_masks',
                 min_cell_size: int = 96) -> None:
        super().__init__(vis_interval=vis_interval, vis_at_end=vis_at_end,
                         vis_num_samples=vis_num_samples, grid_name=grid_name,
                         min_cell_size=min_cell_size)

    def columns(self, model: Any,
                vis: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Every image batch of ``vis``, in its order, titled by its key
        (``mask_1`` -> ``mask 1``).

        Raises:
            KeyError: If ``vis`` is empty.
        """
        if not vis:
            raise KeyError(f'{type(self).__name__}: model.visualize() gave '
                           'no images.')
        return {key.replace('_', ' '): images for key, images in vis.items()}
