"""Key converters between encoder state dicts.

Each converter exists as a *key map* (``keys -> [(new key, source key)]``,
which the export uses to report where every exported tensor came from) and as
a state-dict function applying it:

:func:`mmpretrain_vit_to_timm` / :func:`timm_vit_key_map`
    Rename the weights of mmpretrain's ``VisionTransformer`` / ``MAEViT`` to
    the names of timm's ``VisionTransformer`` (:data:`VIT_RENAMES`).
:func:`timm_vit_to_mmpretrain` / :func:`timm_vit_key_map`
    Its inverse (``TimmMAEViT`` -> ``VisionTransformer``).
:func:`beit_pretrain_to_beit_vit` / :func:`beit_pretrain_key_map`
    BEiT v1 / v2's ``BEiTPretrainViT`` (and ``CAEPretrainViT``) ->
    ``BEiTViT`` with per-layer relative position bias, the fine-tuning
    backbone of mmpretrain's BEiT / BEiT v2 / CAE benchmarks
    (:data:`BEIT_SHARED_REL_POS_BIAS`).

A key without a renaming rule raises :class:`CheckpointFormatError`.
Every other encoder this package exports (``SimMIMSwinTransformer`` ->
``SwinTransformer``, ``MAEHiViT`` / ``iTPNHiViT`` -> ``HiViT``,
``MixMIMPretrainTransformer`` -> ``MixMIMTransformer``) keeps its key names:
the pre-training backbones subclass their classification backbone and only
add pre-training parameters, which the export drops.
"""
import re
from collections import OrderedDict
from typing import List, Mapping, Sequence, Tuple

import torch

__all__ = [
    'BEIT_SHARED_REL_POS_BIAS', 'VIT_RENAMES', 'CheckpointFormatError',
    'KeyMap', 'beit_pretrain_key_map', 'beit_pretrain_to_beit_vit',
    'mmpretrain_vit_to_timm', 'timm_vit_key_map', 'timm_vit_to_mmpretrain'
]

#: ``[(new key, source key), ...]``, in output order; a source key may feed
#: several new keys (a shared tensor copied to each layer).
KeyMap = List[Tuple[str, str]]

# mmpretrain VisionTransformer key prefix <-> timm VisionTransformer prefix.
# ``{n}`` is a block index. The final norm is ``ln1`` in mmpretrain (not to be
# confused with ``layers.N.ln1``, the first norm of a block): the patterns are
# anchored at the start of the key.
VIT_RENAMES: Tuple[Tuple[str, str], ...] = (
    ('cls_token', 'cls_token'),
    ('pos_embed', 'pos_embed'),
    ('patch_embed.projection.', 'patch_embed.proj.'),
    ('layers.{n}.ln1.', 'blocks.{n}.norm1.'),
    ('layers.{n}.attn.qkv.', 'blocks.{n}.attn.qkv.'),
    ('layers.{n}.attn.proj.', 'blocks.{n}.attn.proj.'),
    ('layers.{n}.ln2.', 'blocks.{n}.norm2.'),
    ('layers.{n}.ffn.layers.0.0.', 'blocks.{n}.mlp.fc1.'),
    ('layers.{n}.ffn.layers.1.', 'blocks.{n}.mlp.fc2.'),
    ('ln1.', 'norm.'),
)
_SUFFIXES = ('weight', 'bias')

#: BEiT's shared relative position bias (``BEiTPretrainViT`` with
#: ``use_shared_rel_pos_bias=True``, mmpretrain's BEiT v1 / v2 pre-training
#: default) -> the per-layer bias of ``BEiTViT`` with
#: ``use_rel_pos_bias=True, use_shared_rel_pos_bias=False`` (the fine-tuning
#: configs): each shared key is copied to every layer ``{n}``. This is the
#: BEiT paper's fine-tuning initialisation, and what ``BEiTViT``'s own
#: load-time hook does for a non-strict load; the export does it ahead, so that
#: the file loads strictly and says what it holds. The index buffers are equal
#: (same window) and are copied the same way.
BEIT_SHARED_REL_POS_BIAS: Tuple[Tuple[str, str], ...] = (
    ('rel_pos_bias.relative_position_bias_table',
     'layers.{n}.attn.relative_position_bias_table'),
    ('rel_pos_bias.relative_position_index',
     'layers.{n}.attn.relative_position_index'),
)


