from .mask_token_vit import MAEPlusPretrainDecoder, MAEPlusViT, SimMIMViT
from .timm_mae_vit import TimmMAEViT

__all__ = ['MAEPlusPretrainDecoder', 'MAEPlusViT', 'SimMIMViT', 'TimmMAEViT']
