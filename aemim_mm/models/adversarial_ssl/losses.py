"""The contrastive objectives the instance-wise adversaries share.

:func:`info_nce` is the InfoNCE of several views of the same instances over
a batch, with the variations the survey's methods use:

* positives summed per anchor (SimCLR's and RoCL's NT-Xent,
  :func:`nt_xent`) or averaged (SupCon, as AdvCL computes it,
  :func:`supcon`);
* similarities ``z @ sg(z).T`` (RoCL's ``pairwise_similarity``: gradients
  reach a similarity through its anchor only), for all pairs or per pair of
  views (A-InfoNCE's asymmetric pairs);
* a weight per pair of views (A-InfoNCE's inferior-positive weighting);
* hard negatives (A-InfoNCE's HCL-style denominator, :class:`HardNegatives`).

With two views and nothing else it is SimCLR's loss as mmpretrain's
``SimCLR`` computes it.
"""
import math
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch
from torch import Tensor

PairMatrix = Union[Sequence[Sequence[float]], Tensor]


@dataclass
class HardNegatives:
    """A-InfoNCE's hard-negative denominator (HCL's, as its code has it).

    For an anchor with mean positive ``pos`` (of ``exp(s / T)``) and
    negatives ``n_j``: weights ``n_j ** beta`` normalised by their mean
    (``weight_mean``), ``Ng = (-tau_plus * N * pos + sum_j w_j n_j) / (1 -
    tau_plus)`` clamped below at ``N * e ** (-1 / T)``, and each positive's
    term ``-log(e^{s_p / T} / (pos + Ng))``; ``N`` is the number of
    negatives.

    Attributes:
        beta: The hardness exponent (A-InfoNCE's shells: 1.0).
        tau_plus: The positive-class prior (shells: 0.12).
        row_shift: Subtract each row's (detached) maximum logit before the
            exponential, as A-InfoNCE's SupCon (AdvCL) does and its RoCL loss
            does not; the clamp is not shift-invariant, so this is kept.
        weight_mean: ``'negatives'``: each weight divided by the mean
            weight of the anchor's negatives (HCL's formula: with ``beta=0``
            and ``tau_plus=0`` the denominator is the softmax's);
            ``'candidate'``: by the mean over the whole row (every candidate,
            the non-negatives counting 0) of the candidate's own row, as
            A-InfoNCE's code computes it (``(imp * neg) / imp.mean(dim=-1)``
            broadcasts over the last axis).
        denominator: ``'anchor'``: a term's denominator is its anchor's
            ``pos + Ng``; ``'candidate'``: the candidate's, as A-InfoNCE's
            SupCon computes it (``exp_logits / (pos + Ng)`` broadcasts over
            the last axis; its RoCL loss reshapes and uses the anchor's).
    """
    beta: float = 1.0
    tau_plus: float = 0.1
    row_shift: bool = False
    weight_mean: str = 'negatives'
    denominator: str = 'anchor'


