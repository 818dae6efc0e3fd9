# What every survey config adds to its runtime: the plug-in, and the
# per-sample random starts keyed by iteration and sample (split-invariant
# draws: one process and N give the same attack).
custom_imports = dict(imports=['aemim_mm'], allow_failed_imports=False)

custom_hooks = [dict(type='SampleSeedHook')]
