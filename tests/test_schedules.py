"""Tests of the schedule language of the attack hook (``ParamSchedule``)."""
import pytest

from aemim_mm.engine.hooks.schedules import ParamSchedule


@pytest.mark.parametrize('it, expected', [(0, 0.0), (5, 1.0), (10, 2.0),
                                          (11, 2.0), (1000, 2.0)])
def test_linear_eps_warmup(it, expected):
    s = ParamSchedule('eps_schedule',
                      dict(type='linear', start=0, end=2, warmup_iters=10))
    assert s(it) == pytest.approx(expected)


@pytest.mark.parametrize('it, expected', [(0, 1.0), (10, 1.0), (15, 1.5),
                                          (20, 2.0), (30, 2.0)])
def test_linear_with_begin(it, expected):
    s = ParamSchedule(
        'eps_schedule',
        dict(type='linear', start=1, end=2, warmup_iters=10, begin=10))
    assert s(it) == pytest.approx(expected)


@pytest.mark.parametrize('it, expected', [(0, 1), (99, 1), (100, 2),
                                          (199, 2), (200, 3), (10**6, 3)])
def test_milestone_steps(it, expected):
    s = ParamSchedule(
        'steps_schedule',
        dict(type='milestones', milestones=[100, 200], values=[1, 2, 3]),
        min_value=0, integer=True)
    assert s(it) == expected and isinstance(s(it), int)


def test_linear_integer_rounds():
    s = ParamSchedule('steps_schedule',
                      dict(type='linear', start=1, end=3, warmup_iters=4),
                      integer=True)
    assert [s(i) for i in range(6)] == [1, 2, 2, 2, 3, 3]


def test_constant_number():
    assert ParamSchedule('adv_ratio_schedule', 0.25, max_value=1)(7) == 0.25
