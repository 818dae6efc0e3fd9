"""Utilities: safe checkpoint loading for torch>=2.6 ``weights_only``;
config fix-ups (:mod:`.config_fixes`), distributed runs without CUDA
(:mod:`.distributed`), the shared command line of ``tools/train.py`` and
``tools/test.py`` (:mod:`.cli`) for the tools and the mini-reproduction,
the type rule of the components' option checks (:mod:`.checks`), the global
random generators' state (:mod:`.rng_state`) and the per-iteration sample
seed (:mod:`.sample_seed`)."""
from .safe_load import (register_checkpoint_safe_globals,
                        register_safe_local_loader, register_safe_url_loaders)

register_checkpoint_safe_globals()
register_safe_local_loader()
register_safe_url_loaders()

__all__ = [
    'register_checkpoint_safe_globals', 'register_safe_local_loader',
    'register_safe_url_loaders'
]
