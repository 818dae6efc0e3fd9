"""Record the clean / adversarial reconstruction losses and plot them.

The paper's Fig. 2 compares the loss of the clean pretext task with the loss of
the adversarial auxiliary task over training. :class:`LossCurveHook` records
``rec_clean``, ``rec_adv`` and ``loss`` from the outputs (log vars) of every
training iteration and writes ``<work_dir>/loss_curves.png`` and
``<work_dir>/loss_curves.json``.
"""
import json
import math
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

from mmengine.dist import master_only
from mmengine.hooks import Hook
from mmengine.hooks.hook import DATA_BATCH

from mmpretrain.registry import HOOKS
from ...utils.checks import is_int


def _to_float(v) -> Optional[float]:
    """A finite python float from a number / 1-element tensor, else None."""
    try:
        if hasattr(v, 'detach'):
            v = v.detach()
        if hasattr(v, 'numel') and v.numel() != 1:
            return None
        if hasattr(v, 'item'):
            v = v.item()
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


@HOOKS.register_module()
class LossCurveHook(Hook):
    """Plot the clean vs adversarial reconstruction loss (AEMIM Fig. 2).

    Every training iteration it records the values of ``keys`` found in the
    ``outputs`` of ``after_train_iter`` (the model's log vars; missing or
    non-finite values are skipped) against the 1-based iteration number. Every
    ``interval`` iterations and after training it writes, on rank 0:

    * ``<work_dir>/<out_prefix>.json``:
      ``{"keys": [...], "records": {key: {"iter": [...], "value": [...]}}}``
    * ``<work_dir>/<out_prefix>.png``: the ``plot_keys`` curves (raw and a
      moving average over ``smooth`` iterations) against iteration.

    The values are those of rank 0 (not averaged over ranks). On resume, the
    records are read back from the json (entries after the resumed iteration
    are dropped), so the curves continue.

    Args:
        keys: Log-var keys to record.
        plot_keys: Keys to plot (a subset of ``keys``).
        interval: Write the files every this many iterations (0: only at the
            end).
        smooth: Moving-average window of the plot, in iterations.
        out_prefix: File name (without extension) inside ``work_dir``.

    Raises:
        ValueError: On invalid arguments.
    """

    priority = 'LOW'

    def __init__(self,
                 keys: Sequence[str] = ('rec_clean', 'rec_adv', 'loss'),
                 plot_keys: Sequence[str] = ('rec_clean', 'rec_adv'),
                 interval: int = 50,
                 smooth: int = 10,
                 out_prefix: str = 'loss_curves') -> None:
        for name, value in (('keys', keys), ('plot_keys', plot_keys)):
            if isinstance(value, str) or not isinstance(value, (list, tuple)):
                raise ValueError(f'LossCurveHook: {name} must be a non-empty '
                                 f'list of str, got {value!r}.')
        keys, plot_keys = tuple(keys), tuple(plot_keys)
        if not keys or not all(isinstance(k, str) for k in keys):
            raise ValueError('LossCurveHook: keys must be a non-empty list of '
                             f'str, got {keys!r}.')
        extra = [k for k in plot_keys if k not in keys]
        if extra:
            raise ValueError(f'LossCurveHook: plot_keys {extra} are not in '
                             f'keys {list(keys)}.')
        for name, v in (('interval', interval), ('smooth', smooth)):
            if not is_int(v) or v < 0:
                raise ValueError(f'LossCurveHook: {name} must be an int >= 0, '
                                 f'got {v!r}.')
        if not isinstance(out_prefix, str) or not out_prefix or os.sep in \
                out_prefix:
            raise ValueError('LossCurveHook: out_prefix must be a file name, '
                             f'got {out_prefix!r}.')
        self.keys = keys
        self.plot_keys = plot_keys
        self.interval = interval
        self.smooth = smooth
        self.out_prefix = out_prefix
        self.records: Dict[str, Dict[str, List[float]]] = {
            k: dict(iter=[], value=[])
            for k in keys
        }

    # ------------------------------------------------------------------ paths
    def json_path(self, runner) -> str:
        """``<work_dir>/<out_prefix>.json``."""
        return osp.join(runner.work_dir, f'{self.out_prefix}.json')

    def png_path(self, runner) -> str:
        """``<work_dir>/<out_prefix>.png``."""
        return osp.join(runner.work_dir, f'{self.out_prefix}.png')

    # ------------------------------------------------------------------ hooks
    def before_train(self, runner) -> None:
        """On resume, read the records back from the json (if present)."""
        it = int(getattr(runner, 'iter', 0))
        path = self.json_path(runner)
        if it == 0 or not osp.isfile(path):
            return
        with open(path) as f:
            saved = json.load(f).get('records', {})
        for k in self.keys:
            rec = saved.get(k)
            if not rec:
                continue
            pairs = [(int(i), float(v))
                     for i, v in zip(rec.get('iter', []), rec.get('value', []))
                     if int(i) <= it]
            self.records[k] = dict(
                iter=[p[0] for p in pairs], value=[p[1] for p in pairs])

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        """Record this iteration's values; write the files when due."""
        step = runner.iter + 1
        for k in self.keys:
            v = _to_float(outputs.get(k)) if isinstance(outputs,
                                                        dict) else None
            if v is not None:
                self.records[k]['iter'].append(step)
                self.records[k]['value'].append(v)
        if self.interval > 0 and self.every_n_train_iters(
                runner, self.interval):
            self.write(runner)

    def after_train(self, runner) -> None:
        """Write the files once more at the end."""
        self.write(runner)

    @master_only
    def write(self, runner) -> None:
        """Write ``<out_prefix>.json`` and ``<out_prefix>.png`` (rank 0)."""
        from aemim_mm.visualization import plot_loss_curves
        os.makedirs(runner.work_dir, exist_ok=True)
        tmp = self.json_path(runner) + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(dict(keys=list(self.keys), records=self.records), f)
        os.replace(tmp, self.json_path(runner))
        plot_loss_curves(
            self.records,
            self.png_path(runner),
            keys=self.plot_keys,
            smooth=self.smooth)
