"""Draw what the AEMIM attack does, as an image grid, during training.

:class:`AttackImageGridHook` runs the model's ``visualize`` on the first
samples of the current batch every ``vis_interval`` iterations (and after the
last one) and writes the grid (rows: samples; columns: clean, adversarial,
amplified perturbation, reconstruction) through the runner's visualizer.
:class:`~aemim_mm.engine.hooks.FeatureDistancePGDHook` is this hook plus the
attack's schedules; this class is not registered on its own.
"""
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.hooks.hook import DATA_BATCH
from mmengine.model import is_model_wrapper

from ...utils.checks import is_int
from ...visualization import make_image_grid

#: The keys of ``model.visualize(...)``'s result, in grid-column order.
VIS_KEYS = ('clean', 'adversarial', 'perturbation', 'reconstruction')


def _slice_batch(data_batch: dict, n: int, owner: str) -> dict:
    """The first ``n`` samples of a collated batch.

    ``inputs`` may be a tensor or a list of tensors (multi-view).

    Args:
        data_batch: The collated batch (a dict with ``inputs``).
        n: How many samples to keep.
        owner: The hook's class name, for the error message.

    Returns:
        dict: A shallow copy of the batch with its first ``n`` samples.

    Raises:
        TypeError: If the batch is not a dict with ``inputs``.
    """
    if not isinstance(data_batch, dict) or 'inputs' not in data_batch:
        raise TypeError(f'{owner}: expected a collated batch '
                        "dict with 'inputs' (use collate_fn="
                        "dict(type='default_collate')), got "
                        f'{type(data_batch).__name__}.')
    out = dict(data_batch)
    inputs = data_batch['inputs']
    if isinstance(inputs, (list, tuple)):
        if inputs and isinstance(inputs[0], torch.Tensor) and inputs[0].dim(
        ) == 4:
            out['inputs'] = [x[:n] for x in inputs]  # views of (B, C, H, W)
        else:
            out['inputs'] = list(inputs[:n])  # per-sample list
    else:
        out['inputs'] = inputs[:n]
    if data_batch.get('data_samples') is not None:
        out['data_samples'] = data_batch['data_samples'][:n]
    return out


