"""Interfaces of the MAE family: the backbone draws the mask.

mmpretrain's MAE-style encoders draw their mask inside ``forward`` through
one method of the backbone instance:

=================  =====================  ==================================
backbone           masking method         returns
=================  =====================  ==================================
``MAEViT``,        ``random_masking``     ``x_masked, mask, ids_restore``
``TimmMAEViT``,
``MFFViT``
``MAEHiViT``,      ``masking_id``         ``ids_keep, ids_restore, mask``
``iTPNHiViT``
``MILANViT``       ``attention_masking``  ``x_masked, ids_restore, ids_keep,
                                          ids_dump``
=================  =====================  ==================================

The interfaces draw the mask themselves, as per-sample noise whose ascending
order lists the kept patches first (MAE's convention), from
:class:`~aemim_mm.models.randomness.SampleRandomness` (so ``sample_seed``
applies), and lend the backbone a masking method driven by that noise for the
duration of each call: the same patches are kept in the clean pass, every
attack step and the adversarial pass.
"""
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Tuple

import torch
from torch import nn

from mmpretrain.models.selfsup import (EVA, MAE, MFF, MILAN, MAEHiViT, MAEViT,
                                       MFFViT, MILANViT, iTPN, iTPNHiViT)
from mmpretrain.structures import DataSample
from ..backbones import MAEPlusViT, TimmMAEViT
from ..randomness import MASK, SampleRandomness
from .base import (MIMInterface, check_backbone, denormalised_patches,
                   register_mim_interface)


