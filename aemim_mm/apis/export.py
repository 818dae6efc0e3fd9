"""Export the encoder of an AEMIM / MAE / SimMIM pre-training checkpoint.

After pre-training, AEMIM keeps only the encoder with its *clean* adapters
(the paper's Sec. 4.1): the decoder (``neck.*``), the pre-training head, the
adversarial adapters (every key whose leaf name starts with ``adv_``, see
:func:`aemim_mm.models.adapters.is_adversarial_key`), SimMIM's ``mask_token``
and the optimiser / message-hub state are dropped.

:func:`export_encoder` reads a checkpoint written by mmengine's ``Runner``
(``{'meta', 'state_dict', 'optimizer', 'message_hub', ...}``) with
:func:`aemim_mm.utils.safe_load.safe_load` and writes up to three files, each
holding tensors only (plus, for the first two, a small ``meta`` dict of
``str`` / ``int``), so that they load with ``torch.load(weights_only=True)``
and no allow-list:

``'mmpretrain'``
    ``{'state_dict': {'backbone.<key>': tensor}, 'meta': {...}}`` with the key
    names of mmpretrain's ``VisionTransformer`` (= ``MAEViT``) or
    ``SwinTransformer`` (= ``SimMIMSwinTransformer`` without ``mask_token``).
    A fine-tuning config loads it with
    ``backbone.init_cfg=dict(type='Pretrained', checkpoint=PATH,
    prefix='backbone.')``. The fixed sin-cos ``pos_embed`` of MAE is kept;
    ``VisionTransformer`` resizes it at load time for another image size.
``'det'``
    The same content as ``'mmpretrain'`` (``meta['format']`` differs): the
    plain-ViT detection backbone of :mod:`aemim_mm.det` subclasses
    mmpretrain's ``VisionTransformer`` and loads it with the same
    ``init_cfg``. Keys it has no use for (e.g. the final norm ``ln1`` when it
    has none) are reported by mmengine's loader as unexpected, and ignored.
    ViT only.
``'timm'``
    A flat timm ``VisionTransformer`` state dict (``cls_token``,
    ``pos_embed``, ``patch_embed.proj.*``, ``blocks.N.*``, ``norm.*``), for
    ``timm_model.load_state_dict(torch.load(PATH))``. ViT only.

Backbones recognised: mmpretrain ``MAEViT`` (``backbone.layers.N.*``),
:class:`aemim_mm.models.TimmMAEViT` (timm names, ``backbone.blocks.N.*``; its
weights are renamed to mmpretrain's names for ``'mmpretrain'`` / ``'det'``;
the two blocks compute the same function, which the tests check) and
``SimMIMSwinTransformer`` (``backbone.stages.*``; ``'mmpretrain'`` only).
"""
import math
import os
import os.path as osp
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch

from ..models.adapters import is_adversarial_key
from ..utils.safe_load import safe_load
from ..version import __version__

__all__ = [
    'FORMATS', 'EncoderExport', 'CheckpointFormatError', 'export_encoder',
    'extract_encoder', 'mmpretrain_vit_to_timm', 'timm_vit_to_mmpretrain'
]

PathLike = Union[str, os.PathLike]

#: The output formats, in the order they are written.
FORMATS: Tuple[str, ...] = ('mmpretrain', 'det', 'timm')
#: Which backbone kinds each format supports.
_FORMAT_KINDS: Dict[str, Tuple[str, ...]] = {
    'mmpretrain': ('vit', 'swin'),
    'det': ('vit', ),
    'timm': ('vit', ),
}
_BACKBONE = 'backbone.'
# Parameters that only pre-training uses, by backbone kind.
_PRETRAIN_ONLY: Dict[str, Tuple[str, ...]] = {
    'vit': (),
    'swin': ('mask_token', ),
}
_KIND_NAMES = {
    'vit': 'ViT (mmpretrain MAEViT)',
    'timm_vit': 'ViT (aemim_mm TimmMAEViT, timm key names)',
    'swin': 'Swin (mmpretrain SimMIMSwinTransformer)',
}

