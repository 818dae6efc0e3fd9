"""ADIOS-style learned masks for masked image modeling: SimMIM whose mask a
masking network chooses against it.

ADIOS (Shi et al., ICML 2022; :mod:`.adversarial_ssl.adios`) learns soft
occlusion masks that maximise a joint-embedding loss. In SimMIM the mask is
the task itself: which patches the encoder sees as the mask token and the
head reconstructs. :class:`AdversarialMaskSimMIM` lets ADIOS's masking
network (:class:`~.adversarial_ssl.masking_net.MaskingUNet`, two slots:
masked / visible) choose it::

    score_b = mean over block b of M(x)[masked]           (SimMIM's blocks)
    mask    = top-k(score), k = ceil(ratio * blocks)       (SimMIM's ratio)
    min_theta max_M  L_SimMIM(theta; x, mask)

The forward mask is binary with exactly SimMIM's number of masked blocks
(so the encoder and the loss see what they see in SimMIM); the masking
network gets the straight-through gradient ``dL/dmask`` of each block
(centred per image: the mask's size is fixed). The
fixed ratio takes the place of ADIOS's sparsity penalty (which keeps a soft
mask from covering nothing or everything). The masking network climbs the
loss by the network's own optimiser in a param group of negative learning
rate, as AdPE's state (:class:`~aemim_mm.engine.hooks.AdversarialMaskHook`
checks it); a training forward without that hook is refused.

Wrapped by AEMIM, the mask is the network's mask of the clean image, fixed
for the clean pass, the attack and the adversarial pass; the masking
network climbs the clean reconstruction loss (the adversarial pass takes
the mask as data). docs/adios.md, "ADIOS-style masks in MIM".
"""
import math
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from mmpretrain.models.selfsup import SimMIM
from mmpretrain.registry import MODELS
from ..utils.checks import is_int, is_number
from .adversarial_ssl.adios import occlude, red_overlay
from .attack import normalisation_stats, unit_pixels


@MODELS.register_module()
class AdversarialMaskSimMIM(SimMIM):
    """SimMIM whose mask a masking network chooses (see the module).

    Args:
        mask_net: The masking network's config (``MaskingUNet``; its
            ``img_size`` the images'); two slots, the first the masked
            one. Its parameters are ``mask_net.*`` (dropped by export).
        mask_ratio: The fraction of blocks masked (SimMIM: 0.6).
        mask_patch_size: A block's side in pixels (SimMIM: 32), a multiple
            of the encoder's patch.
        **kwargs: ``SimMIM``'s (backbone, neck, head, data preprocessor).

    Attributes:
        guarded: Set by ``AdversarialMaskHook`` once the optimiser is
            checked to climb the masking network.

    Raises:
        ValueError: For a bad option, naming it.
    """

    def __init__(self, mask_net: dict, mask_ratio: float = 0.6,
                 mask_patch_size: int = 32, **kwargs) -> None:
        if not is_number(mask_ratio) or not 0 < mask_ratio < 1:
            raise ValueError('AdversarialMaskSimMIM: mask_ratio must be a '
                             f'number in (0, 1), got {mask_ratio!r}.')
        if not isinstance(mask_net, dict) or \
                mask_net.get('num_masks', 2) != 2:
            raise ValueError('AdversarialMaskSimMIM: mask_net must be a '
                             'config with two slots (masked, visible), got '
                             f'{mask_net!r}.')
        super().__init__(**kwargs)
        patch = self.backbone.patch_embed.projection.stride[0]
        size = self.backbone.patch_resolution[0] * patch
        if not is_int(mask_patch_size) or mask_patch_size % patch or \
                size % mask_patch_size:
            raise ValueError(
                'AdversarialMaskSimMIM: mask_patch_size must be a multiple '
                f'of the encoder\'s patch ({patch}) that divides the image '
                f'({size} px), got {mask_patch_size!r}.')
        self.mask_ratio, self.mask_patch_size = mask_ratio, mask_patch_size
        self.patch_size = patch
        self.mask_net = MODELS.build(dict(mask_net, num_masks=2))
        self.guarded = False

    def learned_mask(self, inputs: Tensor) -> Tensor:
        """The (B, H/p, W/p) patch mask the masking network chooses for
        ``inputs``: its top ``ceil(ratio * blocks)`` blocks by mean masked
        probability, 1 there and 0 elsewhere, with the straight-through
        gradient to the scores centred per image.

        Raises:
            RuntimeError: In a training forward that no optimiser climbs
                (``AdversarialMaskHook`` not run).
        """
        if self.training and torch.is_grad_enabled() and not self.guarded:
            raise RuntimeError(
                'AdversarialMaskSimMIM: training needs '
                "dict(type='AdversarialMaskHook') in custom_hooks and the "
                'masking network in a param group of negative learning rate '
                "(paramwise_cfg custom_keys={'mask_net': dict(lr_mult=-1.0, "
                'decay_mult=0.0)}); without them it would descend the loss.')
        masked = self.mask_net(inputs)[:, :1]
        scores = F.avg_pool2d(masked, self.mask_patch_size)[:, 0]
        flat = scores.flatten(1)
        k = math.ceil(flat.shape[1] * self.mask_ratio)
        hard = torch.zeros_like(flat).scatter_(
            1, flat.topk(k, dim=1).indices, 1.0)
        # straight-through on the scores centred per image: a mask of k
        # blocks keeps its size, so its gradient moves no image's total
        # (which also keeps the gradient of SimMIM's loss, normalised by
        # the batch's masked pixels, the same in any split of the batch)
        centred = flat - flat.mean(dim=1, keepdim=True)
        mask = (hard + (centred - centred.detach())).view_as(scores)
        scale = self.mask_patch_size // self.patch_size
        return mask.repeat_interleave(scale, 1).repeat_interleave(scale, 2)

    def loss(self, inputs: Tensor, data_samples: Optional[list] = None,
             **kwargs) -> Dict[str, Tensor]:
        """SimMIM's loss under the learned mask (the data's is not used)."""
        mask = self.learned_mask(inputs)
        img_latent = self.backbone(inputs, mask)
        img_rec = self.neck(img_latent[0])
        return dict(loss=self.head.loss(img_rec, inputs, mask))

    @torch.no_grad()
    def visualize(self, inputs: Tensor,
                  data_samples: Optional[list] = None) -> Dict[str, Tensor]:
        """RGB images in [0, 1], (B, 3, H, W): the ``view``, the learned
        ``mask`` in red over it, and the ``masked`` view (masked blocks at
        the data set's mean colour)."""
        mask = self.learned_mask(inputs).float()
        pixels = mask.repeat_interleave(self.patch_size, 1).repeat_interleave(
            self.patch_size, 2)[:, None]
        mean, std = normalisation_stats(self.data_preprocessor, inputs)
        view = unit_pixels(inputs, mean, std).float()
        return dict(view=view, mask=red_overlay(view, pixels, alpha=0.6),
                    masked=unit_pixels(occlude(inputs, pixels), mean,
                                       std).float())

