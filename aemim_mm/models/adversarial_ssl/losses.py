"""The contrastive objective the instance-wise adversaries share.

:func:`nt_xent` is SimCLR's NT-Xent generalised to any number of views of
the same instances (RoCL contrasts three: two augmentations and the
adversarial example). With two views it is SimCLR's loss as mmpretrain's
``SimCLR`` computes it.
"""
from typing import Sequence

import torch
from torch import Tensor


def nt_xent(views: Sequence[Tensor], temperature: float,
            stop_grad_others: bool = False) -> Tensor:
    """Multi-view NT-Xent over L2-normalised embeddings.

    Sample ``i`` of every view is one instance. Each embedding (an anchor)
    is contrasted with every other embedding of the batch: its positives are
    the other views of its instance, the rest are negatives. The loss of an
    anchor is the sum, over its positives, of ``-log`` of the softmax (over
    everything but the anchor itself) of its similarity to that positive;
    the result is the mean over anchors. With two views this is SimCLR's
    loss (one positive per anchor); with three it is RoCL's (``NT_xent``
    with ``adv_type='Rep'``: two positives per anchor).

    Args:
        views: ``V >= 2`` tensors (N, D), L2-normalised, same N.
        temperature: The softmax temperature (``> 0``).
        stop_grad_others: Compute similarities as ``z @ sg(z).T``: gradients
            reach each similarity through its anchor only (RoCL's
            ``pairwise_similarity``, on which A-InfoNCE builds).

    Returns:
        The scalar loss.
    """
    num_views, num = len(views), views[0].shape[0]
    z = torch.cat(list(views))                          # (V N, D) view-major
    others = z.detach() if stop_grad_others else z
    logits = z @ others.t() / temperature
    self_mask = torch.eye(num_views * num, dtype=torch.bool, device=z.device)
    log_prob = logits.masked_fill(self_mask, float('-inf')).log_softmax(1)
    instance = torch.arange(num_views * num, device=z.device) % num
    positive = (instance[:, None] == instance[None, :]) & ~self_mask
    per_anchor = log_prob[positive].reshape(num_views * num, num_views - 1)
    return -per_anchor.sum(1).mean()
