"""The attack hook's former import path: re-exports its three modules.

:class:`FeatureDistancePGDHook` is in :mod:`.attack_schedule_hook`, the image
grid (:class:`AttackImageGridHook`, :data:`VIS_KEYS`) in
:mod:`.image_grid_hook` and :class:`ParamSchedule` in :mod:`.schedules`.
"""
from .attack_schedule_hook import FeatureDistancePGDHook
from .image_grid_hook import VIS_KEYS, AttackImageGridHook
from .schedules import ParamSchedule

__all__ = [
    'FeatureDistancePGDHook', 'AttackImageGridHook', 'VIS_KEYS',
    'ParamSchedule'
]
