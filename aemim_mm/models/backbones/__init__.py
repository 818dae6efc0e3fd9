from .timm_mae_vit import TimmMAEViT

__all__ = ['TimmMAEViT']
