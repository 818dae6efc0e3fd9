"""Seed derivation: one seed per training iteration, the same on every rank.

:class:`~aemim_mm.engine.SampleSeedHook` (or ``ReproducibleRandomnessHook``
with ``sample_seed=True``) sets the model's ``sample_seed`` to
:func:`derive_sample_seed` before every training iteration;
:mod:`aemim_mm.models.randomness` derives each sample's draws from it.
"""
import numpy as np

__all__ = ['derive_sample_seed']


def derive_sample_seed(base_seed: int, iteration: int) -> int:
    """The seed of one training iteration, the same on every rank.

    Args:
        base_seed: The run's seed (``runner.seed``).
        iteration: The 0-based training iteration.

    Returns:
        An int in ``[0, 2**63)``, a hash of ``(base_seed, iteration)``.
    """
    words = np.random.SeedSequence(
        [int(base_seed) & 0xFFFFFFFFFFFFFFFF,
         int(iteration)]).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])
