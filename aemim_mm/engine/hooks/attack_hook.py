"""Schedule the AEMIM attack over training and draw what it does.

:class:`FeatureDistancePGDHook` sets, before every training iteration, the
attack's ``eps`` and ``steps`` and the wrapper's ``adv_ratio`` from small
schedules (e.g. an eps warm-up), logs the values in use, and every
``vis_interval`` iterations writes an image grid (clean / adversarial /
perturbation / reconstruction) through the runner's visualizer.

Schedule format (one per field: ``eps_schedule``, ``steps_schedule``,
``adv_ratio_schedule``). The iteration index is the 0-based index of the
iteration about to run (``runner.iter``):

* ``None`` -- leave the model's value alone (it is still logged).
* a number -- constant, e.g. ``eps_schedule=2``.
* ``dict(type='constant', value=v)`` -- the same.
* ``dict(type='linear', start=a, end=b, warmup_iters=n, begin=0)`` -- ``a`` up
  to iteration ``begin``, then linearly to ``b`` at ``begin + n``, then ``b``:
  the eps warm-up. ``n >= 1``.
* ``dict(type='milestones', milestones=[i1, i2, ...], values=[v0, v1, ...])``
  -- ``v0`` before ``i1``, ``v1`` from ``i1`` on, ...; one more value than
  milestones, milestones strictly increasing.

Value ranges: ``0 <= eps <= 255`` (0-255 pixel units, as the attack takes
it), ``steps`` an integer ``>= 0`` (0: random start only; a linear steps
schedule is rounded to the nearest integer), ``0 <= adv_ratio <= 1``. An
attack whose ``step_size`` is ``None`` uses ``eps / steps`` and so follows the
schedule; a fixed ``step_size`` is left as it is.
"""
from numbers import Real
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmpretrain.registry import HOOKS
from ...utils.checks import is_int, is_number

DATA_BATCH = Optional[Union[dict, tuple, list]]

#: The keys of ``model.visualize(...)``'s result, in grid-column order.
VIS_KEYS = ('clean', 'adversarial', 'perturbation', 'reconstruction')


