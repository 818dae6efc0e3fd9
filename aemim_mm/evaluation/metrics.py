"""Accuracy on a class subset and ImageNet-Real accuracy (``METRICS``).

mmpretrain's ``Accuracy`` scores all classes; ImageNet-A/-R restrict a
1000-way classifier to their 200 classes, and ImageNet-Real accepts any of
several labels. Both metrics below feed mmpretrain's ``Accuracy.calculate``.
"""
from typing import List, Optional, Sequence, Union

import torch
from mmengine.evaluator import BaseMetric
from mmpretrain.evaluation import Accuracy
from mmpretrain.registry import METRICS

from ..datasets.imagenet_subsets import SUBSETS, subset_indices


def restrict_to_subset(scores: torch.Tensor, labels: torch.Tensor,
                       indices: Sequence[int]):
    """Restrict (N, C) scores to the classes ``indices``; remap the labels.

    Args:
        scores: Scores (logits or probabilities) over all C classes.
        labels: (N,) labels in the full C-class index space; each must be in
            ``indices``.
        indices: The subset's class indices (any order; the subset's own
            order is that of ``indices``).

    Returns:
        ``(scores[:, indices], positions)`` where ``positions[i]`` is the
        position of ``labels[i]`` in ``indices``.

    Raises:
        ValueError: If a label is not in the subset.
    """
    index = torch.as_tensor(list(indices), dtype=torch.long)
    lookup = torch.full((scores.shape[1], ), -1, dtype=torch.long)
    lookup[index] = torch.arange(len(index))
    positions = lookup[labels.long()]
    if (positions < 0).any():
        bad = labels[positions < 0].unique().tolist()[:5]
        raise ValueError(f'labels {bad} are not in the class subset')
    return scores[:, index], positions


@METRICS.register_module()
class SubsetAccuracy(Accuracy):
    """Top-k accuracy with the scores restricted to a class subset.

    Args:
        subset: ``'imagenet-a'``, ``'imagenet-r'`` (their 200 ImageNet-1K
            classes) or a list of class indices.
        topk, thrs, collect_device, prefix: As in mmpretrain's ``Accuracy``.
    """

    def __init__(self, subset: Union[str, Sequence[int]], topk=(1, ),
                 thrs=0., collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(topk=topk, thrs=thrs, collect_device=collect_device,
                         prefix=prefix)
        if isinstance(subset, str):
            if subset not in SUBSETS:
                raise ValueError(f'subset must be one of {sorted(SUBSETS)} or '
                                 f'a list of class indices, got {subset!r}')
            self.indices = subset_indices(subset)
        else:
            self.indices = [int(i) for i in subset]

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Keep the restricted scores and the remapped labels."""
        for sample in data_samples:
            scores, position = restrict_to_subset(
                sample['pred_score'].cpu()[None], sample['gt_label'].cpu(),
                self.indices)
            self.results.append(dict(pred_score=scores[0], gt_label=position))


@METRICS.register_module()
class RealAccuracy(BaseMetric):
    """ImageNet-Real top-1: correct when the argmax is any of the labels."""

    default_prefix: Optional[str] = 'real'

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Store whether each top-1 prediction is one of the labels."""
        for sample in data_samples:
            pred = int(sample['pred_score'].argmax())
            labels = set(sample['gt_label'].view(-1).tolist())
            self.results.append(pred in labels)

    def compute_metrics(self, results: List[bool]) -> dict:
        """Percentage of correct predictions."""
        return dict(top1=100.0 * sum(results) / max(len(results), 1))
