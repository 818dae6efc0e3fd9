from .adversarial_mask_hook import AdversarialMaskHook
from .adversarial_positions_hook import AdversarialPositionsHook
from .attack_schedule_hook import FeatureDistancePGDHook
from .image_grid_hook import VIS_KEYS, AttackImageGridHook
from .loss_curve_hook import LossCurveHook
from .mask_grid_hook import MaskGridHook
from .position_map_hook import PositionMapHook
from .pseudo_label_hook import PseudoLabelHook
from .reproducibility_hook import (ReproducibleRandomnessHook,
                                   derive_sample_seed, get_rng_state,
                                   set_rng_state)
from .rng_state_hook import RNGStateCheckpointHook
from .sample_seed_hook import SampleSeedHook
from .schedules import ParamSchedule
from .skip_counter_hook import SkipCounterHook

__all__ = [
    'AdversarialMaskHook', 'AdversarialPositionsHook',
    'FeatureDistancePGDHook', 'AttackImageGridHook', 'VIS_KEYS',
    'LossCurveHook', 'MaskGridHook', 'ParamSchedule', 'PseudoLabelHook', 'ReproducibleRandomnessHook',
    'RNGStateCheckpointHook', 'SampleSeedHook', 'SkipCounterHook',
    'derive_sample_seed', 'get_rng_state', 'set_rng_state'
]