def noise_order(
    noise: torch.Tensor, len_keep: int
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """MAE's per-sample shuffle, driven by ``noise`` (B, L).

    Returns:
        ``(ids_shuffle, ids_restore, ids_keep, mask)``: the patch order
        (ascending noise: kept first), its inverse, the kept patches and the
        (B, L) 0/1 mask (1 = removed) in the original order.
    """
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    mask = torch.ones(noise.shape, device=noise.device)
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return ids_shuffle, ids_restore, ids_shuffle[:, :len_keep], mask


def _check_noise(noise: torch.Tensor, num: int, length: int) -> None:
    if noise.shape != (num, length):
        raise ValueError(f'mask noise of shape {tuple(noise.shape)} does not '
                         f'fit {num} samples of {length} patches.')


def _random_masking(noise: torch.Tensor) -> Callable:
    """``random_masking(x, mask_ratio)`` of ``MAEViT``, driven by ``noise``."""

    def random_masking(x: torch.Tensor, mask_ratio: float = 0.75):
        num, length, dims = x.shape
        _check_noise(noise, num, length)
        _, ids_restore, ids_keep, mask = noise_order(
            noise, int(length * (1 - mask_ratio)))
        ids_keep = ids_keep[:, :, None].expand(-1, -1, dims)
        return torch.gather(x, 1, ids_keep), mask.to(x.device), ids_restore

    return random_masking


def _masking_id(noise: torch.Tensor, length: int) -> Callable:
    """``masking_id(batch_size, mask_ratio)`` of ``MAEHiViT``, driven by
    ``noise``."""

    def masking_id(batch_size: int, mask_ratio: float = 0.75):
        _check_noise(noise, batch_size, length)
        _, ids_restore, ids_keep, mask = noise_order(
            noise, int(length * (1 - mask_ratio)))
        return ids_keep, ids_restore, mask

    return masking_id


def _attention_masking(noise: torch.Tensor) -> Callable:
    """``attention_masking(x, mask_ratio, importance)`` of ``MILANViT``,
    driven by ``noise`` (which already holds the importance)."""

    def attention_masking(x: torch.Tensor, mask_ratio: float,
                          importance: Any = None):
        num, length, dims = x.shape
        _check_noise(noise, num, length)
        len_keep = int(length * (1 - mask_ratio))
        ids_shuffle, ids_restore, ids_keep, _ = noise_order(noise, len_keep)
        x_masked = torch.gather(x, 1, ids_keep[:, :, None].expand(-1, -1,
                                                                  dims))
        return x_masked, ids_restore, ids_keep, ids_shuffle[:, len_keep:]

    return attention_masking


def masked_image(inputs: torch.Tensor,
                 patch_mask: torch.Tensor) -> torch.Tensor:
    """``inputs`` with the removed patches (``patch_mask`` (B, L) = 1) set to
    0, the data preprocessor's mean colour."""
    num, length = patch_mask.shape
    grid = int(round(length**.5))
    pixel_mask = patch_mask.reshape(num, 1, grid, grid).to(inputs)
    pixel_mask = nn.functional.interpolate(pixel_mask, size=inputs.shape[-2:])
    return inputs * (1 - pixel_mask)


class NoiseMaskInterface(MIMInterface):
    """An algorithm whose backbone draws an MAE-style mask from noise.

    The mask of a sample is uniform noise (B, L) over its patches; ascending
    order = kept first. Subclasses name their backbones in
    :attr:`BACKBONES`.
    """

    #: Exact backbone type -> the masking method the interface lends it.
    BACKBONES: Dict[type, str] = {}

    def __init__(self, algorithm: nn.Module) -> None:
        super().__init__(algorithm)
        check_backbone(algorithm, tuple(self.BACKBONES))
        self.masking = self.BACKBONES[type(algorithm.backbone)]

    @property
    def num_patches(self) -> int:
        """Patches per image (the mask's length)."""
        return self.algorithm.backbone.num_patches

    def sample_mask(self, inputs: torch.Tensor,
                    data_samples: List[DataSample],
                    rng: SampleRandomness) -> torch.Tensor:
        """Uniform noise (B, L); ascending order = kept first, as in MAE."""
        return rng.rand((self.num_patches, ), MASK)

    @contextmanager
    def _fixed_mask(self, noise: torch.Tensor) -> Iterator[None]:
        """Lend the backbone instance a masking method driven by ``noise``."""
        backbone = self.algorithm.backbone
        if self.masking == 'random_masking':
            method = _random_masking(noise)
        elif self.masking == 'masking_id':
            method = _masking_id(noise, backbone.num_patches)
        else:
            method = _attention_masking(noise)
        setattr(backbone, self.masking, method)
        try:
            yield
        finally:
            delattr(backbone, self.masking)     # back to the class's method

    def patch_mask(self, noise: torch.Tensor) -> torch.Tensor:
        """The (B, L) 0/1 mask (1 = removed) that ``noise`` gives."""
        len_keep = int(noise.shape[1] *
                       (1 - self.algorithm.backbone.mask_ratio))
        return noise_order(noise, len_keep)[3]

    def backbone_forward(self, inputs: torch.Tensor,
                         mask: torch.Tensor) -> tuple:
        """The backbone's masked forward, with ``mask``."""
        with self._fixed_mask(mask):
            return self.algorithm.backbone(inputs)

    def encoder_tokens(self, out: tuple) -> torch.Tensor:
        """The encoder's output tokens (B, N, C) in the backbone's output."""
        return out[0]

    def encode(self, inputs: torch.Tensor,
               mask: torch.Tensor) -> torch.Tensor:
        return self.encoder_tokens(self.backbone_forward(inputs, mask))

    def reconstruct_image(self, pred, inputs, mask):
        """The masked input (visible patches; removed ones at the mean
        colour): feature targets have no image to show."""
        return masked_image(inputs, self.patch_mask(mask))


def _check_target_generator(algorithm: nn.Module, example: str) -> None:
    if getattr(algorithm, 'target_generator', None) is None:
        raise ValueError(
            f'{type(algorithm).__name__} needs a `target_generator` (e.g. '
            f'{example}), got None.')


@register_mim_interface(MAE)
class MAEInterface(NoiseMaskInterface):
    """MAE: pixel target, mask drawn by the backbone.

    Backbones: ``MAEViT``, :class:`~aemim_mm.models.TimmMAEViT`,
    :class:`~aemim_mm.models.MAEPlusViT` (MAE+: its tokens hold every
    patch, the masked ones as the mask token) (``random_masking``) and
    ``MAEHiViT`` (``masking_id``).
    """

    BACKBONES = {MAEViT: 'random_masking', TimmMAEViT: 'random_masking',
                 MAEHiViT: 'masking_id', MAEPlusViT: 'random_masking'}

    def reconstruction_loss(self, inputs, mask, target):
        algo = self.algorithm
        out = self.backbone_forward(inputs, mask)
        latent, patch_mask, ids_restore = out[:3]
        pred = algo.neck(latent, ids_restore)
        loss = algo.head.loss(pred, target, patch_mask)
        return loss, self.encoder_tokens(out), pred

    def reconstruct_image(self, pred, inputs, mask):
        head = self.algorithm.head
        target = head.patchify(inputs)
        pred = denormalised_patches(pred, target, head.norm_pix)
        patch_mask = self.patch_mask(mask).unsqueeze(-1).to(pred)
        return head.unpatchify(pred * patch_mask + target * (1 - patch_mask))


@register_mim_interface(MFF)
class MFFInterface(MAEInterface):
    """MFF: MAE with multi-level feature fusion in ``MFFViT``.

    ``MFFViT`` returns a fourth output, the fusion weights; the tokens and
    the loss are MAE's. (MFF's logged ``weight_i`` are not logged here.)
    """

    BACKBONES = {MFFViT: 'random_masking'}


@register_mim_interface(EVA)
class EVAInterface(MAEInterface):
    """EVA (MAE-style): CLIP patch features of the clean image as target.

    The target is ``target_generator(clean image)[0][:, 1:]`` (the patch
    tokens of ``CLIPGenerator``), computed once per iteration.
    """

    BACKBONES = {MAEViT: 'random_masking', TimmMAEViT: 'random_masking'}

    def __init__(self, algorithm: nn.Module) -> None:
        super().__init__(algorithm)
        _check_target_generator(algorithm, "dict(type='CLIPGenerator')")

    def compute_target(self, inputs, data_samples):
        clip_feature, _ = self.algorithm.target_generator(inputs)
        return clip_feature[:, 1:, :]

    reconstruct_image = NoiseMaskInterface.reconstruct_image


@register_mim_interface(MILAN)
class MILANInterface(NoiseMaskInterface):
    """MILAN: CLIP features of the clean image as target, and a mask that
    keeps patches with probability growing with their CLIP attention.

    MILAN draws the kept patches with ``torch.multinomial(importance, L)``
    (without replacement). The interface draws the same distribution from
    :class:`SampleRandomness`: noise ``E / importance`` with ``E`` standard
    exponential; its ascending order is a draw without replacement
    proportional to ``importance`` (Efraimidis and Spirakis' keys).
    """

    BACKBONES = {MILANViT: 'attention_masking'}

    def __init__(self, algorithm: nn.Module) -> None:
        super().__init__(algorithm)
        _check_target_generator(algorithm, "dict(type='CLIPGenerator')")

    def _clip(self, inputs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """CLIP features and the importance (B, L) of each patch."""
        clip_feature, attention = self.algorithm.target_generator(inputs)
        return clip_feature, attention[:, 0, 1:]

    @staticmethod
    def _importance_noise(importance: torch.Tensor,
                          rng: SampleRandomness) -> torch.Tensor:
        """Noise (B, L) whose ascending order draws patches without
        replacement in proportion to ``importance`` (B, L); at least float32
        (CLIP's attention may come in half precision under AMP)."""
        importance = importance.to(
            torch.promote_types(importance.dtype, torch.float32))
        uniform = rng.rand(importance.shape[1:], MASK).to(importance)
        return -torch.log1p(-uniform) / importance

    def prepare(self, inputs, data_samples, rng, update_state=True):
        with torch.no_grad():
            clip_feature, importance = self._clip(inputs)
        return clip_feature, self._importance_noise(importance, rng)

    def compute_target(self, inputs, data_samples):
        return self._clip(inputs)[0]

    def sample_mask(self, inputs, data_samples, rng):
        with torch.no_grad():
            importance = self._clip(inputs)[1]
        return self._importance_noise(importance, rng)

    def backbone_forward(self, inputs, mask):
        # MILANViT masks when `importance` is not None; the lent
        # attention_masking reads the order from `mask` alone.
        with self._fixed_mask(mask):
            return self.algorithm.backbone(inputs, mask)

    def reconstruction_loss(self, inputs, mask, target):
        algo = self.algorithm
        latent, ids_restore, ids_keep, ids_dump = self.backbone_forward(
            inputs, mask)
        pred = algo.neck(latent, ids_restore, ids_keep, ids_dump)
        return algo.head.loss(pred, target), latent, pred


@register_mim_interface(iTPN)
class iTPNInterface(MAEInterface):  # noqa: N801 (mmpretrain's name)
    """iTPN, pixel variant: MAE on ``iTPNHiViT`` with a pyramid decoder.

    The encoder tokens are those of the last stage. The CLIP variant
    (``backbone.reconstruction_type='clip'``) gets
    :class:`~aemim_mm.models.algorithms.pipeline_mask.iTPNCLIPInterface`.
    """

    BACKBONES = {iTPNHiViT: 'masking_id'}

    @classmethod
    def for_algorithm(cls, algorithm: nn.Module) -> MIMInterface:
        kind = getattr(algorithm.backbone, 'reconstruction_type', None)
        if kind == 'clip':
            from .pipeline_mask import iTPNCLIPInterface
            return iTPNCLIPInterface(algorithm)
        return cls(algorithm)

    def __init__(self, algorithm: nn.Module) -> None:
        super().__init__(algorithm)
        kind = algorithm.backbone.reconstruction_type
        if kind != 'pixel':
            raise TypeError(
                'iTPNInterface handles backbone.reconstruction_type='
                f"'pixel', got {kind!r}.")

    def encoder_tokens(self, out):
        return out[0][-1]
