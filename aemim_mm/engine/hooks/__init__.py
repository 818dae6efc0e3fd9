from .attack_hook import FeatureDistancePGDHook
from .loss_curve_hook import LossCurveHook
from .reproducibility_hook import (ReproducibleRandomnessHook,
                                   derive_sample_seed, get_rng_state,
                                   set_rng_state)
from .skip_counter_hook import SkipCounterHook

__all__ = [
    'FeatureDistancePGDHook', 'LossCurveHook', 'ReproducibleRandomnessHook',
    'SkipCounterHook', 'derive_sample_seed', 'get_rng_state', 'set_rng_state'
]
