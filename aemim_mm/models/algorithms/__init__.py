"""Per-algorithm interfaces of :class:`~aemim_mm.models.AdversarialMIMWrapper`.

``base`` holds :class:`MIMInterface` and the exact-type dispatch;
``mae_family`` the algorithms whose backbone draws the mask (MAE with
``MAEViT`` / ``TimmMAEViT`` / ``MAEHiViT``, MFF, EVA, MILAN, iTPN pixel);
``mixmim`` MixMIM (one mask per batch, mixing pairs of images);
``pipeline_mask`` and ``simmim`` those whose mask comes with the data
(MaskFeat, BEiT v1 / v2, CAE, iTPN's CLIP variant; SimMIM); ``spark``
SparK (sparse ConvNets, the mask in ``SparseHelper``).
"""
from .base import (INTERFACE_HELP, MIMInterface, build_mim_interface,
                   check_backbone, register_mim_interface, select_samples,
                   supported_algorithms)
from .mae_family import (EVAInterface, MAEInterface, MFFInterface,
                         MILANInterface, NoiseMaskInterface, iTPNInterface,
                         noise_order)
from .pipeline_mask import (BEiTInterface, CAEInterface, DataMaskInterface,
                            MaskFeatInterface, iTPNCLIPInterface)
from .mixmim import MixMIMInterface
from .simmim import SimMIMInterface
from .spark import SparKInterface

__all__ = [
    'INTERFACE_HELP', 'MIMInterface', 'build_mim_interface', 'check_backbone',
    'register_mim_interface', 'select_samples', 'supported_algorithms',
    'NoiseMaskInterface', 'MAEInterface', 'MFFInterface', 'EVAInterface',
    'MILANInterface', 'iTPNInterface', 'noise_order', 'SimMIMInterface',
    'DataMaskInterface', 'MaskFeatInterface', 'BEiTInterface', 'CAEInterface',
    'iTPNCLIPInterface', 'MixMIMInterface', 'SparKInterface'
]
