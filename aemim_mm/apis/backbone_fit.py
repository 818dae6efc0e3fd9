"""How an exported encoder fits the backbone of a fine-tuning config.

mmengine's ``Pretrained`` initialisation loads non-strictly: an exported
tensor that the fine-tuning backbone has no place for is dropped with an
info line, and a tensor of the backbone that the export lacks is initialised
anew. Most of these are expected (a pooled-feature norm that only
fine-tuning has); some are not: iTPN-CLIP pre-trains HiViT with layer scale,
and mmpretrain's ``hivit-base`` config builds it without, so loading drops
every ``gamma_1`` / ``gamma_2`` silently. :func:`check_backbone_fit` lists
them before any training starts (``tools/export_encoder.py
--finetune-config``).
"""
import copy
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Tuple, Union

import torch
from torch import nn

__all__ = ['BackboneFit', 'check_backbone_fit', 'finetune_backbone']

_BACKBONE = 'backbone.'


@dataclass
class BackboneFit:
    """What loading an exported encoder into a backbone would do.

    Attributes:
        dropped: Exported keys the backbone has no parameter or buffer for
            (mmengine's loader drops them).
        new: Backbone keys the export does not provide (initialised anew).
        mismatched: Keys present in both with different shapes (key ->
            (exported shape, backbone shape)); mmengine's loader skips them.
    """
    dropped: List[str] = field(default_factory=list)
    new: List[str] = field(default_factory=list)
    mismatched: Dict[str, Tuple[Tuple[int, ...], Tuple[int, ...]]] = field(
        default_factory=dict)

    @property
    def loses_weights(self) -> bool:
        """Whether pre-trained tensors would not reach the backbone."""
        return bool(self.dropped or self.mismatched)

    def summary(self, target: str = 'the backbone') -> str:
        """The report: a warning line per lost group, then the new keys."""
        lines = []
        if self.dropped:
            lines.append(
                f'WARNING: {target} has no place for {len(self.dropped)} '
                f'exported tensors, which loading would drop: '
                f'{_abbreviate(self.dropped)}')
        if self.mismatched:
            lines.append(
                f'WARNING: {len(self.mismatched)} exported tensors have '
                f'another shape in {target}, so loading would skip them: ' +
                _abbreviate([f'{k} {tuple(a)} vs {tuple(b)}'
                             for k, (a, b) in self.mismatched.items()]))
        if self.new:
            lines.append(f'{target} initialises {len(self.new)} tensors '
                         f'anew: {_abbreviate(self.new)}')
        if not lines:
            lines.append(f'every exported tensor loads into {target}, and it '
                         'has no other tensor')
        return '\n'.join(lines)


def _abbreviate(keys: List[str], limit: int = 6) -> str:
    shown = ', '.join(keys[:limit])
    return shown + (f', ... ({len(keys) - limit} more)'
                    if len(keys) > limit else '')


def finetune_backbone(model_cfg: Mapping) -> nn.Module:
    """Build the backbone of a classifier config, without initialising it.

    Args:
        model_cfg: A config's ``model`` (with a ``backbone``).

    Raises:
        ValueError: If the model config has no ``backbone``.
    """
    from mmengine.registry import DefaultScope

    from mmpretrain.registry import MODELS
    if 'backbone' not in model_cfg:
        raise ValueError(
            f'The config\'s model ({model_cfg.get("type")}) has no backbone '
            'to load an encoder into.')
    backbone = copy.deepcopy(dict(model_cfg['backbone']))
    backbone.pop('init_cfg', None)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(backbone)


def check_backbone_fit(exported: Union[Mapping[str, torch.Tensor], str],
                       backbone: nn.Module) -> BackboneFit:
    """Compare an exported encoder with a backbone's state dict.

    Args:
        exported: An ``'mmpretrain'`` export (its path, or its
            ``state_dict`` with the ``backbone.`` prefix).
        backbone: The fine-tuning backbone (e.g. :func:`finetune_backbone`).

    Returns:
        The keys loading would drop, initialise anew or skip.
    """
    if isinstance(exported, str):
        exported = torch.load(exported, map_location='cpu',
                              weights_only=True)['state_dict']
    source = {k[len(_BACKBONE):] if k.startswith(_BACKBONE) else k: v
              for k, v in exported.items()}
    target = backbone.state_dict()
    fit = BackboneFit()
    for key, value in source.items():
        if key not in target:
            fit.dropped.append(key)
        elif tuple(target[key].shape) != tuple(value.shape):
            fit.mismatched[key] = (tuple(value.shape),
                                   tuple(target[key].shape))
    fit.new = [k for k in target if k not in source]
    return fit
