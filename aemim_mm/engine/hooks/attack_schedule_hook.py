"""Schedule the AEMIM attack over training.

:class:`FeatureDistancePGDHook` sets, before every training iteration, the
attack's ``eps`` and ``steps`` and the wrapper's ``adv_ratio`` from
schedules (:mod:`.schedules`, e.g. an eps warm-up), logs the values in use,
and draws the image grid of :class:`.AttackImageGridHook`.

Schedule of each field (``eps_schedule``, ``steps_schedule``,
``adv_ratio_schedule``): ``None`` leaves the model's value alone (it is still
logged); otherwise a :class:`.ParamSchedule` spec (a number or a
``constant`` / ``linear`` / ``milestones`` dict).

Value ranges: ``0 <= eps <= 255`` (0-255 pixel units, as the attack takes
it), ``steps`` an integer ``>= 0`` (0: random start only; a linear steps
schedule is rounded to the nearest integer), ``0 <= adv_ratio <= 1``. An
attack whose ``step_size`` is ``None`` uses ``eps / steps`` and so follows the
schedule; a fixed ``step_size`` is left as it is.
"""
from numbers import Real
from typing import Any, Dict, Union

from mmengine.hooks.hook import DATA_BATCH

from mmpretrain.registry import HOOKS
from .image_grid_hook import AttackImageGridHook
from .schedules import ParamSchedule


@HOOKS.register_module()
class FeatureDistancePGDHook(AttackImageGridHook):
    """Schedule ``eps`` / ``steps`` / ``adv_ratio`` and draw the attack.

    Works with :class:`aemim_mm.models.AdversarialMIMWrapper` (also inside a
    DDP wrapper): it sets ``model.attack.eps``, ``model.attack.steps`` and
    ``model.adv_ratio``. The schedule format is in the module docstring.

    Every iteration it logs the values in use as ``train/eps``,
    ``train/steps`` and ``train/adv_ratio`` (so the LoggerHook prints them;
    they are averaged over the logging window like every scalar). The image
    grid and its arguments are :class:`.AttackImageGridHook`'s.

    Args:
        eps_schedule: Schedule of ``attack.eps`` (0-255 units), or ``None``.
        steps_schedule: Schedule of ``attack.steps`` (int >= 0), or ``None``.
        adv_ratio_schedule: Schedule of ``adv_ratio`` in [0, 1], or ``None``.
        vis_interval: See :class:`.AttackImageGridHook` (0: no periodic
            grids).
        vis_at_end: See :class:`.AttackImageGridHook`.
        vis_num_samples: See :class:`.AttackImageGridHook`.
        grid_name: See :class:`.AttackImageGridHook`.
        min_cell_size: See :class:`.AttackImageGridHook`.
        log_values: Whether to log ``train/eps`` etc.

    Raises:
        ValueError / TypeError: On an invalid schedule (the message names the
            field) or invalid vis arguments.
    """

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
        super().__init__(
            vis_interval=vis_interval,
            vis_at_end=vis_at_end,
            vis_num_samples=vis_num_samples,
            grid_name=grid_name,
            min_cell_size=min_cell_size)
        if not isinstance(log_values, bool):
            raise ValueError('FeatureDistancePGDHook: log_values must be a '
                             f'bool, got {log_values!r}.')
        self.log_values = log_values

    @staticmethod
    def _check_model(model: Any) -> None:
        """Raise ``AttributeError`` unless ``model`` has what is scheduled."""
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
