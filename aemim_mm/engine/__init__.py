"""Engine: mmengine hooks for the attack schedule and the visual outputs."""
from .hooks import FeatureDistancePGDHook, LossCurveHook

__all__ = ['FeatureDistancePGDHook', 'LossCurveHook']