def info_nce(views: Sequence[Tensor],
             temperature: float,
             stop_grad: Union[bool, PairMatrix] = False,
             pair_weights: Optional[PairMatrix] = None,
             positives: str = 'sum',
             hard_negatives: Optional[HardNegatives] = None) -> Tensor:
    """InfoNCE of ``V`` views of ``N`` instances over the batch.

    Sample ``i`` of every view is one instance. Each embedding (an anchor)
    is contrasted with every other embedding: its positives are the other
    views of its instance, the rest negatives. A positive's term is
    ``-log`` of its softmax probability (over everything but the anchor).

    Args:
        views: ``V >= 2`` tensors (N, D), L2-normalised, same N.
        temperature: The softmax temperature (``> 0``).
        stop_grad: ``True``: similarities ``z @ sg(z).T`` for every pair;
            a ``V x V`` matrix of booleans: for the pairs (anchor view,
            positive view) it marks, the term is computed so (its value is
            the same).
        pair_weights: ``V x V`` weights of the terms (anchor view, positive
            view); ``None``: 1.
        positives: ``'sum'`` (each anchor's weighted terms summed; NT-Xent)
            or ``'mean'`` (divided by its number of positives; SupCon).
        hard_negatives: A-InfoNCE's denominator (:class:`HardNegatives`);
            ``None``: the softmax's.

    Returns:
        The mean over anchors (a scalar).
    """
    num_views, num = len(views), views[0].shape[0]
    total = num_views * num
    z = torch.cat(list(views))                          # (V N, D) view-major
    device = z.device
    view = torch.arange(total, device=device) // num
    instance = torch.arange(total, device=device) % num
    self_mask = torch.eye(total, dtype=torch.bool, device=device)
    positive = (instance[:, None] == instance[None, :]) & ~self_mask

    def terms(others: Tensor) -> Tensor:
        logits = z @ others.t() / temperature
        if hard_negatives is None:
            return -logits.masked_fill(self_mask, float('-inf')).log_softmax(1)
        return _hard_negative_terms(logits, positive, self_mask,
                                    temperature, hard_negatives)

    if isinstance(stop_grad, bool):
        losses = terms(z.detach() if stop_grad else z)
    else:
        sg = torch.as_tensor(stop_grad, dtype=torch.bool, device=device)
        use_sg = sg[view[:, None], view[None, :]]
        losses = torch.where(use_sg, terms(z.detach()), terms(z))
    weights = positive.to(z.dtype)
    if pair_weights is not None:
        pw = torch.as_tensor(pair_weights, dtype=z.dtype, device=device)
        weights = weights * pw[view[:, None], view[None, :]]
    per_anchor = (weights * losses.masked_fill(~positive, 0)).sum(1)
    if positives == 'mean':
        per_anchor = per_anchor / (num_views - 1)
    elif positives != 'sum':
        raise ValueError(f"positives must be 'sum' or 'mean', got "
                         f'{positives!r}.')
    return per_anchor.mean()


def _hard_negative_terms(logits: Tensor, positive: Tensor, self_mask: Tensor,
                         temperature: float, hn: HardNegatives) -> Tensor:
    """``-log(e^{s_ap} / (pos_a + Ng_a))`` for every (anchor a, candidate p)
    (see :class:`HardNegatives`)."""
    if hn.row_shift:
        logits = logits - logits.max(dim=1, keepdim=True).values.detach()
    exp = logits.exp()
    negative = ~(positive | self_mask)
    num_neg = negative.sum(1)[0]
    pos = (exp * positive).sum(1) / positive.sum(1)
    neg = exp * negative
    imp = torch.where(negative, neg.clamp_min(1e-30).pow(hn.beta),
                      torch.zeros_like(neg))
    if hn.weight_mean == 'candidate':
        reweighted = (imp * neg / imp.mean(1)[None, :]).sum(1)
    elif hn.weight_mean == 'negatives':
        reweighted = (imp * neg).sum(1) / (imp.sum(1) / num_neg)
    else:
        raise ValueError("weight_mean must be 'negatives' or 'candidate', "
                         f'got {hn.weight_mean!r}.')
    ng = (-hn.tau_plus * num_neg * pos + reweighted) / (1 - hn.tau_plus)
    ng = ng.clamp(min=float(num_neg) * math.exp(-1 / temperature))
    log_denominator = torch.log(pos + ng)
    if hn.denominator == 'candidate':
        return -(logits - log_denominator[None, :])
    if hn.denominator != 'anchor':
        raise ValueError("denominator must be 'anchor' or 'candidate', got "
                         f'{hn.denominator!r}.')
    return -(logits - log_denominator[:, None])


def nt_xent(views: Sequence[Tensor], temperature: float,
            stop_grad_others: bool = False) -> Tensor:
    """SimCLR's NT-Xent generalised to several views: each anchor's terms
    summed over its positives, the mean over anchors. With two views it is
    SimCLR's loss (one positive per anchor); with three it is RoCL's
    (``NT_xent`` with ``adv_type='Rep'``: two positives per anchor).

    Args:
        views: ``V >= 2`` tensors (N, D), L2-normalised, same N.
        temperature: The softmax temperature.
        stop_grad_others: Similarities ``z @ sg(z).T`` (RoCL's).
    """
    return info_nce(views, temperature, stop_grad=stop_grad_others)


def supcon(views: Sequence[Tensor], temperature: float,
           base_temperature: float = 0.07, **kwargs) -> Tensor:
    """SupCon without labels, as AdvCL computes it: each anchor's terms
    averaged over its positives, times ``temperature / base_temperature``
    (SupConLoss's factor: 0.5 / 0.07 in AdvCL); ``kwargs`` as
    :func:`info_nce`'s."""
    return (temperature / base_temperature) * info_nce(
        views, temperature, positives='mean', **kwargs)
