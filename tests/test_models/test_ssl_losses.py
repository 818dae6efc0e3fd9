"""The survey's contrastive objectives (aemim_mm.models.adversarial_ssl.
losses) against the formulas written out anchor by anchor, float64: positive
sum / mean, per-pair weights and stop-gradients, the hard-negative
denominator in each of its forms."""
import math
from typing import List, Optional

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from aemim_mm.models.adversarial_ssl.losses import (HardNegatives, info_nce,
                                                    nt_xent, supcon)

T = 0.5


def _views(num_views: int, num: int = 3, seed: int = 0) -> List[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [F.normalize(torch.randn(num, 6, generator=gen,
                                    dtype=torch.float64), dim=1)
            .requires_grad_() for _ in range(num_views)]


def reference(views, temperature, stop=None, weights=None, mean=False,
              hn: Optional[HardNegatives] = None) -> torch.Tensor:
    """The loss, one anchor at a time."""
    num_views, num = len(views), views[0].shape[0]
    flat = [(v, i) for v in range(num_views) for i in range(num)]
    total = 0
    for v, i in flat:
        def row(detach: bool):
            """Logits and -log terms of anchor (v, i) against every (u, j)."""
            anchor = views[v][i]
            logits = {(u, j): anchor @ (views[u][j].detach() if detach
                                        else views[u][j]) / temperature
                      for u, j in flat}
            if hn is None:
                lse = torch.logsumexp(torch.stack(
                    [s for k, s in logits.items() if k != (v, i)]), 0)
                return {k: lse - s for k, s in logits.items()}, None
            shift = max(logits.values()).detach() if hn.row_shift else 0
            exps = {k: torch.exp(s - shift) for k, s in logits.items()}
            positives = [(u, i) for u in range(num_views) if u != v]
            negatives = [(u, j) for u, j in flat if j != i]
            pos = sum(exps[k] for k in positives) / len(positives)
            return exps, (logits, shift, pos, negatives)

        def terms(detach: bool):
            first, extra = row(detach)
            if extra is None:
                return first
            exps, (logits, shift, pos, negatives) = first, extra
            n = len(negatives)

            def mean_weight(anchor_v, anchor_i, over):
                other, _ = _row_exps(views, anchor_v, anchor_i, temperature,
                                     hn, detach)
                negs = [other[(u, j)] for u, j in flat if j != anchor_i]
                return sum(x**hn.beta for x in negs) / over

            if hn.weight_mean == 'negatives':     # HCL: the anchor's
                denom_w = {k: mean_weight(v, i, n) for k in negatives}
            else:          # the candidate's whole row (A-InfoNCE's code)
                denom_w = {k: mean_weight(*k, len(flat)) for k in negatives}
            reweighted = sum(exps[k]**hn.beta * exps[k] / denom_w[k]
                             for k in negatives)
            ng = (-hn.tau_plus * n * pos + reweighted) / (1 - hn.tau_plus)
            ng = torch.clamp(ng, min=n * math.exp(-1 / temperature))
            return {k: -(logits[k] - shift) + torch.log(pos + ng)
                    for k in logits}

        normal, detached = terms(False), terms(True)
        positives = [u for u in range(num_views) if u != v]
        anchor_total = 0
        for u in positives:
            use_sg = stop is True or (stop is not None and stop is not False
                                      and stop[v][u])
            term = (detached if use_sg else normal)[(u, i)]
            weight = 1 if weights is None else weights[v][u]
            anchor_total = anchor_total + weight * term
        total = total + anchor_total / (len(positives) if mean else 1)
    return total / len(flat)


def _row_exps(views, v, i, temperature, hn, detach):
    """exp(logit - shift) of anchor (v, i)'s row (for the weight means)."""
    num_views, num = len(views), views[0].shape[0]
    flat = [(u, j) for u in range(num_views) for j in range(num)]
    anchor = views[v][i]
    logits = {(u, j): anchor @ (views[u][j].detach() if detach
                                else views[u][j]) / temperature
              for u, j in flat}
    shift = max(logits.values()).detach() if hn.row_shift else 0
    return {k: torch.exp(s - shift) for k, s in logits.items()}, shift


def _check(ours: torch.Tensor, ref: torch.Tensor, views) -> None:
    assert_close(ours, ref)
    for a, b in zip(torch.autograd.grad(ours, views, retain_graph=True),
                    torch.autograd.grad(ref, views)):
        assert_close(a, b)


@pytest.mark.parametrize('num_views', [2, 3, 4])
@pytest.mark.parametrize('mean', [False, True])
def test_sum_and_mean_over_positives(num_views, mean):
    views = _views(num_views)
    ours = info_nce(views, T, positives='mean' if mean else 'sum')
    _check(ours, reference(views, T, mean=mean), views)


def test_nt_xent_and_supcon_are_the_two_reductions():
    views = _views(4)
    assert_close(nt_xent(views, T), reference(views, T))
    assert_close(supcon(views, T, base_temperature=0.07),
                 T / 0.07 * reference(views, T, mean=True))


def test_pair_weights_and_pair_stop_gradients():
    views = _views(3)
    weights = [[1., 1., 0.2], [1., 1., 0.2], [0.8, 0.8, 1.]]
    stop = [[False, False, True], [False, False, True], [True, True, False]]
    ours = info_nce(views, T, stop_grad=stop, pair_weights=weights)
    _check(ours, reference(views, T, stop=stop, weights=weights), views)
    ours = info_nce(views, T, stop_grad=True, pair_weights=weights)
    _check(ours, reference(views, T, stop=True, weights=weights), views)


@pytest.mark.parametrize('row_shift', [False, True])
@pytest.mark.parametrize('weight_mean', ['negatives', 'candidate'])
@pytest.mark.parametrize('beta', [0.0, 1.0, 2.0])
def test_hard_negatives(row_shift, weight_mean, beta):
    views = _views(3)
    hn = HardNegatives(beta=beta, tau_plus=0.12, row_shift=row_shift,
                       weight_mean=weight_mean)
    ours = info_nce(views, T, hard_negatives=hn)
    _check(ours, reference(views, T, hn=hn), views)


def test_hard_negatives_with_the_candidates_denominator():
    """A-InfoNCE's SupCon divides term (a, p) by p's own pos + Ng."""
    views = _views(3)
    hn = HardNegatives(beta=1.0, tau_plus=0.12, row_shift=True,
                       weight_mean='candidate', denominator='candidate')
    ours = info_nce(views, T, hard_negatives=hn)
    # written out: the anchor's logit, the positive's denominator
    num = views[0].shape[0]
    flat = torch.cat(views)
    logits = flat @ flat.t() / T
    logits = logits - logits.max(1, keepdim=True).values.detach()
    exps = logits.exp()
    same = (torch.arange(3 * num)[:, None] % num ==
            torch.arange(3 * num)[None] % num)
    eye = torch.eye(3 * num, dtype=torch.bool)
    positive, negative = same & ~eye, ~same
    pos = (exps * positive).sum(1) / positive.sum(1)
    imp = exps * negative
    weighted = (imp * exps * negative / imp.mean(1)[None, :]).sum(1)
    n = int(negative.sum(1)[0])
    ng = ((-0.12 * n * pos + weighted) / 0.88).clamp(min=n * math.exp(-2))
    terms = -(logits - torch.log(pos + ng)[None, :])
    ref = (terms * positive).sum(1).mean()
    _check(ours, ref, views)


def test_hard_negatives_without_hardness_or_prior_is_the_softmax():
    """HCL's formula with beta 0 and tau+ 0: the softmax's denominator (two
    views: the one positive plus every negative), above the clamp."""
    views = _views(2, num=4)
    hn = HardNegatives(beta=0.0, tau_plus=0.0, weight_mean='negatives')
    ours = info_nce(views, T, hard_negatives=hn)
    assert_close(ours, nt_xent(views, T))


def test_bad_reduction_is_refused():
    with pytest.raises(ValueError, match=r"positives must be 'sum' or 'mean'"):
        info_nce(_views(2), T, positives='max')
