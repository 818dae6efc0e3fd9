"""Where a training iteration's time goes: profiled iterations split into
the phases that :mod:`aemim_mm.models.profiling` names."""
import statistics
import time
from typing import Callable, Dict, List

import torch
from torch.profiler import ProfilerActivity, profile

from ..models.profiling import phase_seconds
from .timing import Runner

def profiled_rounds(runners: List[Runner], iters: int,
                    measure: Callable[[Runner, object, float], dict]
                    ) -> Dict[str, List[dict]]:
    """``iters`` interleaved rounds of one CPU-profiled iteration per
    runner, with a progress line and ETA per round.

    Args:
        runners: The runners, stepped in this order in every round.
        iters: Rounds.
        measure: ``(runner, finished profile, iteration wall time)`` ->
            one row of measurements.

    Returns:
        Per runner name, its rows in round order.
    """
    runs: Dict[str, List[dict]] = {r.name: [] for r in runners}
    start = time.perf_counter()
    for i in range(iters):
        for runner in runners:
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                wall = runner.step()
            runs[runner.name].append(measure(runner, prof, wall))
        done = time.perf_counter() - start
        print(f'  profiled round {i + 1}/{iters} done, eta '
              f'{done / (i + 1) * (iters - i - 1):.0f} s', flush=True)
    return runs


def profile_phases(runners: List[Runner],
                   iters: int) -> Dict[str, Dict[str, float]]:
    """Seconds per phase of each runner's iteration (CPU), medians over
    ``iters`` profiled iterations, taken in interleaved rounds like the
    timed repetitions (a drift of the machine's speed then shifts every
    variant alike, not the last ones).

    Returns:
        Per runner: the :data:`~aemim_mm.models.profiling.PHASES`, ``rest``
        (the iteration outside them: data preprocessing, logging),
        ``iteration`` (the profiled iteration's wall time), ``subset`` (the
        adversarial samples per iteration) and ``adv_per_image_over_clean``:
        the adversarial pass's forward and backward time per image over the
        clean pass's (``None`` without a subset).
    """
    def measure(runner: Runner, prof, wall: float) -> dict:
        phases = phase_seconds(prof)
        return dict(phases, rest=wall - sum(phases.values()), iteration=wall)

    runs = profiled_rounds(runners, iters, measure)
    result = {}
    for runner in runners:
        rows = runs[runner.name]
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        batch = runner.preset['batch']
        subset = runner.model.select_adversarial(
            batch, torch.device('cpu')).numel()
        clean = (med['clean_forward'] + med['clean_backward']) / batch
        adv = med['adversarial_forward'] + med['adversarial_backward']
        med['subset'] = subset
        med['adv_per_image_over_clean'] = (adv / subset / clean
                                           if subset and clean else None)
        result[runner.name] = med
    return result