class CheckpointFormatError(ValueError):
    """The checkpoint is not a MIM pre-training checkpoint this package reads.

    Raised by the key converters for a key without a renaming rule, and by
    :func:`aemim_mm.apis.export.export_encoder` for a checkpoint it cannot
    export.
    """


def _compile(template: str) -> 're.Pattern':
    """A regex matching ``template`` at a key's start; ``{n}`` is an index."""
    return re.compile('^' + re.escape(template).replace(r'\{n\}', r'(\d+)'))


_MM_TO_TIMM = [(_compile(a), b) for a, b in VIT_RENAMES]
_TIMM_TO_MM = [(_compile(b), a) for a, b in VIT_RENAMES]


def _rename_keys(keys: Sequence[str], rules, source: str,
                 target: str) -> KeyMap:
    """Rename every key by the first rule matching it.

    Returns:
        ``[(new key, key), ...]`` in the order of ``keys``.

    Raises:
        CheckpointFormatError: For a key no rule renames.
    """
    out: KeyMap = []
    for key in keys:
        for pattern, template in rules:
            match = pattern.match(key)
            if match is None:
                continue
            rest = key[match.end():]
            # whole-name rules (cls_token) must match the whole key; prefix
            # rules leave exactly a weight / bias leaf
            if (not template.endswith('.') and rest) or (
                    template.endswith('.') and rest not in _SUFFIXES):
                continue
            new = template.replace('{n}', match.group(1)) if match.groups() \
                else template
            out.append((new + rest, key))
            break
        else:
            known = [a if source == 'mmpretrain' else b
                     for a, b in VIT_RENAMES]
            raise CheckpointFormatError(
                f'Cannot rename {source} ViT key {key!r} to {target} names: '
                f'no rule for it. Known {source} prefixes: {known} '
                f'(followed by {"/".join(_SUFFIXES)}).')
    return out


def _apply(key_map: KeyMap, state_dict: Mapping[str, torch.Tensor]
           ) -> 'OrderedDict[str, torch.Tensor]':
    """The state dict ``key_map`` describes (shared sources are cloned)."""
    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    used = set()
    for new, old in key_map:
        value = state_dict[old]
        out[new] = value.clone() if old in used else value
        used.add(old)
    return out


def _rename(state_dict: Mapping[str, torch.Tensor], rules, source: str,
            target: str) -> 'OrderedDict[str, torch.Tensor]':
    """Rename every key of ``state_dict`` by the first rule matching it.

    Raises:
        CheckpointFormatError: For a key no rule renames.
    """
    return _apply(_rename_keys(list(state_dict), rules, source, target),
                  state_dict)


def timm_vit_key_map(keys: Sequence[str], to: str = 'mmpretrain') -> KeyMap:
    """The renaming between timm and mmpretrain ViT key names.

    Args:
        keys: Encoder keys, no prefix: timm names when ``to='mmpretrain'``,
            mmpretrain names when ``to='timm'``.
        to: ``'mmpretrain'`` or ``'timm'``: the names to rename to.

    Returns:
        ``[(new key, key), ...]`` by :data:`VIT_RENAMES`.

    Raises:
        ValueError: If ``to`` is neither.
        CheckpointFormatError: For a key without a renaming rule.
    """
    if to == 'mmpretrain':
        return _rename_keys(keys, _TIMM_TO_MM, 'timm', 'mmpretrain')
    if to == 'timm':
        return _rename_keys(keys, _MM_TO_TIMM, 'mmpretrain', 'timm')
    raise ValueError(f"to must be 'mmpretrain' or 'timm', got {to!r}.")


