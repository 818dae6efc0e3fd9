"""MixMIM's interface: one mask per batch that mixes pairs of images.

``MixMIMPretrainTransformer`` draws ONE mask for the whole batch (plus a
mask ratio from ``[mask_ratio, mask_ratio + range_mask_ratio]``) and fills
the masked tokens of image ``b`` with those of image ``B - 1 - b``
(``x.flip(0)``); the head un-mixes the two reconstructions. AEMIM on MixMIM
means:

* **mask**: one per (process) batch, as in MixMIM, drawn by the interface
  from :class:`~aemim_mm.models.randomness.SampleRandomness` (the stream of
  the batch's first sample) and lent to the backbone's ``random_masking``,
  so the clean pass, every attack step and the adversarial pass mix with
  the same mask. It is stored once per sample (identical rows) so that it
  follows any subset.
* **attacked subset**: whole pairs ``(b, B - 1 - b)``. ``round(alpha * P)``
  of the ``P = ceil(B / 2)`` pairs (half up) are drawn, and the subset is
  ordered ``b_1 .. b_k, B - 1 - b_k .. B - 1 - b_1``, so that the
  backbone's ``flip(0)`` of the subset pairs the same images as in the
  clean batch (an odd batch's middle image is its own partner).
* **eps-ball**: each source image has its own perturbation,
  ``||x_a,b - x_b||_inf <= eps``; the mixed input of slot ``b`` carries
  ``x_a,b`` on its visible tokens and ``x_a,B-1-b`` on the others. The
  attack maximises the feature distance of every slot, so each source's
  perturbation is driven by both slots it appears in.
* **target**: the clean images of the subset (pixels), un-mixed by the
  head as in MixMIM.
"""
from contextlib import contextmanager
from typing import Callable, Iterator, List

import torch
import torch.nn.functional as F
from torch import nn

from mmpretrain.models.selfsup import MixMIM, MixMIMPretrainTransformer
from mmpretrain.structures import DataSample
from ..randomness import MASK, SELECT, SampleRandomness, round_half_up
from .base import MIMInterface, check_backbone, register_mim_interface


def _mix_masking(draws: torch.Tensor, range_mask_ratio: float,
                 stride: int) -> Callable:
    """``random_masking(x, mask_ratio)`` of ``MixMIMPretrainTransformer``,
    driven by ``draws`` (L noise values, then a uniform for the ratio)."""

    def random_masking(x: torch.Tensor, mask_ratio: float = 0.5):
        height, width = x.shape[-2] // stride, x.shape[-1] // stride
        length = height * width
        if draws.shape != (length + 1, ):
            raise ValueError(
                f'MixMIM mask draws of shape {tuple(draws.shape)} do not fit '
                f'{length} tokens (+1 for the ratio).')
        ratio = mask_ratio + float(draws[-1]) * range_mask_ratio
        mask = torch.zeros(1, 1, length, device=x.device)
        masked = torch.argsort(draws[:-1].to(x.device))[:int(length * ratio)]
        mask[0, 0, masked] = 1
        mask = mask.reshape(1, 1, height, width)
        scales = [F.interpolate(mask, scale_factor=factor, mode='nearest')
                  for factor in (8, 4, 2)] + [mask]
        return tuple(m.reshape(1, -1, 1).contiguous() for m in scales)

    return random_masking


@register_mim_interface(MixMIM)
class MixMIMInterface(MIMInterface):
    """MixMIM (see the module docstring for the pair semantics)."""

    def __init__(self, algorithm: nn.Module) -> None:
        super().__init__(algorithm)
        check_backbone(algorithm, (MixMIMPretrainTransformer, ))

    def sample_mask(self, inputs: torch.Tensor,
                    data_samples: List[DataSample],
                    rng: SampleRandomness) -> torch.Tensor:
        """(B, L + 1): the batch's noise over the L output tokens and a
        uniform for the mask ratio, the same in every row."""
        stride = self.algorithm.backbone.encoder_stride
        length = (inputs.shape[-2] // stride) * (inputs.shape[-1] // stride)
        first = torch.zeros(1, dtype=torch.long)
        draws = rng.rand((length + 1, ), MASK, first)
        return draws.expand(inputs.shape[0], -1).clone()

    def select_adversarial(self, rng: SampleRandomness,
                           ratio: float) -> torch.Tensor:
        """Whole pairs ``(b, B - 1 - b)``, ordered so that ``flip(0)`` of
        the subset pairs the same images."""
        batch = rng.batch_size
        pairs = (batch + 1) // 2
        num = round_half_up(ratio * pairs)
        draws = rng.rand((1, ), SELECT, torch.arange(pairs)).flatten()
        chosen = torch.argsort(draws.cpu())[:num].sort().values
        partners = (batch - 1 - chosen).flip(0)
        if num and batch % 2 and chosen[-1] == pairs - 1:
            partners = partners[1:]     # the middle image is its own partner
        idx = torch.cat([chosen, partners])
        rng.global_count = idx.numel() * rng.world_size
        return idx.to(rng.device)

    @contextmanager
    def _fixed_mask(self, mask: torch.Tensor) -> Iterator[None]:
        """Lend the backbone a ``random_masking`` driven by ``mask[0]``."""
        backbone = self.algorithm.backbone
        backbone.random_masking = _mix_masking(
            mask[0], backbone.range_mask_ratio, backbone.encoder_stride)
        try:
            yield
        finally:
            del backbone.random_masking     # back to the class's method

    def encode(self, inputs: torch.Tensor,
               mask: torch.Tensor) -> torch.Tensor:
        with self._fixed_mask(mask):
            return self.algorithm.backbone(inputs)[0]

    def reconstruction_loss(self, inputs, mask, target):
        algo = self.algorithm
        with self._fixed_mask(mask):
            latent, token_mask = algo.backbone(inputs)
        x_rec = algo.neck(latent, token_mask)
        return algo.head.loss(x_rec, target, token_mask), latent, x_rec

    def reconstruct_image(self, pred, inputs, mask):
        """The input with the tokens filled from the partner image at the
        mean colour (MixMIM's prediction is two half-reconstructions)."""
        with self._fixed_mask(mask):
            token_mask = self.algorithm.backbone.random_masking(inputs)[-1]
        stride = self.algorithm.backbone.encoder_stride
        grid = token_mask.reshape(1, 1, inputs.shape[-2] // stride,
                                  inputs.shape[-1] // stride)
        pixel_mask = F.interpolate(grid, size=inputs.shape[-2:]).to(inputs)
        return inputs * (1 - pixel_mask)
