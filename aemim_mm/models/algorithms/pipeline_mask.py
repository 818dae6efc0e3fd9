"""Interfaces of the algorithms whose mask comes with the data.

mmpretrain's ``BEiTMaskGenerator`` puts one mask per sample into the data
samples (``data_sample.mask``, (h, w), 1 = masked); the same mask is used by
the clean pass, every attack step and the adversarial pass.

Three of them take two views of each image (``TwoNormDataPreprocessor``):
``inputs[0]`` is the model's view, ``inputs[1]`` the tokenizer's. Only the
model's view is attacked; the tokenizer reads the clean ``inputs[1]``, once
per iteration, without gradient.
"""
from typing import Any, List, Sequence, Tuple

import torch
from torch import nn

from mmpretrain.models.selfsup import (BEiT, CAE, BEiTPretrainViT,
                                       CAEPretrainViT, MaskFeat, MaskFeatViT,
                                       iTPNHiViT)
from mmpretrain.structures import DataSample
from ..randomness import SampleRandomness
from .base import MIMInterface, check_backbone, register_mim_interface


def _needs_target_generator(algorithm: nn.Module, example: str) -> None:
    if getattr(algorithm, 'target_generator', None) is None:
        raise ValueError(
            f'{type(algorithm).__name__} needs a `target_generator` (e.g. '
            f'{example}), got None.')