def beit_pretrain_key_map(keys: Sequence[str]) -> KeyMap:
    """The key map of :func:`beit_pretrain_to_beit_vit`.

    Args:
        keys: ``BEiTPretrainViT`` / ``CAEPretrainViT`` encoder keys, no
            prefix, pre-training-only parameters (``mask_token``) removed.

    Returns:
        ``[(new key, key), ...]``: every key under its own name, except the
        shared relative position bias (:data:`BEIT_SHARED_REL_POS_BIAS`),
        replaced by one copy per layer.

    Raises:
        CheckpointFormatError: If the shared bias table comes without its
            index (or the other way round), there are no ``layers.N.*``
            keys to copy it to, or a layer already has its own bias.
    """
    keys = list(keys)
    shared = [old for old, _ in BEIT_SHARED_REL_POS_BIAS]
    present = [k for k in shared if k in keys]
    if not present:
        return [(k, k) for k in keys]
    if len(present) != len(shared):
        raise CheckpointFormatError(
            f'BEiT encoder: the shared relative position bias needs both '
            f'{shared}, found only {present}.')
    layers = sorted({int(m.group(1)) for m in
                     (re.match(r'layers\.(\d+)\.', k) for k in keys) if m})
    if not layers:
        raise CheckpointFormatError(
            'BEiT encoder: a shared relative position bias '
            f"({shared[0]!r}) but no 'layers.N.*' keys to copy it to.")
    out: KeyMap = [(k, k) for k in keys if k not in shared]
    own = [new for new, _ in out if new.endswith(
        '.attn.relative_position_bias_table')]
    if own:
        raise CheckpointFormatError(
            'BEiT encoder: both a shared relative position bias '
            f'({shared[0]!r}) and per-layer ones ({own[:2]}); expected one.')
    for n in layers:
        out += [(template.replace('{n}', str(n)), old)
                for old, template in BEIT_SHARED_REL_POS_BIAS]
    return out


def beit_pretrain_to_beit_vit(
        state_dict: Mapping[str, torch.Tensor]
) -> 'OrderedDict[str, torch.Tensor]':
    """Convert a BEiT / CAE pre-training encoder to ``BEiTViT`` names.

    Args:
        state_dict: ``BEiTPretrainViT`` / ``CAEPretrainViT`` weights, no
            prefix, without ``mask_token``.

    Returns:
        The weights of ``BEiTViT(use_rel_pos_bias=True,
        use_shared_rel_pos_bias=False)`` where the source has a shared
        relative position bias (copied to each layer,
        :data:`BEIT_SHARED_REL_POS_BIAS`); otherwise the same dict.

    Raises:
        CheckpointFormatError: See :func:`beit_pretrain_key_map`.
    """
    return _apply(beit_pretrain_key_map(list(state_dict)), state_dict)


def mmpretrain_vit_to_timm(
        state_dict: Mapping[str, torch.Tensor]
) -> 'OrderedDict[str, torch.Tensor]':
    """Rename a ``VisionTransformer`` / ``MAEViT`` state dict to timm names.

    Args:
        state_dict: Encoder weights under mmpretrain names, no prefix.

    Returns:
        The same tensors under timm ``VisionTransformer`` names.

    Raises:
        CheckpointFormatError: For a key without a renaming rule (e.g. the
            fine-tuning norm ``ln2`` or layer-scale parameters).
    """
    return _rename(state_dict, _MM_TO_TIMM, 'mmpretrain', 'timm')


def timm_vit_to_mmpretrain(
        state_dict: Mapping[str, torch.Tensor]
) -> 'OrderedDict[str, torch.Tensor]':
    """Rename a timm ``VisionTransformer`` / ``TimmMAEViT`` state dict.

    The inverse of :func:`mmpretrain_vit_to_timm`.

    Args:
        state_dict: Encoder weights under timm names, no prefix.

    Returns:
        The same tensors under mmpretrain ``VisionTransformer`` names.

    Raises:
        CheckpointFormatError: For a key without a renaming rule.
    """
    return _rename(state_dict, _TIMM_TO_MM, 'timm', 'mmpretrain')
