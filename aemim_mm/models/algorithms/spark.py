"""SparK's interface: a sparse ConvNet encoder, its mask in ``SparseHelper``.

mmpretrain's ``SparK`` draws its mask inside ``loss`` (``self.mask()``) and
publishes it to every sparse layer through the process-global
``SparseHelper._cur_active`` (B, 1, f, f): a sparse convolution, pooling or
norm only sees the kept positions of the ``f x f`` feature map (f = input
size / ``downsample_raito``), dilated to its own resolution.

The interface draws the mask itself with
:class:`~aemim_mm.models.randomness.SampleRandomness` (so ``sample_seed``
applies), sets ``SparseHelper`` before every pass (clean, each attack step,
adversarial) and lends ``SparK`` that mask (its ``mask`` method, for the
duration of a call), so one mask serves them all. The target is the clean
image, as for MAE; the attack's feature distance is taken on the encoder's
output feature map (the deepest) at the kept positions.
"""
from contextlib import contextmanager
from typing import Iterator, List, Tuple

import torch
from torch import nn

from mmpretrain.models.backbones import SparseConvNeXt, SparseResNet
from mmpretrain.models.selfsup import SparK
from mmpretrain.models.utils.sparse_modules import SparseHelper
from mmpretrain.structures import DataSample
from ..randomness import MASK, SampleRandomness
from .base import (MIMInterface, check_backbone, denormalised_patches,
                   register_mim_interface)


def kept_tokens(feature_map: torch.Tensor,
                active: torch.Tensor) -> torch.Tensor:
    """The features of the kept positions, (B, K, C).

    Args:
        feature_map: (B, C, f, f), at the mask's resolution.
        active: (B, 1, f, f) bool, K kept positions per sample.
    """
    num, channels = feature_map.shape[:2]
    tokens = feature_map.flatten(2).transpose(1, 2)        # (B, f*f, C)
    return tokens[active.flatten(1)].reshape(num, -1, channels)


@contextmanager
def sparse_active(active: torch.Tensor) -> Iterator[None]:
    """Inside the block, SparK's sparse layers keep the positions
    ``active`` (B, 1, f, f); the previous state is restored after."""
    saved = SparseHelper._cur_active
    SparseHelper._cur_active = active
    try:
        yield
    finally:
        SparseHelper._cur_active = saved


@register_mim_interface(SparK)
class SparKInterface(MIMInterface):
    """SparK with a sparse ResNet or a sparse ConvNeXt (V2) encoder.

    The mask is the active map (B, 1, f, f): ``True`` where a position is
    kept, ``len_keep`` of them per sample. The encoder-decoder norms of
    ``SparK`` (``enc_dec_norms``) belong to the decoder: they get adapters
    when ``'neck'`` is in ``adapter_scope``.
    """

    BACKBONES = (SparseResNet, SparseConvNeXt)

    def __init__(self, algorithm: nn.Module) -> None:
        super().__init__(algorithm)
        check_backbone(algorithm, self.BACKBONES)

    def adapter_scope(self, scope: Tuple[str, ...]) -> Tuple[str, ...]:
        scope = tuple(scope)
        if 'neck' in scope and 'enc_dec_norms' not in scope:
            scope += ('enc_dec_norms', )
        return scope

    def sample_mask(self, inputs: torch.Tensor,
                    data_samples: List[DataSample],
                    rng: SampleRandomness) -> torch.Tensor:
        """``len_keep`` random kept positions per sample, as ``SparK.mask``
        draws them: (B, 1, f, f) bool."""
        algo = self.algorithm
        size = algo.input_size
        if tuple(inputs.shape[-2:]) != (size, size):
            raise ValueError(
                f'SparK was built for {size}x{size} inputs (input_size), got '
                f'{tuple(inputs.shape[-2:])}; set input_size (and the '
                'pipeline) to the image size.')
        f = algo.feature_map_size
        keep = rng.rand((f * f, ), MASK).argsort(dim=1)[:, :algo.len_keep]
        active = torch.zeros(
            keep.shape[0], f * f, dtype=torch.bool, device=keep.device)
        return active.scatter_(1, keep, True).view(-1, 1, f, f)

    def masked_input(self, inputs: torch.Tensor,
                     active: torch.Tensor) -> torch.Tensor:
        """``inputs`` with the removed positions set to 0 (as ``SparK.loss``
        masks its input)."""
        ratio = self.algorithm.downsample_raito
        pixels = active.repeat_interleave(ratio, 2).repeat_interleave(ratio, 3)
        return inputs * pixels

    def encode(self, inputs: torch.Tensor,
               mask: torch.Tensor) -> torch.Tensor:
        with sparse_active(mask):
            feats = self.algorithm.backbone(self.masked_input(inputs, mask))
        return kept_tokens(feats[-1], mask)

    def reconstruction_loss(self, inputs, mask, target):
        """``SparK.loss`` on ``inputs`` with ``mask``, against ``target``.

        ``SparK.loss`` runs unchanged: it is lent ``mask`` (its ``mask``
        method), its head gets ``target`` instead of ``inputs`` (a forward
        pre-hook) and the encoder's features and the prediction are read
        by forward hooks.
        """
        algo = self.algorithm
        seen = {}
        hooks = [
            algo.backbone.register_forward_hook(
                lambda module, args, out: seen.update(feats=out)),
            algo.neck.register_forward_hook(
                lambda module, args, out: seen.update(pred=out)),
            algo.head.register_forward_pre_hook(
                lambda module, args: (args[0], target) + tuple(args[2:])),
        ]
        algo.mask = lambda shape, device, generator=None: mask
        try:
            with sparse_active(mask):
                loss = algo.loss(inputs, [])['loss']
        finally:
            del algo.mask       # back to the class's method
            for hook in hooks:
                hook.remove()
        return loss, kept_tokens(seen['feats'][-1], mask), seen['pred']

    def reconstruct_image(self, pred, inputs, mask):
        """The prediction at the removed positions, ``inputs`` elsewhere."""
        head = self.algorithm.head
        target = head.patchify(inputs)
        pred = denormalised_patches(head.patchify(pred), target,
                                    head.norm_pix)
        keep = mask.flatten(1).unsqueeze(-1).to(pred)
        mixed = target * keep + pred * (1 - keep)
        return self._unpatchify(mixed, inputs.shape)

    def _unpatchify(self, patches: torch.Tensor,
                    shape: torch.Size) -> torch.Tensor:
        """Inverse of ``SparKPretrainHead.patchify`` (B, L, p*p*C)."""
        num, channels, height, width = shape
        p = self.algorithm.head.patch_size
        h, w = height // p, width // p
        x = patches.reshape(num, h, w, p, p, channels)
        return torch.einsum('bhwpqc->bchpwq', x).reshape(shape)