class ParamSchedule:
    """A value as a function of the iteration index (see the module doc).

    Args:
        field: The hook argument this schedule comes from, for errors.
        spec: The schedule: a number or a dict (``constant`` / ``linear`` /
            ``milestones``).
        min_value: Smallest allowed value (inclusive).
        max_value: Largest allowed value (inclusive), or ``None``.
        integer: Whether values must be integers (``linear`` rounds).

    Raises:
        TypeError: If ``spec`` is neither a number nor a dict.
        ValueError: If the dict is malformed or a value is out of range; the
            message starts with ``field``.
    """

    TYPES = ('constant', 'linear', 'milestones')

    def __init__(self,
                 field: str,
                 spec: Union[Real, dict],
                 min_value: float = 0.0,
                 max_value: Optional[float] = None,
                 integer: bool = False) -> None:
        self.field = field
        self.min_value = min_value
        self.max_value = max_value
        self.integer = integer
        if is_number(spec):
            spec = dict(type='constant', value=spec)
        if not isinstance(spec, dict):
            raise TypeError(
                f'{field}: expected None, a number or a dict with type in '
                f'{self.TYPES}, got {type(spec).__name__} {spec!r}.')
        spec = dict(spec)
        kind = spec.pop('type', None)
        if kind not in self.TYPES:
            raise ValueError(f'{field}: type must be one of {self.TYPES}, got '
                             f'{kind!r}.')
        self.kind = kind
        allowed = dict(
            constant={'value'},
            linear={'start', 'end', 'warmup_iters', 'begin'},
            milestones={'milestones', 'values'})[kind]
        required = dict(
            constant={'value'},
            linear={'start', 'end', 'warmup_iters'},
            milestones={'milestones', 'values'})[kind]
        unknown = sorted(set(spec) - allowed)
        if unknown:
            raise ValueError(f'{field}: unknown key(s) {unknown} for type '
                             f'{kind!r}; allowed: {sorted(allowed)}.')
        missing = sorted(required - set(spec))
        if missing:
            raise ValueError(f'{field}: type {kind!r} needs key(s) {missing}.')

        if kind == 'constant':
            self.value = self._check_value('value', spec['value'])
        elif kind == 'linear':
            self.start = self._check_value('start', spec['start'])
            self.end = self._check_value('end', spec['end'])
            self.warmup_iters = self._check_iter('warmup_iters',
                                                 spec['warmup_iters'], 1)
            self.begin = self._check_iter('begin', spec.get('begin', 0), 0)
        else:
            ms, vs = spec['milestones'], spec['values']
            if not isinstance(ms, (list, tuple)) or not isinstance(
                    vs, (list, tuple)):
                raise ValueError(f'{field}: milestones and values must be '
                                 'lists.')
            if len(vs) != len(ms) + 1:
                raise ValueError(
                    f'{field}: needs one more value than milestones (the '
                    f'value before the first milestone), got {len(ms)} '
                    f'milestones and {len(vs)} values.')
            self.milestones = [
                self._check_iter(f'milestones[{i}]', m, 1)
                for i, m in enumerate(ms)
            ]
            if any(b <= a
                   for a, b in zip(self.milestones, self.milestones[1:])):
                raise ValueError(f'{field}: milestones must be strictly '
                                 f'increasing, got {list(ms)}.')
            self.values = [
                self._check_value(f'values[{i}]', v) for i, v in enumerate(vs)
            ]

    def _check_value(self, key: str, v: Any) -> float:
        if not is_number(v):
            raise ValueError(f'{self.field}: {key} must be a finite number, '
                             f'got {v!r}.')
        if self.integer and float(v) != int(v):
            raise ValueError(f'{self.field}: {key} must be an integer, got '
                             f'{v!r}.')
        if v < self.min_value or (self.max_value is not None
                                  and v > self.max_value):
            rng = (f'>= {self.min_value}' if self.max_value is None else
                   f'in [{self.min_value}, {self.max_value}]')
            raise ValueError(f'{self.field}: {key} must be {rng}, got {v!r}.')
        return float(v)

    def _check_iter(self, key: str, v: Any, min_value: int) -> int:
        if not is_int(v) or v < min_value:
            raise ValueError(f'{self.field}: {key} must be an int >= '
                             f'{min_value}, got {v!r}.')
        return int(v)

    def __call__(self, it: int) -> Union[float, int]:
        """Return the value at 0-based iteration ``it``."""
        if self.kind == 'constant':
            v = self.value
        elif self.kind == 'linear':
            frac = min(1.0, max(0.0, (it - self.begin) / self.warmup_iters))
            v = self.start + (self.end - self.start) * frac
        else:
            k = int(np.searchsorted(self.milestones, it, side='right'))
            v = self.values[k]
        return int(round(v)) if self.integer else float(v)

    def __repr__(self) -> str:
        return f'ParamSchedule({self.field}, {self.kind})'


