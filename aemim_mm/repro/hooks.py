"""Per-epoch wall time of a training run (for the equal-wall-time comparison).

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


@HOOKS.register_module()
class EpochTimeHook(Hook):
    """Record the wall time of every training epoch.

    Args:
        file_name: JSON file inside the runner's ``work_dir``.
    """

    priority = 'HIGHEST'

    def __init__(self, file_name: str = 'epoch_times.json') -> None:
        if not isinstance(file_name, str) or not file_name or \
                os.sep in file_name:
            raise ValueError(f'EpochTimeHook: file_name must be a file name, '
                             f'got {file_name!r}')
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
