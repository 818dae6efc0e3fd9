"""High-level functions for users and tools (no mmdet needed)."""
from .export import (FORMATS, CheckpointFormatError, EncoderExport,
                     export_encoder, extract_encoder, mmpretrain_vit_to_timm,
                     timm_vit_to_mmpretrain)

__all__ = [
    'FORMATS', 'CheckpointFormatError', 'EncoderExport', 'export_encoder',
    'extract_encoder', 'mmpretrain_vit_to_timm', 'timm_vit_to_mmpretrain'
]
