"""Mini-reproduction: MAE vs Fast AEMIM vs AEMIM on CIFAR-10.

A project beside the ``aemim_mm`` package (``projects/mini_repro/``, not
installed by ``setup.py``; the tools put ``projects/mini_repro`` on
``sys.path``). ``tools/mini_repro.py`` runs :func:`run_pipeline` with a
preset of ``configs/mini_repro/`` (see ``docs/mini_repro.md``). Importing
this package registers :class:`~aemim_repro.hooks.EpochTimeHook` and
:class:`~aemim_repro.hooks.TimeBudgetHook` in mmpretrain's ``HOOKS``.
"""
from .hooks import EpochTimeHook, TimeBudgetHook
from .pipeline import encoders, run_pipeline
from .preset import (METHOD_CONFIGS, METHOD_LABELS, load_preset,
                     validate_preset)
from .report import write_report
from .stages import equal_time_epochs
from .stats import stat

__all__ = [
    'EpochTimeHook', 'TimeBudgetHook', 'encoders', 'run_pipeline',
    'METHOD_CONFIGS', 'METHOD_LABELS', 'load_preset', 'validate_preset', 'stat',
    'write_report', 'equal_time_epochs'
]