# mmpretrain VisionTransformer key prefix <-> timm VisionTransformer prefix.
# ``{n}`` is a block index. The final norm is ``ln1`` in mmpretrain (not to be
# confused with ``layers.N.ln1``, the first norm of a block): the patterns are
# anchored at the start of the key.
_VIT_RENAMES: Tuple[Tuple[str, str], ...] = (
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


class CheckpointFormatError(ValueError):
    """The checkpoint is not a MIM pre-training checkpoint this tool reads."""


@dataclass
class EncoderExport:
    """What :func:`export_encoder` / :func:`extract_encoder` found and did.

    Attributes:
        src: The source checkpoint.
        kind: ``'vit'``, ``'timm_vit'`` or ``'swin'``.
        encoder: The clean encoder under mmpretrain key names (``'vit'`` and
            ``'timm_vit'``: ``VisionTransformer`` names; ``'swin'``:
            ``SwinTransformer`` names), without the ``backbone.`` prefix.
        kept: The source ``state_dict`` keys that were kept.
        dropped: Source ``state_dict`` keys that were dropped, by reason.
        dropped_entries: Top-level checkpoint entries other than
            ``state_dict`` (``meta``, ``optimizer``, ``message_hub`` ...).
        arch: What the weights say about the architecture (``str`` / ``int``).
        paths: The written files, by format.
    """
    src: str
    kind: str
    encoder: 'OrderedDict[str, torch.Tensor]'
    kept: List[str]
    dropped: Dict[str, List[str]]
    dropped_entries: List[str]
    arch: Dict[str, Union[int, str]]
    paths: Dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """A human-readable report: what was kept, dropped and written."""
        lines = [f'source: {self.src}',
                 f'backbone: {_KIND_NAMES[self.kind]}; ' + ', '.join(
                     f'{k}={v}' for k, v in self.arch.items()),
                 f'kept {len(self.kept)} tensors '
                 f'({_numel(self.encoder):,} values):']
        lines += [f'  {group}: {n}' for group, n in _groups(self.kept)]
        n_dropped = sum(len(v) for v in self.dropped.values())
        lines.append(f'dropped {n_dropped} tensors:')
        for reason, keys in self.dropped.items():
            lines.append(f'  {reason}: {len(keys)}')
            lines += [f'    {group}: {n}' for group, n in _groups(keys)]
        lines.append('dropped checkpoint entries: ' +
                     (', '.join(self.dropped_entries) or 'none'))
        for fmt, path in self.paths.items():
            lines.append(f'wrote {fmt}: {path}')
        return '\n'.join(lines)


def _numel(tensors: Mapping[str, torch.Tensor]) -> int:
    return sum(t.numel() for t in tensors.values())


def _group(key: str) -> str:
    """The group of a key: up to its first index (``backbone.layers.*``) or
    its parent module (``neck.decoder_embed.*``); short keys stay whole."""
    parts = key.split('.')
    for i, part in enumerate(parts):
        if part.isdigit():
            return '.'.join(parts[:i]) + '.*'
    return key if len(parts) <= 2 else '.'.join(parts[:-1]) + '.*'


def _groups(keys: Sequence[str]) -> List[Tuple[str, int]]:
    """Count keys by :func:`_group`, in order of first appearance."""
    counts: 'OrderedDict[str, int]' = OrderedDict()
    for key in keys:
        group = _group(key)
        counts[group] = counts.get(group, 0) + 1
    return list(counts.items())


# --------------------------------------------------------------- renaming
def _compile(template: str) -> 're.Pattern':
    return re.compile('^' + re.escape(template).replace(r'\{n\}', r'(\d+)'))


_MM_TO_TIMM = [(_compile(a), b) for a, b in _VIT_RENAMES]
_TIMM_TO_MM = [(_compile(b), a) for a, b in _VIT_RENAMES]


def _rename(state_dict: Mapping[str, torch.Tensor], rules, source: str,
            target: str) -> 'OrderedDict[str, torch.Tensor]':
    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    for key, value in state_dict.items():
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
            out[new + rest] = value
            break
        else:
            known = [a if source == 'mmpretrain' else b
                     for a, b in _VIT_RENAMES]
            raise CheckpointFormatError(
                f'Cannot rename {source} ViT key {key!r} to {target} names: '
                f'no rule for it. Known {source} prefixes: {known} '
                f'(followed by {"/".join(_SUFFIXES)}).')
    return out


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


# ------------------------------------------------------------- validation
def _backbone_kind(keys: Sequence[str], src: str) -> str:
    names = [k[len(_BACKBONE):] for k in keys if k.startswith(_BACKBONE)]
    if any(n.startswith('patch_embed.projection.') for n in names):
        if any(n.startswith('layers.') for n in names):
            return 'vit'
        if any(n.startswith('stages.') for n in names):
            return 'swin'
    if any(n.startswith('patch_embed.proj.') for n in names) and any(
            n.startswith('blocks.') for n in names):
        return 'timm_vit'
    raise CheckpointFormatError(
        f'{src} is not a MAE-style pre-training checkpoint: expected encoder '
        "weights under 'backbone.' with 'backbone.patch_embed.projection.*' "
        "plus 'backbone.layers.N.*' (MAEViT) or 'backbone.stages.N.*' "
        "(SimMIM Swin), or 'backbone.patch_embed.proj.*' plus "
        "'backbone.blocks.N.*' (TimmMAEViT); found key groups "
        f'{[g for g, _ in _groups(list(keys))][:12]}.')


def _check_pretraining(state_dict: Mapping[str, torch.Tensor],
                       src: str) -> None:
    """Refuse classifier / already-exported checkpoints with a clear error."""
    head = [k for k in state_dict if k.startswith('head.')]
    if head:
        raise CheckpointFormatError(
            f'{src} looks like a classifier (fine-tuned) checkpoint, not a '
            'MIM pre-training checkpoint: it has classification-head weights '
            f'{head[:4]}. MAE / SimMIM pre-training heads have no weights; '
            'export_encoder expects a checkpoint saved while pre-training '
            '(backbone.* encoder + neck.* decoder).')
    if not any(k.startswith('neck.') for k in state_dict):
        raise CheckpointFormatError(
            f'{src} has no decoder weights (neck.*): it is not a MAE / SimMIM '
            'pre-training checkpoint (perhaps it was already exported, or is '
            'a classifier backbone). export_encoder expects a checkpoint '
            'saved while pre-training (backbone.* encoder + neck.* decoder).')


def _infer_arch(kind: str,
                encoder: Mapping[str, torch.Tensor]) -> Dict[str, int]:
    """Architecture facts read off the weights (for meta and the report)."""
    if kind == 'swin':
        depths: Dict[int, int] = {}
        for key in encoder:
            m = re.match(r'stages\.(\d+)\.blocks\.(\d+)\.', key)
            if m:
                s, b = int(m.group(1)), int(m.group(2))
                depths[s] = max(depths.get(s, 0), b + 1)
        weight = encoder['patch_embed.projection.weight']
        return dict(
            embed_dims=int(weight.shape[0]),
            patch_size=int(weight.shape[-1]),
            num_stages=len(depths),
            depths=','.join(str(depths[s]) for s in sorted(depths)))
    weight = encoder['patch_embed.projection.weight']
    layers = {int(k.split('.')[1]) for k in encoder if k.startswith('layers.')}
    arch = dict(
        embed_dims=int(weight.shape[0]),
        num_layers=len(layers),
        patch_size=int(weight.shape[-1]))
    fc1 = encoder.get('layers.0.ffn.layers.0.0.weight')
    if fc1 is not None:
        arch['feedforward_channels'] = int(fc1.shape[0])
    if 'pos_embed' in encoder:
        num_patches = int(encoder['pos_embed'].shape[1]) - int(
            'cls_token' in encoder)
        arch['num_patches'] = num_patches
        side = math.isqrt(num_patches)
        if side * side == num_patches:
            arch['img_size'] = side * arch['patch_size']
    return arch


# ------------------------------------------------------------- extraction
def extract_encoder(checkpoint: Mapping, src: str = '<checkpoint>'
                    ) -> EncoderExport:
    """Split a loaded pre-training checkpoint into encoder and the rest.

    Args:
        checkpoint: The loaded checkpoint dict (must hold ``state_dict``).
        src: Its name, for messages.

    Returns:
        The clean encoder (mmpretrain names) and what was dropped.

    Raises:
        CheckpointFormatError: If the checkpoint is not a MAE / SimMIM
            (or AEMIM) pre-training checkpoint.
    """
    if not isinstance(checkpoint, Mapping) or 'state_dict' not in checkpoint:
        found = (sorted(checkpoint)[:10] if isinstance(checkpoint, Mapping)
                 else type(checkpoint).__name__)
        raise CheckpointFormatError(
            f'{src} is not a checkpoint saved by mmengine\'s Runner: expected '
            "a dict with a 'state_dict' entry (plus 'meta', 'optimizer', "
            f"'message_hub' ...), found {found}.")
    state_dict = checkpoint['state_dict']
    if not isinstance(state_dict, Mapping) or not all(
            isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointFormatError(
            f"{src}: 'state_dict' must map key names to tensors.")
    _check_pretraining(state_dict, src)
    kind = _backbone_kind(list(state_dict), src)
    drop_kind = 'vit' if kind == 'timm_vit' else kind

    kept, encoder = [], OrderedDict()
    dropped: Dict[str, List[str]] = OrderedDict()

    def drop(reason: str, key: str) -> None:
        dropped.setdefault(reason, []).append(key)

    for key, value in state_dict.items():
        if is_adversarial_key(key):
            drop('adversarial adapters (adv_*)', key)
        elif key.startswith('neck.'):
            drop('decoder (neck.*)', key)
        elif not key.startswith(_BACKBONE):
            drop('other non-encoder weights', key)
        elif key[len(_BACKBONE):] in _PRETRAIN_ONLY[drop_kind]:
            drop('pre-training only parameters', key)
        else:
            kept.append(key)
            encoder[key[len(_BACKBONE):]] = value.detach().clone().contiguous()
    if kind == 'timm_vit':
        encoder = timm_vit_to_mmpretrain(encoder)
    entries = [str(k) for k in checkpoint if k != 'state_dict']
    return EncoderExport(
        src=src,
        kind=kind,
        encoder=encoder,
        kept=kept,
        dropped=dict(dropped),
        dropped_entries=entries,
        arch=_infer_arch('swin' if kind == 'swin' else 'vit', encoder))


# ----------------------------------------------------------------- export
def _check_formats(formats: Sequence[str]) -> Tuple[str, ...]:
    if isinstance(formats, str):
        formats = (formats, )
    formats = tuple(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(f'formats must be a non-empty selection of {FORMATS}'
                         f', got {list(formats)}.')
    if len(set(formats)) != len(formats):
        raise ValueError(f'formats has duplicates: {list(formats)}.')
    return formats


def _output_paths(src: str, out_dir: Optional[PathLike],
                  paths: Optional[Mapping[str, PathLike]],
                  formats: Sequence[str]) -> Dict[str, str]:
    paths = dict(paths or {})
    unknown = sorted(set(paths) - set(formats))
    if unknown:
        raise ValueError(f'paths has entries {unknown} for formats not in '
                         f'formats={list(formats)}.')
    stem = osp.splitext(osp.basename(src))[0]
    out = {}
    for fmt in formats:
        if fmt in paths:
            out[fmt] = os.fspath(paths[fmt])
        elif out_dir is not None:
            out[fmt] = osp.join(os.fspath(out_dir), f'{stem}_{fmt}.pth')
        else:
            raise ValueError(f'No output path for format {fmt!r}: give '
                             'out_dir, or paths[{fmt!r}].')
    src_real = osp.realpath(src)
    for fmt, path in out.items():
        if osp.realpath(path) == src_real:
            raise ValueError(f'The {fmt!r} output {path} would overwrite the '
                             'source checkpoint.')
    if len(set(map(osp.realpath, out.values()))) != len(out):
        raise ValueError(f'Two formats would write the same file: {out}.')
    return out


def _payload(result: EncoderExport, fmt: str) -> dict:
    if fmt == 'timm':
        return dict(mmpretrain_vit_to_timm(result.encoder))
    meta: Dict[str, Union[int, str]] = dict(
        format=fmt,
        source=osp.basename(result.src),
        backbone=_KIND_NAMES[result.kind],
        exported_by=f'aemim_mm {__version__}')
    meta.update(result.arch)
    return dict(
        state_dict=OrderedDict(
            (_BACKBONE + k, v) for k, v in result.encoder.items()),
        meta=meta)


def export_encoder(src: PathLike,
                   out_dir: Optional[PathLike] = None,
                   formats: Sequence[str] = FORMATS,
                   paths: Optional[Mapping[str, PathLike]] = None
                   ) -> EncoderExport:
    """Export the clean encoder of a pre-training checkpoint.

    Args:
        src: A checkpoint saved by mmengine's ``Runner`` while pre-training
            with ``AdversarialMIMWrapper``, ``MAE`` or ``SimMIM``.
        out_dir: Directory for the outputs, named ``<src stem>_<format>.pth``
            (created when missing). Optional where ``paths`` names every
            format.
        formats: A selection of :data:`FORMATS`: ``'mmpretrain'``, ``'det'``,
            ``'timm'`` (see the module docstring).
        paths: Explicit output file per format (overrides ``out_dir``).

    Returns:
        What was kept, dropped and written (``.summary()`` prints it).

    Raises:
        ValueError: For bad ``formats`` / output paths (before reading).
        FileNotFoundError: If ``src`` does not exist.
        CheckpointFormatError: If ``src`` is not a MIM pre-training
            checkpoint, or a format does not fit its backbone (e.g. ``'timm'``
            for a Swin); nothing is written then.
        aemim_mm.utils.safe_load.UnsafeCheckpointError: If ``src`` holds
            pickled objects outside the ``weights_only`` allow-list.
    """
    src = os.fspath(src)
    formats = _check_formats(formats)
    out_paths = _output_paths(src, out_dir, paths, formats)
    if not osp.isfile(src):
        raise FileNotFoundError(f'Pre-training checkpoint not found: {src}')
    result = extract_encoder(safe_load(src), src)
    kind = 'vit' if result.kind == 'timm_vit' else result.kind
    unfit = [f for f in formats if kind not in _FORMAT_KINDS[f]]
    if unfit:
        raise CheckpointFormatError(
            f'{src} has a {_KIND_NAMES[result.kind]} encoder; format(s) '
            f'{unfit} need a plain ViT. Formats for this backbone: '
            f'{[f for f in FORMATS if kind in _FORMAT_KINDS[f]]}.')
    for fmt in formats:
        path = out_paths[fmt]
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        tmp = path + '.tmp'
        torch.save(_payload(result, fmt), tmp)
        os.replace(tmp, path)
        result.paths[fmt] = path
    return result
