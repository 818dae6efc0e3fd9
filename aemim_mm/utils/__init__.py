"""Utilities: safe checkpoint loading for torch>=2.6 ``weights_only``."""
from .safe_load import (register_checkpoint_safe_globals,
                        register_safe_local_loader)

register_checkpoint_safe_globals()
register_safe_local_loader()

__all__ = ['register_checkpoint_safe_globals', 'register_safe_local_loader']
