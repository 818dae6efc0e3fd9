from .attack_hook import FeatureDistancePGDHook
from .loss_curve_hook import LossCurveHook

__all__ = ['FeatureDistancePGDHook', 'LossCurveHook']
