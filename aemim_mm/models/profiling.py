"""Named profiler ranges of an AEMIM training iteration.

:func:`~aemim_mm.models.wrapper.clean_first_train_step` (the wrapper's
``train_step``) labels its phases with :func:`torch.profiler.record_function`,
so any torch profile of AEMIM training (``torch.profiler``, mmengine's
``ProfilerHook``, a Chrome or TensorBoard trace) shows them by name:

==============================  ==============================================
range                           what runs in it
==============================  ==============================================
``aemim.clean_forward``         line 11 of Algorithm 1: the mask draw and
                                the clean pass
``aemim.clean_backward``        the backward of ``lambda * L_c``
``aemim.adversarial``           lines 4-10 and 12: the subset draw, the
                                attack, the adversarial forward pass
``aemim.attack``                (inside ``aemim.adversarial``) lines 5-10,
                                the attack alone
``aemim.adversarial_update``    the backward of ``(1 - lambda) * L_a`` and
                                the optimizer step (torch's own
                                ``Optimizer.step#...`` range inside)
==============================  ==============================================

A label costs about a microsecond when no profiler runs.
:func:`phase_seconds` turns a CPU profile into seconds per phase
(``tools/benchmark.py --phases``).
"""
from typing import Dict

CLEAN_FORWARD = 'aemim.clean_forward'
CLEAN_BACKWARD = 'aemim.clean_backward'
ADVERSARIAL = 'aemim.adversarial'
ATTACK = 'aemim.attack'
ADVERSARIAL_UPDATE = 'aemim.adversarial_update'
#: Every range, in the order an iteration runs them.
RANGES = (CLEAN_FORWARD, CLEAN_BACKWARD, ADVERSARIAL, ATTACK,
          ADVERSARIAL_UPDATE)
#: Prefixes of the ranges torch's optimizers open themselves.
OPTIMIZER_PREFIXES = ('Optimizer.step#', 'Optimizer.zero_grad#')
#: The phases :func:`phase_seconds` returns, in iteration order; they do not
#: overlap.
PHASES = ('clean_forward', 'clean_backward', 'attack', 'adversarial_forward',
          'adversarial_backward', 'optimizer')


def phase_seconds(profile) -> Dict[str, float]:
    """Seconds spent in each phase of the iterations a CPU profile holds.

    The nested ranges are taken apart: ``adversarial_forward`` is
    ``aemim.adversarial`` without the attack inside it,
    ``adversarial_backward`` is ``aemim.adversarial_update`` without the
    optimizer's ranges, and ``optimizer`` is those ranges (step and
    zero_grad). On a GPU these are host times, not device times.

    Args:
        profile: A finished :class:`torch.profiler.profile` (CPU activity)
            around one or more AEMIM training iterations.

    Returns:
        ``{phase: seconds}`` for each of :data:`PHASES`, summed over the
        profiled iterations.

    Raises:
        ValueError: If the profile holds none of the AEMIM ranges (it was not
            around a training step of the wrapper).
    """
    totals = {name: 0.0 for name in RANGES}
    optimizer = 0.0
    for event in profile.key_averages():
        seconds = event.cpu_time_total / 1e6
        if event.key in totals:
            totals[event.key] += seconds
        elif event.key.startswith(OPTIMIZER_PREFIXES):
            optimizer += seconds
    if not any(totals.values()):
        raise ValueError(
            'the profile holds none of the AEMIM ranges '
            f'{list(RANGES)}: profile training steps of '
            'AdversarialMIMWrapper, with CPU activity recorded.')
    return dict(
        clean_forward=totals[CLEAN_FORWARD],
        clean_backward=totals[CLEAN_BACKWARD],
        attack=totals[ATTACK],
        adversarial_forward=totals[ADVERSARIAL] - totals[ATTACK],
        adversarial_backward=totals[ADVERSARIAL_UPDATE] - optimizer,
        optimizer=optimizer)