def _slice_batch(data_batch: dict, n: int) -> dict:
    """The first ``n`` samples of a collated batch.

    ``inputs`` may be a tensor or a list of tensors (multi-view).
    """
    if not isinstance(data_batch, dict) or 'inputs' not in data_batch:
        raise TypeError('FeatureDistancePGDHook: expected a collated batch '
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


@HOOKS.register_module()
class FeatureDistancePGDHook(Hook):
    """Schedule ``eps`` / ``steps`` / ``adv_ratio`` and draw the attack.

    Works with :class:`aemim_mm.models.AdversarialMIMWrapper` (also inside a
    DDP wrapper): it sets ``model.attack.eps``, ``model.attack.steps`` and
    ``model.adv_ratio``. The schedule format is in the module docstring.

    Every iteration it logs the values in use as ``train/eps``,
    ``train/steps`` and ``train/adv_ratio`` (so the LoggerHook prints them;
    they are averaged over the logging window like every scalar).

    Every ``vis_interval`` iterations and after the last one, on rank 0, it
    runs the model's ``data_preprocessor`` and ``visualize`` on the first
    ``vis_num_samples`` samples of the current batch and writes a grid (rows:
    samples; columns: clean, adversarial, amplified perturbation,
    reconstruction) with ``runner.visualizer.add_image(grid_name, ...)`` (the
    LocalVisBackend saves
    ``<log_dir>/vis_data/vis_image/<grid_name>_<iter>.png``).
    The visualisation runs under a forked torch RNG, so it does not change the
    training's random stream.

    Args:
        eps_schedule: Schedule of ``attack.eps`` (0-255 units), or ``None``.
        steps_schedule: Schedule of ``attack.steps`` (int >= 0), or ``None``.
        adv_ratio_schedule: Schedule of ``adv_ratio`` in [0, 1], or ``None``.
        vis_interval: Draw a grid every this many iterations; 0 disables the
            periodic grids.
        vis_at_end: Also draw a grid after the last training iteration.
        vis_num_samples: Rows of the grid (at most the batch size).
        grid_name: Image name passed to the visualizer.
        min_cell_size: Small images are enlarged (nearest neighbour) to at
            least this many pixels per cell side.
        log_values: Whether to log ``train/eps`` etc.

    Raises:
        ValueError / TypeError: On an invalid schedule (the message names the
            field) or invalid vis arguments.
    """

    priority = 'NORMAL'

    def __init__(self,
                 eps_schedule: Union[None, Real, dict] = None,
                 steps_schedule: Union[None, Real, dict] = None,
                 adv_ratio_schedule: Union[None, Real, dict] = None,
                 vis_interval: int = 100,
                 vis_at_end: bool = True,
                 vis_num_samples: int = 4,
                 grid_name: str = 'aemim_grid',
                 min_cell_size: int = 128,
                 log_values: bool = True) -> None:
        self.eps_schedule = None if eps_schedule is None else ParamSchedule(
            'eps_schedule', eps_schedule, min_value=0.0, max_value=255.0)
        self.steps_schedule = None if steps_schedule is None else \
            ParamSchedule('steps_schedule', steps_schedule, min_value=0,
                          integer=True)
        self.adv_ratio_schedule = None if adv_ratio_schedule is None else \
            ParamSchedule('adv_ratio_schedule', adv_ratio_schedule,
                          min_value=0.0, max_value=1.0)
        for name, v, lo in (('vis_interval', vis_interval, 0),
                            ('vis_num_samples', vis_num_samples, 1),
                            ('min_cell_size', min_cell_size, 1)):
            if not is_int(v) or v < lo:
                raise ValueError(f'FeatureDistancePGDHook: {name} must be an '
                                 f'int >= {lo}, got {v!r}.')
        if not isinstance(grid_name, str) or not grid_name:
            raise ValueError('FeatureDistancePGDHook: grid_name must be a '
                             f'non-empty str, got {grid_name!r}.')
        for name, flag in (('vis_at_end', vis_at_end),
                           ('log_values', log_values)):
            if not isinstance(flag, bool):
                raise ValueError(f'FeatureDistancePGDHook: {name} must be a '
                                 f'bool, got {flag!r}.')
        self.vis_interval = vis_interval
        self.vis_at_end = vis_at_end
        self.vis_num_samples = vis_num_samples
        self.grid_name = grid_name
        self.min_cell_size = min_cell_size
        self.log_values = log_values

    # ------------------------------------------------------------------ model
    @staticmethod
    def _unwrap(runner) -> Any:
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    @staticmethod
    def _check_model(model: Any) -> None:
        missing = [
            a for a in ('attack', 'adv_ratio') if not hasattr(model, a)
        ]
        if not missing:
            missing = [
                f'attack.{a}' for a in ('eps', 'steps')
                if not hasattr(model.attack, a)
            ]
        if missing:
            raise AttributeError(
                'FeatureDistancePGDHook needs an AdversarialMIMWrapper-like '
                f'model (attributes attack.eps, attack.steps, adv_ratio); '
                f'{type(model).__name__} lacks {missing}.')

    def values_at(self, it: int) -> Dict[str, Union[float, int]]:
        """The scheduled values at 0-based iteration ``it``.

        Fields whose schedule is ``None`` are left out.
        """
        out = {}
        for key, sched in (('eps', self.eps_schedule),
                           ('steps', self.steps_schedule),
                           ('adv_ratio', self.adv_ratio_schedule)):
            if sched is not None:
                out[key] = sched(it)
        return out

    def apply(self, model: Any, it: int) -> Dict[str, Union[float, int]]:
        """Set the scheduled values at iteration ``it`` on ``model``.

        Args:
            model: The unwrapped model (``attack.eps``, ``attack.steps``,
                ``adv_ratio``).
            it: 0-based iteration index.

        Returns:
            dict: The values now in use (``eps``, ``steps``, ``adv_ratio``),
            scheduled or not.
        """
        self._check_model(model)
        vals = self.values_at(it)
        if 'eps' in vals:
            model.attack.eps = vals['eps']
        if 'steps' in vals:
            model.attack.steps = vals['steps']
        if 'adv_ratio' in vals:
            model.adv_ratio = vals['adv_ratio']
        return dict(
            eps=float(model.attack.eps),
            steps=int(model.attack.steps),
            adv_ratio=float(model.adv_ratio))

    # ------------------------------------------------------------------ hooks
    def before_train(self, runner) -> None:
        """Fail early if the model is not an AEMIM wrapper."""
        self._check_model(self._unwrap(runner))

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: DATA_BATCH = None) -> None:
        """Apply the schedules for ``runner.iter`` and log the values."""
        vals = self.apply(self._unwrap(runner), runner.iter)
        if self.log_values:
            for k, v in vals.items():
                runner.message_hub.update_scalar(f'train/{k}', v)

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
        from mmengine.dist import is_main_process
        if not is_main_process():
            return
        model = self._unwrap(runner)
        grid = self.make_grid(model, data_batch)
        runner.visualizer.add_image(self.grid_name, grid, step=runner.iter + 1)

    # ------------------------------------------------------------------- grid
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
        if not callable(getattr(model, 'visualize', None)):
            raise AttributeError(
                'FeatureDistancePGDHook: the model '
                f'{type(model).__name__} has no visualize(inputs, '
                'data_samples); set vis_interval=0 and vis_at_end=False '
                'to disable the grid.')
        from aemim_mm.visualization import make_image_grid
        batch = _slice_batch(data_batch, self.vis_num_samples)
        devices: List[int] = []
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            devices = [torch.cuda.current_device()]
        # The attack inside `visualize` needs input gradients: no no_grad.
        with torch.random.fork_rng(devices=devices):
            data = model.data_preprocessor(batch, False)
            vis = model.visualize(data['inputs'], data.get('data_samples'))
        missing = [k for k in VIS_KEYS if k not in vis]
        if missing:
            raise KeyError('FeatureDistancePGDHook: model.visualize() result '
                           f'lacks {missing}; got keys {sorted(vis)}.')
        eps = getattr(getattr(model, 'attack', None), 'eps', None)
        titles = self.column_titles(eps)
        return make_image_grid({t: vis[k]
                                for t, k in zip(titles, VIS_KEYS)},
                               max_rows=self.vis_num_samples,
                               min_cell_size=self.min_cell_size)

    @staticmethod
    def column_titles(eps: Optional[float] = None) -> Sequence[str]:
        """Column titles of the grid, in :data:`VIS_KEYS` order."""
        adv = 'adversarial' if eps is None else f'adversarial eps={eps:g}'
        return ('clean', adv, 'perturbation (amplified)', 'reconstruction')