class AttackImageGridHook(Hook):
    """Write a grid of clean / adversarial / perturbation / reconstruction.

    Every ``vis_interval`` iterations and after the last one, on rank 0, it
    runs the model's ``data_preprocessor`` and ``visualize`` on the first
    ``vis_num_samples`` samples of the current batch and writes a grid (rows:
    samples; columns: clean, adversarial, amplified perturbation,
    reconstruction) with ``runner.visualizer.add_image(grid_name, ...)`` (the
    LocalVisBackend saves
    ``<log_dir>/vis_data/vis_image/<grid_name>_<iter>.png``).
    The visualisation runs under a forked torch RNG, so it does not change the
    training's random stream. Works with the model inside a DDP wrapper.

    Args:
        vis_interval: Draw a grid every this many iterations; 0 disables the
            periodic grids.
        vis_at_end: Also draw a grid after the last training iteration.
        vis_num_samples: Rows of the grid (at most the batch size).
        grid_name: Image name passed to the visualizer.
        min_cell_size: Small images are enlarged (nearest neighbour) to at
            least this many pixels per cell side.

    Raises:
        ValueError: On an invalid argument; the message starts with the
            hook's class name.
    """

    priority = 'NORMAL'

    def __init__(self,
                 vis_interval: int = 100,
                 vis_at_end: bool = True,
                 vis_num_samples: int = 4,
                 grid_name: str = 'aemim_grid',
                 min_cell_size: int = 128) -> None:
        owner = type(self).__name__
        for name, v, lo in (('vis_interval', vis_interval, 0),
                            ('vis_num_samples', vis_num_samples, 1),
                            ('min_cell_size', min_cell_size, 1)):
            if not is_int(v) or v < lo:
                raise ValueError(f'{owner}: {name} must be an '
                                 f'int >= {lo}, got {v!r}.')
        if not isinstance(grid_name, str) or not grid_name:
            raise ValueError(f'{owner}: grid_name must be a '
                             f'non-empty str, got {grid_name!r}.')
        if not isinstance(vis_at_end, bool):
            raise ValueError(f'{owner}: vis_at_end must be a '
                             f'bool, got {vis_at_end!r}.')
        self.vis_interval = vis_interval
        self.vis_at_end = vis_at_end
        self.vis_num_samples = vis_num_samples
        self.grid_name = grid_name
        self.min_cell_size = min_cell_size

    @staticmethod
    def _unwrap(runner) -> Any:
        """The runner's model, outside its DDP wrapper if it has one."""
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        """Draw the grid every ``vis_interval`` iterations and at the end."""
        due = (self.vis_interval > 0
               and self.every_n_train_iters(runner, self.vis_interval)) or (
                   self.vis_at_end and self.is_last_train_iter(runner))
        if not due or data_batch is None:
            return
        if not is_main_process():
            return
        model = self._unwrap(runner)
        grid = self.make_grid(model, data_batch)
        runner.visualizer.add_image(self.grid_name, grid, step=runner.iter + 1)

    def make_grid(self, model: Any, data_batch: dict) -> np.ndarray:
        """Run ``model.visualize`` on the batch's first samples; grid them.

        Args:
            model: The unwrapped model, with ``data_preprocessor`` and
                ``visualize(inputs, data_samples)`` returning float RGB
                ``(B, 3, H, W)`` tensors in [0, 1] under the keys
                :data:`VIS_KEYS`.
            data_batch: The collated batch of the iteration (as the
                dataloader gives it, before the data preprocessor).

        Returns:
            np.ndarray: The grid, ``HWC`` uint8 RGB.

        Raises:
            AttributeError: If the model has no ``visualize``.
            KeyError: If its result lacks a key of :data:`VIS_KEYS`.
        """
        vis = self.visualize_batch(model, data_batch)
        return make_image_grid(self.columns(model, vis),
                               max_rows=self.vis_num_samples,
                               min_cell_size=self.min_cell_size)

    def visualize_batch(self, model: Any,
                        data_batch: dict) -> Dict[str, torch.Tensor]:
        """``model.visualize`` of the batch's first ``vis_num_samples``
        samples, under a forked torch RNG.

        Raises:
            AttributeError: If the model has no ``visualize``.
        """
        if not callable(getattr(model, 'visualize', None)):
            raise AttributeError(
                f'{type(self).__name__}: the model '
                f'{type(model).__name__} has no visualize(inputs, '
                'data_samples); set vis_interval=0 and vis_at_end=False '
                'to disable the grid.')
        batch = _slice_batch(data_batch, self.vis_num_samples,
                             type(self).__name__)
        devices: List[int] = []
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            devices = [torch.cuda.current_device()]
        # The attack inside `visualize` needs input gradients: no no_grad.
        with torch.random.fork_rng(devices=devices):
            data = model.data_preprocessor(batch, False)
            return model.visualize(data['inputs'], data.get('data_samples'))

    def columns(self, model: Any,
                vis: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """The grid's columns, title -> images: :data:`VIS_KEYS` in order.

        Raises:
            KeyError: If ``vis`` lacks a key of :data:`VIS_KEYS`.
        """
        missing = [k for k in VIS_KEYS if k not in vis]
        if missing:
            raise KeyError(f'{type(self).__name__}: model.visualize() result '
                           f'lacks {missing}; got keys {sorted(vis)}.')
        eps = getattr(getattr(model, 'attack', None), 'eps', None)
        titles = self.column_titles(eps)
        return {t: vis[k] for t, k in zip(titles, VIS_KEYS)}

    @staticmethod
    def column_titles(eps: Optional[float] = None) -> Sequence[str]:
        """Column titles of the grid, in :data:`VIS_KEYS` order."""
        adv = 'adversarial' if eps is None else f'adversarial eps={eps:g}'
        return ('clean', adv, 'perturbation (amplified)', 'reconstruction')
