"""The small interface AEMIM needs from a masked-image-modeling algorithm.

:class:`AdversarialMIMWrapper` runs one algorithm several times per
iteration (clean pass, attack steps, adversarial pass) with ONE mask per
sample. An algorithm supports this by four methods, implemented here for
mmpretrain's ``MAE`` and ``SimMIM``. For a new algorithm, subclass
:class:`MIMInterface` and register it::

    @register_mim_interface(MyMIM)
    class MyMIMInterface(MIMInterface):
        def sample_mask(self, inputs, data_samples, rng): ...
        def encode(self, inputs, mask): ...
        def reconstruction_loss(self, inputs, mask, target): ...
        def reconstruct_image(self, pred, inputs, mask): ...
"""
from contextlib import contextmanager
from typing import Dict, Iterator, List, Tuple, Type

import torch
from torch import nn

from mmpretrain.models.selfsup import MAE, SimMIM
from mmpretrain.structures import DataSample
from .randomness import MASK, SampleRandomness

_INTERFACES: Dict[type, Type['MIMInterface']] = {}

INTERFACE_HELP = (
    'To add an algorithm, subclass aemim_mm.models.MIMInterface, implement '
    'sample_mask(inputs, data_samples, rng) -> per-sample mask (B, ...), '
    'encode(inputs, mask) -> encoder tokens (B, N, C), '
    'reconstruction_loss(inputs, mask, target) -> (loss, tokens, pred) and '
    'reconstruct_image(pred, inputs, mask) -> (B, C, H, W), and register it '
    'with @aemim_mm.models.algorithms.register_mim_interface(YourAlgorithm).')


def register_mim_interface(algorithm_cls: type):
    """Class decorator: use the decorated interface for ``algorithm_cls``."""

    def decorator(interface_cls: Type['MIMInterface']):
        _INTERFACES[algorithm_cls] = interface_cls
        return interface_cls

    return decorator


def build_mim_interface(algorithm: nn.Module) -> 'MIMInterface':
    """The interface for ``algorithm`` (its class or nearest base class).

    Raises:
        TypeError: For an algorithm without a registered interface; the
            message names the supported ones and the interface to implement.
    """
    for cls in type(algorithm).__mro__:
        if cls in _INTERFACES:
            return _INTERFACES[cls](algorithm)
    supported = sorted(c.__name__ for c in _INTERFACES)
    raise TypeError(
        f'AdversarialMIMWrapper does not know the algorithm '
        f'{type(algorithm).__name__}; supported: {supported}. '
        + INTERFACE_HELP)


