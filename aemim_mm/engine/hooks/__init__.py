from .attack_hook import FeatureDistancePGDHook
from .loss_curve_hook import LossCurveHook

__all__ = ['FeatureDistancePGDHook', 'LossCurveHook']
from .skip_counter_hook import SkipCounterHook  # noqa: E402

__all__ += ['SkipCounterHook']
from .reproducibility_hook import (ReproducibleRandomnessHook,  # noqa: E402
                                   derive_sample_seed, get_rng_state,
                                   set_rng_state)

__all__ += [
    'ReproducibleRandomnessHook', 'derive_sample_seed', 'get_rng_state',
    'set_rng_state'
]