def data_mask_image(inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``inputs`` with the masked patches (``mask`` (B, h, w) = 1) set to 0,
    the data preprocessor's mean colour."""
    pixel_mask = mask[:, None].to(inputs)
    pixel_mask = nn.functional.interpolate(pixel_mask, size=inputs.shape[-2:])
    return inputs * (1 - pixel_mask)


class DataMaskInterface(MIMInterface):
    """An algorithm whose mask comes with the data samples.

    Subclasses name their backbones in :attr:`BACKBONES` and, with two
    views, set :attr:`TWO_VIEWS`.
    """

    #: Exact backbone types the interface handles.
    BACKBONES: Tuple[type, ...] = ()
    #: Whether ``inputs`` is ``[model view, tokenizer view]``.
    TWO_VIEWS = False

    def __init__(self, algorithm: nn.Module) -> None:
        super().__init__(algorithm)
        check_backbone(algorithm, self.BACKBONES)

    def model_input(self, inputs: Any) -> torch.Tensor:
        if not self.TWO_VIEWS:
            return inputs
        if not (isinstance(inputs, Sequence) and len(inputs) == 2):
            raise ValueError(
                f'{type(self.algorithm).__name__} takes two views, inputs = '
                '[model view, tokenizer view] (TwoNormDataPreprocessor); got '
                f'{type(inputs).__name__}.')
        return inputs[0]

    def tokenizer_input(self, inputs: Any) -> torch.Tensor:
        """The tokenizer's (clean) view."""
        self.model_input(inputs)        # checks the two views
        return inputs[1]

    def sample_mask(self, inputs: Any, data_samples: List[DataSample],
                    rng: SampleRandomness) -> torch.Tensor:
        """The data's masks, stacked: (B, h, w), 1 = masked."""
        return torch.stack([sample.mask for sample in data_samples])

    @staticmethod
    def token_mask(mask: torch.Tensor) -> torch.Tensor:
        """The mask as (B, L) booleans."""
        return mask.flatten(1).bool()

    def reconstruct_image(self, pred, inputs, mask):
        """The masked input (visible patches; masked ones at the mean
        colour): token and feature targets have no image to show."""
        return data_mask_image(inputs, mask)


@register_mim_interface(MaskFeat)
class MaskFeatInterface(DataMaskInterface):
    """MaskFeat: HOG features of the clean image as target (``HOGGenerator``).
    """

    BACKBONES = (MaskFeatViT, )

    def __init__(self, algorithm: nn.Module) -> None:
        super().__init__(algorithm)
        _needs_target_generator(algorithm, "dict(type='HOGGenerator')")

    def compute_target(self, inputs, data_samples):
        return self.algorithm.target_generator(inputs)

    def encode(self, inputs, mask):
        return self.algorithm.backbone(inputs, self.token_mask(mask))

    def reconstruction_loss(self, inputs, mask, target):
        algo = self.algorithm
        token_mask = self.token_mask(mask)
        latent = algo.backbone(inputs, token_mask)
        num, length, dims = latent.shape
        pred = algo.neck((latent.view(num * length, dims), ))
        pred = pred[0].view(num, length, -1)
        loss = algo.head.loss(pred[:, 1:], target, token_mask)
        return loss, latent, pred


@register_mim_interface(BEiT)
class BEiTInterface(DataMaskInterface):
    """BEiT v1 (DALL-E tokens, no neck) and v2 (VQKD tokens, ``BEiTV2Neck``).

    The target is the tokenizer's codes of the clean ``inputs[1]``. The
    encoder tokens are the backbone's last output. BEiT v2's loss is the sum
    of its two terms (``loss_1 + loss_2``, as mmengine sums them).
    """

    BACKBONES = (BEiTPretrainViT, )
    TWO_VIEWS = True

    def __init__(self, algorithm: nn.Module) -> None:
        super().__init__(algorithm)
        _needs_target_generator(
            algorithm, "dict(type='DALL-E') or dict(type='VQKD')")

    def adapter_scope(self, scope: Tuple[str, ...]) -> Tuple[str, ...]:
        """BEiT v1 has no neck: ``'neck'`` is left out of the scope."""
        if self.algorithm.with_neck:
            return tuple(scope)
        return tuple(name for name in scope if name != 'neck')

    def compute_target(self, inputs, data_samples):
        return self.algorithm.target_generator(self.tokenizer_input(inputs))

    def encode(self, inputs, mask):
        return self.algorithm.backbone(inputs, mask)[-1]

    def reconstruction_loss(self, inputs, mask, target):
        algo = self.algorithm
        outs = algo.backbone(inputs, mask)
        if algo.with_neck:      # BEiT v2
            feats, feats_cls_pt = algo.neck(
                outs, rel_pos_bias=algo.backbone.shared_rel_pos_bias)
            loss_1, loss_2 = algo.head.loss(feats, feats_cls_pt, target, mask)
            return loss_1 + loss_2, outs[-1], feats
        return algo.head.loss(outs[0], target, mask), outs[-1], outs[0]


@register_mim_interface(CAE)
class CAEInterface(DataMaskInterface):
    """CAE: DALL-E tokens of the clean ``inputs[1]`` and the momentum
    teacher's features of the clean, visible-complement ``inputs[0]``.

    The teacher runs and is updated (``momentum_update``) once per iteration,
    in :meth:`prepare`, not once per pass. The teacher mirrors the backbone
    parameter by parameter (CAE updates it by ``zip``), so it gets the same
    adapters as the backbone; it only ever runs with the clean ones.
    """

    BACKBONES = (CAEPretrainViT, )
    TWO_VIEWS = True

    def __init__(self, algorithm: nn.Module) -> None:
        super().__init__(algorithm)
        _needs_target_generator(algorithm, "dict(type='DALL-E')")

    def adapter_scope(self, scope: Tuple[str, ...]) -> Tuple[str, ...]:
        if 'backbone' in scope and 'teacher' not in scope:
            return tuple(scope) + ('teacher', )
        return tuple(scope)

    def prepare(self, inputs, data_samples, rng, update_state=True):
        algo = self.algorithm
        mask = self.sample_mask(inputs, data_samples, rng)
        token_mask = self.token_mask(mask)
        with torch.no_grad():
            latent_target = algo.teacher(self.model_input(inputs),
                                         ~token_mask)[:, 1:, :]
            if update_state:
                algo.momentum_update()
            logits_target = algo.target_generator(
                self.tokenizer_input(inputs))
        return (logits_target, latent_target), mask

    def compute_target(self, inputs, data_samples):
        raise NotImplementedError(
            'CAE computes its target in prepare(): the teacher reads the '
            'mask.')

    def encode(self, inputs, mask):
        return self.algorithm.backbone(inputs, self.token_mask(mask))

    def reconstruction_loss(self, inputs, mask, target):
        algo = self.algorithm
        logits_target, latent_target = target
        token_mask = self.token_mask(mask)
        num = inputs.shape[0]
        unmasked = algo.backbone(inputs, token_mask)
        pos_embed = algo.backbone.pos_embed.expand(num, -1, -1)[:, 1:]
        dims = pos_embed.shape[-1]
        logits, latent_pred = algo.neck(
            unmasked[:, 1:], pos_embed[token_mask].reshape(num, -1, dims),
            pos_embed[~token_mask].reshape(num, -1, dims))
        loss_main, loss_align = algo.head.loss(
            logits.view(-1, logits.shape[-1]), logits_target, latent_pred,
            latent_target, token_mask)
        return loss_main + loss_align, unmasked, logits


class iTPNCLIPInterface(DataMaskInterface):  # noqa: N801 (mmpretrain's name)
    """iTPN, CLIP variant (``backbone.reconstruction_type='clip'``): the
    target is CLIP's patch features of the clean ``inputs[1]``; the mask
    comes with the data; the encoder tokens are the last stage's.

    Served for ``iTPN`` by
    :meth:`~aemim_mm.models.algorithms.mae_family.iTPNInterface.for_algorithm`.
    """

    BACKBONES = (iTPNHiViT, )
    TWO_VIEWS = True

    def __init__(self, algorithm: nn.Module) -> None:
        super().__init__(algorithm)
        _needs_target_generator(algorithm, "dict(type='CLIPGenerator')")

    def compute_target(self, inputs, data_samples):
        clip_feature = self.algorithm.target_generator(
            self.tokenizer_input(inputs))[0]
        return clip_feature[:, 1:, :]

    def encode(self, inputs, mask):
        return self.algorithm.backbone(inputs, mask)[-1]

    def reconstruction_loss(self, inputs, mask, target):
        algo = self.algorithm
        latent = algo.backbone(inputs, mask)
        feats = algo.neck(latent)
        return algo.head.loss(feats, target, mask), latent[-1], feats
