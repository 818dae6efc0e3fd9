"""Utilities: safe checkpoint loading for torch>=2.6 ``weights_only``."""
from .safe_load import register_checkpoint_safe_globals

register_checkpoint_safe_globals()

__all__ = ['register_checkpoint_safe_globals']
