"""Schedules of a training value over iterations (``eps``, ``steps``, ...).

:class:`ParamSchedule` turns a schedule spec into a function of the 0-based
index of the iteration about to run (``runner.iter``). Specs:

* a number -- constant, e.g. ``eps_schedule=2``.
* ``dict(type='constant', value=v)`` -- the same.
* ``dict(type='linear', start=a, end=b, warmup_iters=n, begin=0)`` -- ``a`` up
  to iteration ``begin``, then linearly to ``b`` at ``begin + n``, then ``b``
  (a warm-up). ``n >= 1``.
* ``dict(type='milestones', milestones=[i1, i2, ...], values=[v0, v1, ...])``
  -- ``v0`` before ``i1``, ``v1`` from ``i1`` on, ...; one more value than
  milestones, milestones strictly increasing.

Each schedule checks its values against a range and, for integer values
(``integer=True``), rounds a linear schedule to the nearest integer.
"""
from numbers import Real
from typing import Any, Optional, Union

import numpy as np

from ...utils.checks import is_int, is_number


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
