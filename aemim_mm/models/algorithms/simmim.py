"""SimMIM's interface: the mask comes with the data."""
from typing import List

import torch

from torch import nn

from mmpretrain.models.selfsup import SimMIM, SimMIMSwinTransformer
from mmpretrain.structures import DataSample
from ..adversarial_mask_simmim import AdversarialMaskSimMIM
from ..backbones import SimMIMViT
from ..randomness import SampleRandomness
from .base import MIMInterface, check_backbone, register_mim_interface


@register_mim_interface(SimMIM)
class SimMIMInterface(MIMInterface):
    """SimMIM: the mask comes with the data (``SimMIMMaskGenerator``)."""

    #: Exact backbone types the interface handles: ``encode`` reads the
    #: backbone's last (B, C, H, W) feature map of ``backbone(img, mask)``.
    BACKBONES = (SimMIMSwinTransformer, SimMIMViT)

    def __init__(self, algorithm: nn.Module) -> None:
        super().__init__(algorithm)
        check_backbone(algorithm, self.BACKBONES)

    def sample_mask(self, inputs: torch.Tensor,
                    data_samples: List[DataSample],
                    rng: SampleRandomness) -> torch.Tensor:
        return torch.stack([sample.mask for sample in data_samples])

    def encode(self, inputs: torch.Tensor,
               mask: torch.Tensor) -> torch.Tensor:
        feat = self.algorithm.backbone(inputs, mask)[0]     # (B, C, H, W)
        return feat.flatten(2).transpose(1, 2)

    def reconstruction_loss(self, inputs, mask, target):
        algo = self.algorithm
        feat = algo.backbone(inputs, mask)[0]
        pred = algo.neck(feat)
        loss = algo.head.loss(pred, target, mask)
        return loss, feat.flatten(2).transpose(1, 2), pred

    def reconstruct_image(self, pred, inputs, mask):
        size = inputs.shape[-2:]
        pixel_mask = mask[:, None].float()
        pixel_mask = torch.nn.functional.interpolate(pixel_mask, size=size)
        return pred * pixel_mask + inputs * (1 - pixel_mask)


@register_mim_interface(AdversarialMaskSimMIM)
class AdversarialMaskSimMIMInterface(SimMIMInterface):
    """SimMIM with ADIOS-style learned masks: the masking network's mask of
    the clean image, with its gradient (the network climbs the clean
    reconstruction loss; the adversarial pass takes the mask as data)."""

    def sample_mask(self, inputs: torch.Tensor,
                    data_samples: List[DataSample],
                    rng: SampleRandomness) -> torch.Tensor:
        return self.algorithm.learned_mask(inputs)