class MIMInterface:
    """Calls into one MIM algorithm with an explicit, reusable mask.

    Args:
        algorithm: The built algorithm (``backbone``, ``neck``, ``head``).
    """

    def __init__(self, algorithm: nn.Module) -> None:
        self.algorithm = algorithm

    def sample_mask(self, inputs: torch.Tensor,
                    data_samples: List[DataSample],
                    rng: SampleRandomness) -> torch.Tensor:
        """Draw (with ``rng``) or read one mask per sample (B, ...)."""
        raise NotImplementedError

    def encode(self, inputs: torch.Tensor,
               mask: torch.Tensor) -> torch.Tensor:
        """Encoder tokens (B, N, C) of the masked ``inputs``."""
        raise NotImplementedError

    def reconstruction_loss(
            self, inputs: torch.Tensor, mask: torch.Tensor,
            target: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The MIM loss of reconstructing ``target`` from masked ``inputs``.

        Returns:
            ``(loss, tokens, pred)``: the scalar loss, the encoder tokens
            (B, N, C) of this pass and the decoder's prediction.
        """
        raise NotImplementedError

    def reconstruct_image(self, pred: torch.Tensor, inputs: torch.Tensor,
                          mask: torch.Tensor) -> torch.Tensor:
        """The prediction as a normalised image (B, C, H, W), visible
        patches taken from ``inputs`` (for visualisation)."""
        raise NotImplementedError


@register_mim_interface(MAE)
class MAEInterface(MIMInterface):
    """MAE: the mask is the per-sample noise that orders the patches.

    mmpretrain's ``MAEViT`` draws its mask inside ``forward`` by calling
    ``self.random_masking(x, mask_ratio)``; the interface overrides that
    method on the backbone instance for the duration of a call, so the same
    noise (hence the same kept patches) serves every pass. Any backbone with
    such a method works (``MAEViT``, :class:`~aemim_mm.models.TimmMAEViT`).
    """

    def __init__(self, algorithm: nn.Module) -> None:
        super().__init__(algorithm)
        backbone = algorithm.backbone
        for attr in ('random_masking', 'num_patches', 'mask_ratio'):
            if not hasattr(backbone, attr):
                raise TypeError(
                    f'MAE backbone {type(backbone).__name__} has no '
                    f'`{attr}`; AEMIM fixes the mask through '
                    '`random_masking(x, mask_ratio)` as in MAEViT. '
                    + INTERFACE_HELP)

    def sample_mask(self, inputs: torch.Tensor,
                    data_samples: List[DataSample],
                    rng: SampleRandomness) -> torch.Tensor:
        """Uniform noise (B, L); ascending order = kept first, as in MAE."""
        return rng.rand((self.algorithm.backbone.num_patches, ), MASK)

    @contextmanager
    def _fixed_mask(self, noise: torch.Tensor) -> Iterator[None]:
        backbone = self.algorithm.backbone

        def random_masking(x: torch.Tensor, mask_ratio: float = 0.75):
            # MAE's per-sample shuffle, driven by the given noise.
            num, length, dims = x.shape
            if noise.shape != (num, length):
                raise ValueError(f'mask noise of shape {tuple(noise.shape)} '
                                 f'does not fit tokens {(num, length)}.')
            len_keep = int(length * (1 - mask_ratio))
            ids_shuffle = torch.argsort(noise, dim=1)
            ids_restore = torch.argsort(ids_shuffle, dim=1)
            ids_keep = ids_shuffle[:, :len_keep, None].expand(-1, -1, dims)
            mask = torch.ones(num, length, device=x.device)
            mask[:, :len_keep] = 0
            mask = torch.gather(mask, 1, ids_restore)
            return torch.gather(x, 1, ids_keep), mask, ids_restore

        backbone.random_masking = random_masking
        try:
            yield
        finally:
            del backbone.random_masking     # back to the class's method

    def patch_mask(self, noise: torch.Tensor) -> torch.Tensor:
        """The (B, L) 0/1 mask (1 = removed) that ``noise`` gives."""
        length = noise.shape[1]
        len_keep = int(length * (1 - self.algorithm.backbone.mask_ratio))
        rank = torch.argsort(torch.argsort(noise, dim=1), dim=1)
        return (rank >= len_keep).float()

    def encode(self, inputs: torch.Tensor,
               mask: torch.Tensor) -> torch.Tensor:
        with self._fixed_mask(mask):
            latent, _, _ = self.algorithm.backbone(inputs)
        return latent

    def reconstruction_loss(self, inputs, mask, target):
        algo = self.algorithm
        with self._fixed_mask(mask):
            latent, patch_mask, ids_restore = algo.backbone(inputs)
        pred = algo.neck(latent, ids_restore)
        loss = algo.head.loss(pred, target, patch_mask)
        return loss, latent, pred

    def reconstruct_image(self, pred, inputs, mask):
        head = self.algorithm.head
        target = head.patchify(inputs)
        if head.norm_pix:   # undo the per-patch normalisation of the target
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            pred = pred * (var + 1.e-6)**.5 + mean
        patch_mask = self.patch_mask(mask).unsqueeze(-1).to(pred)
        return head.unpatchify(pred * patch_mask + target * (1 - patch_mask))


@register_mim_interface(SimMIM)
class SimMIMInterface(MIMInterface):
    """SimMIM: the mask comes with the data (``SimMIMMaskGenerator``)."""

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
