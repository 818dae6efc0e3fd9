"""High-level functions for users and tools (no mmdet needed)."""
from .backbone_fit import BackboneFit, check_backbone_fit, finetune_backbone
from .export import (ENCODERS, FORMATS, EncoderExport, EncoderSpec,
                     export_encoder, extract_encoder)
from .key_converters import (CheckpointFormatError, beit_pretrain_to_beit_vit,
                             mmpretrain_vit_to_timm, timm_vit_to_mmpretrain)

__all__ = [
    'ENCODERS', 'FORMATS', 'BackboneFit', 'CheckpointFormatError',
    'EncoderExport', 'check_backbone_fit', 'finetune_backbone',
    'EncoderSpec', 'beit_pretrain_to_beit_vit', 'export_encoder',
    'extract_encoder', 'mmpretrain_vit_to_timm', 'timm_vit_to_mmpretrain'
]
