"""Engine: mmengine hooks and the AEMIM model wrapper for DDP."""
from .hooks import (FeatureDistancePGDHook, LossCurveHook,
                    ReproducibleRandomnessHook, RNGStateCheckpointHook,
                    SampleSeedHook, SkipCounterHook, derive_sample_seed,
                    get_rng_state, set_rng_state)
from .model_wrappers import AEMIMDistributedDataParallel
from .optim_constructors import SubmoduleOptimWrapperConstructor

__all__ = [
    'FeatureDistancePGDHook', 'LossCurveHook', 'ReproducibleRandomnessHook',
    'RNGStateCheckpointHook', 'SampleSeedHook', 'SkipCounterHook',
    'derive_sample_seed', 'get_rng_state', 'set_rng_state',
    'AEMIMDistributedDataParallel', 'SubmoduleOptimWrapperConstructor'
]
