"""Statistics of the mini-reproduction: mean / std over seeds.

:func:`stat` is the mean and sample standard deviation of one quantity;
:func:`aggregate` applies it to every metric and wall time of every encoder;
:func:`encoder_label` names an encoder (also in the tables of
:mod:`aemim_repro.report`).
"""
import math
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .preset import METHOD_LABELS

__all__ = ['stat', 'aggregate', 'encoder_label']


def stat(values: Sequence[float]) -> Dict[str, Any]:
    """Mean and sample standard deviation (ddof 1; 0.0 for one value).

    Raises:
        ValueError: On no values or a non-finite one.
    """
    values = [float(v) for v in values]
    if not values or not all(math.isfinite(v) for v in values):
        raise ValueError(f'need finite values, got {values!r}')
    arr = np.asarray(values)
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return dict(mean=float(arr.mean()), std=std, n=len(values),
                values=values)


def encoder_label(enc: str, epochs: Optional[float] = None) -> str:
    """``'AEMIM'``, or ``'MAE, 5 ep. (= AEMIM time)'`` for equal time."""
    if enc.startswith('mae_eqtime_'):
        target = METHOD_LABELS[enc[len('mae_eqtime_'):]]
        ep = f', {epochs:g} ep.' if epochs is not None else ''
        return f'MAE{ep} (wall time of {target})'
    return METHOD_LABELS[enc]


def aggregate(results: Dict[str, Dict[int, Dict[str, Any]]],
              robustness_on: Sequence[str]) -> Dict[str, Any]:
    """Mean / std over seeds of every metric and wall time, per encoder."""
    out = {}
    for enc, by_seed in results.items():
        runs = [by_seed[s] for s in sorted(by_seed)]
        metrics: Dict[str, List[float]] = {}
        for run in runs:
            for kind in ('finetune', 'linprobe'):
                ev = run[kind]['eval']
                metrics.setdefault(f'{kind}/clean_top1', []).append(
                    ev['clean_top1'])
                if kind in robustness_on:
                    metrics.setdefault(f'{kind}/corruption_mean', []).append(
                        ev['corruption_mean'])
                    metrics.setdefault(f'{kind}/adv_clean', []).append(
                        ev['adv_clean'])
                    for attack in ('fgsm', 'pgd'):
                        for eps, acc in ev[attack].items():
                            metrics.setdefault(f'{kind}/{attack}/{eps}',
                                               []).append(acc)
        walls: Dict[str, List[float]] = {}
        for run in runs:
            stage_s = dict(
                pretrain=run['pretrain']['wall_s'],
                export=run['export']['wall_s'],
                finetune=run['finetune']['train']['wall_s'],
                linprobe=run['linprobe']['train']['wall_s'],
                eval_finetune=run['finetune']['eval']['wall_s'],
                eval_linprobe=run['linprobe']['eval']['wall_s'])
            stage_s['total'] = sum(stage_s.values())
            stage_s['pretrain_epochs_only'] = sum(
                run['pretrain']['epoch_seconds'])
            for k, v in stage_s.items():
                walls.setdefault(k, []).append(v)
        epochs = [run['pretrain']['epochs'] for run in runs]
        out[enc] = dict(
            label=encoder_label(enc),
            pretrain_epochs=stat(epochs),
            metrics={k: stat(v) for k, v in metrics.items()},
            wall_s={k: stat(v) for k, v in walls.items()})
    return out
