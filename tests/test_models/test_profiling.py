"""Profiler ranges of the training step and their split into phases."""
import time

import pytest
import torch
from mmengine.optim import OptimWrapper
from torch.profiler import ProfilerActivity, profile, record_function

from aemim_mm.models import phase_seconds
from aemim_mm.models.profiling import (ADVERSARIAL, ADVERSARIAL_UPDATE,
                                       ATTACK, CLEAN_FORWARD, PHASES,
                                       RANGES)
from tiny_models import build_wrapper


def _profiled_train_step(**kwargs):
    wrapper = build_wrapper(**kwargs)
    optim = OptimWrapper(torch.optim.AdamW(wrapper.parameters(), lr=1e-4))
    data = dict(inputs=torch.randint(0, 256, (4, 3, 32, 32),
                                     dtype=torch.uint8),
                data_samples=[None] * 4)
    wrapper.train_step(dict(data), optim)           # warm-up: optim state
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        wrapper.train_step(dict(data), optim)
        wall = time.perf_counter() - start
    return prof, wall


def _intervals(prof):
    """name -> list of (start, end) in microseconds, for the AEMIM ranges."""
    out = {}
    for event in prof.events():
        if event.name in RANGES:
            out.setdefault(event.name, []).append(
                (event.time_range.start, event.time_range.end))
    return out


def test_train_step_opens_each_range_once_in_algorithm_order():
    prof, _ = _profiled_train_step(adv_ratio=0.5)
    spans = _intervals(prof)
    assert {name: len(v) for name, v in spans.items()} == {
        name: 1 for name in RANGES}
    (cf, ), (cb, ), (adv, ), (att, ), (upd, ) = (spans[n] for n in RANGES)
    assert cf[1] <= cb[0] and cb[1] <= adv[0] and adv[1] <= upd[0]
    assert adv[0] <= att[0] and att[1] <= adv[1]        # attack inside


@pytest.mark.parametrize('adv_ratio', [0.5, 0.0])
def test_phase_seconds_of_a_train_step(adv_ratio):
    prof, wall = _profiled_train_step(adv_ratio=adv_ratio)
    phases = phase_seconds(prof)
    assert list(phases) == list(PHASES)
    assert all(v >= 0 for v in phases.values()), phases
    assert phases['clean_forward'] > 0 and phases['clean_backward'] > 0
    assert phases['optimizer'] > 0 and phases['adversarial_backward'] > 0
    # no adversarial sample: no attack, and no range for it
    assert (phases['attack'] > 0) == (adv_ratio > 0)
    # the phases do not overlap: together at most the step's wall time
    assert sum(phases.values()) <= wall


def test_nested_ranges_are_subtracted():
    """The attack is not counted in the adversarial forward, nor the
    optimizer's ranges in the adversarial backward."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        with record_function(ADVERSARIAL):
            time.sleep(0.02)
            with record_function(ATTACK):
                time.sleep(0.2)
        with record_function(ADVERSARIAL_UPDATE):
            time.sleep(0.02)
            with record_function('Optimizer.step#SGD.step'):
                time.sleep(0.2)
            with record_function('Optimizer.zero_grad#SGD.zero_grad'):
                time.sleep(0.1)
    phases = phase_seconds(prof)
    assert phases['attack'] >= 0.2
    assert 0.02 <= phases['adversarial_forward'] < 0.15
    assert phases['optimizer'] >= 0.3
    assert 0.02 <= phases['adversarial_backward'] < 0.15
    assert phases['clean_forward'] == phases['clean_backward'] == 0


def test_profile_without_aemim_ranges_is_refused():
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        torch.ones(3).sum()
    with pytest.raises(ValueError, match=CLEAN_FORWARD):
        phase_seconds(prof)


class _Images(torch.utils.data.Dataset):
    """Four random uint8 images, as a pipeline's PackInputs yields them."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> dict:
        from mmpretrain.structures import DataSample
        gen = torch.Generator().manual_seed(i)
        return dict(inputs=torch.randint(0, 256, (3, 32, 32), generator=gen,
                                         dtype=torch.uint8),
                    data_samples=DataSample())


def test_mmengine_profiler_hook_shows_the_ranges(tmp_path):
    """What the docs promise: mmengine's ProfilerHook, configured as any
    user would, records the AEMIM ranges by name in its Chrome trace."""
    import json

    from mmengine.runner import Runner
    trace = tmp_path / 'trace.json'
    runner = Runner(
        model=build_wrapper(adv_ratio=0.5),
        work_dir=str(tmp_path / 'work'),
        train_dataloader=dict(dataset=_Images(), batch_size=2,
                              sampler=dict(type='DefaultSampler',
                                           shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-4)),
        train_cfg=dict(by_epoch=False, max_iters=2),
        custom_hooks=[dict(type='ProfilerHook', by_epoch=False,
                           profile_times=2, json_trace_path=str(trace))],
        default_scope='mmpretrain')
    runner.train()
    names = {e.get('name') for e in json.loads(trace.read_text())[
        'traceEvents']}
    assert set(RANGES) <= names, sorted(n for n in names
                                        if str(n).startswith('aemim'))
