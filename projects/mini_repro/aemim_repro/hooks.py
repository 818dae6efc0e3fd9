"""Wall-clock hooks of the experiment pipelines: per-epoch time
(:class:`EpochTimeHook`) and a training time budget (:class:`TimeBudgetHook`).

:class:`EpochTimeHook` writes ``<work_dir>/epoch_times.json``:
``{"epoch": [1, 2, ...], "seconds": [...], "cumulative": [...]}``, the wall
time of each training epoch (from the start of the epoch to its end, before
the checkpoint of that epoch is written: the hook runs first). On resume the
entries up to the resumed epoch are read back.
"""
import json
import os
import os.path as osp
import time
from typing import Dict, List

from mmengine.dist import master_only
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from aemim_mm.utils.checks import is_number


def _check_file_name(owner: str, field: str, value: str) -> None:
    """Raise ``ValueError`` unless ``value`` is a plain file name (a file in
    the work dir, not a path)."""
    if not isinstance(value, str) or not value or os.sep in value:
        raise ValueError(f'{owner}: {field} must be a file name, '
                         f'got {value!r}')


@HOOKS.register_module()
class EpochTimeHook(Hook):
    """Record the wall time of every training epoch.

    Args:
        file_name: JSON file inside the runner's ``work_dir``.
    """

    priority = 'HIGHEST'

    def __init__(self, file_name: str = 'epoch_times.json') -> None:
        _check_file_name('EpochTimeHook', 'file_name', file_name)
        self.file_name = file_name
        self.records: Dict[str, List[float]] = dict(epoch=[], seconds=[])
        self._start = None

    def path(self, runner) -> str:
        """``<work_dir>/<file_name>``."""
        return osp.join(runner.work_dir, self.file_name)

    def before_train(self, runner) -> None:
        """On resume, keep the recorded epochs up to the resumed one."""
        if runner.epoch == 0 or not osp.isfile(self.path(runner)):
            return
        with open(self.path(runner)) as f:
            saved = json.load(f)
        keep = [(int(e), float(s))
                for e, s in zip(saved['epoch'], saved['seconds'])
                if int(e) <= runner.epoch]
        self.records = dict(epoch=[e for e, _ in keep],
                            seconds=[s for _, s in keep])

    def before_train_epoch(self, runner) -> None:
        """Start the clock."""
        self._start = time.perf_counter()

    def after_train_epoch(self, runner) -> None:
        """Stop the clock and write the file."""
        self.records['epoch'].append(runner.epoch + 1)
        self.records['seconds'].append(time.perf_counter() - self._start)
        self._write(runner)

    @master_only
    def _write(self, runner) -> None:
        cumulative, total = [], 0.0
        for s in self.records['seconds']:
            total += s
            cumulative.append(total)
        os.makedirs(runner.work_dir, exist_ok=True)
        tmp = self.path(runner) + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(dict(self.records, cumulative=cumulative), f)
        os.replace(tmp, self.path(runner))


@HOOKS.register_module()
class TimeBudgetHook(Hook):
    """End training at an epoch boundary when the next epoch would overrun a
    wall-clock budget, and save the weights the run ends with.

    The budget counts from ``before_train``. After every epoch, if the time
    spent plus the mean epoch time so far exceeds ``seconds``, the loop is
    told to stop (``train_loop.stop_training``). At the last epoch, planned
    or cut, the model (no optimizer or scheduler state) is saved as
    ``<work_dir>/<filename>``, and ``<work_dir>/time_budget.json`` records
    ``{"seconds", "elapsed", "epochs", "max_epochs", "cut"}``.

    Args:
        seconds: The wall-clock budget of the training loop.
        filename: Checkpoint file written when training ends.
    """

    priority = 'LOW'

    def __init__(self, seconds: float, filename: str = 'final.pth') -> None:
        if not is_number(seconds) or not seconds > 0:
            raise ValueError(f'TimeBudgetHook: seconds must be a number > 0, '
                             f'got {seconds!r}')
        _check_file_name('TimeBudgetHook', 'filename', filename)
        self.seconds, self.filename = float(seconds), filename
        self._start = 0.0

    def before_train(self, runner) -> None:
        """Start the clock."""
        self._start = time.perf_counter()

    def after_train_epoch(self, runner) -> None:
        """Stop when the next epoch would not fit; save at the end."""
        done = runner.epoch + 1   # the loop counts the epoch after the hooks
        elapsed = time.perf_counter() - self._start
        cut = (done < runner.max_epochs
               and elapsed + elapsed / done > self.seconds)
        if cut:
            runner.train_loop.stop_training = True
        if cut or done >= runner.max_epochs:
            runner.save_checkpoint(runner.work_dir, self.filename,
                                   save_optimizer=False,
                                   save_param_scheduler=False)
            self._write(runner, dict(seconds=self.seconds, elapsed=elapsed,
                                     epochs=done,
                                     max_epochs=runner.max_epochs, cut=cut))

    @master_only
    def _write(self, runner, record: dict) -> None:
        with open(osp.join(runner.work_dir, 'time_budget.json'), 'w') as f:
            json.dump(record, f)
