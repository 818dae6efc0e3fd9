"""Engine: mmengine hooks for the attack schedule and the visual outputs."""
from .hooks import FeatureDistancePGDHook, LossCurveHook

__all__ = ['FeatureDistancePGDHook', 'LossCurveHook']
from .hooks import SkipCounterHook  # noqa: E402

__all__ += ['SkipCounterHook']
from .hooks import (ReproducibleRandomnessHook, derive_sample_seed,  # noqa
                    get_rng_state, set_rng_state)

__all__ += [
    'ReproducibleRandomnessHook', 'derive_sample_seed', 'get_rng_state',
    'set_rng_state'
]
