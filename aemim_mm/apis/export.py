"""Export the encoder of a MIM pre-training checkpoint.

The checkpoint is one of every algorithm of ``docs/algorithms.md`` (MAE with
ViT / timm ViT / HiViT, MFF, EVA, MILAN, iTPN, MixMIM, SimMIM, MaskFeat, BEiT
v1 / v2, CAE, SparK with a sparse ResNet / ConvNeXt), pre-trained with
``AdversarialMIMWrapper`` or plain mmpretrain. After pre-training, AEMIM
keeps only the encoder with its *clean* adapters (the paper's Sec. 4.1): the
decoder (``neck.*``; SparK's ``enc_dec_norms.*``, ``enc_dec_projectors.*``
and ``mask_tokens.*`` too), the pre-training head (``head.*``), target
generators / tokenizers (``target_generator.*``), CAE's momentum teacher
(``teacher.*``), the adversarial adapters (every key whose leaf name starts
with ``adv_``, parameters and BatchNorm buffers alike, see
:func:`aemim_mm.models.adapters.is_adversarial_key`), the encoder's
pre-training-only parameters (``mask_token`` ...) and the optimiser /
message-hub state are dropped, and listed in :meth:`EncoderExport.summary`.

:func:`export_encoder` reads a checkpoint written by mmengine's ``Runner``
(``{'meta', 'state_dict', 'optimizer', 'message_hub', ...}``) with
:func:`aemim_mm.utils.safe_load.safe_load` and writes up to three files, each
holding tensors only (plus, for the first two, a small ``meta`` dict of
``str`` / ``int``), so that they load with ``torch.load(weights_only=True)``
and no allow-list:

``'mmpretrain'``
    ``{'state_dict': {'backbone.<key>': tensor}, 'meta': {...}}`` with the key
    names of the mmpretrain classification backbone that the algorithm's
    fine-tuning configs use (:data:`ENCODERS`, ``meta['finetune_backbone']``):

    - ``MAEViT`` (MAE, EVA), ``MILANViT``, ``MFFViT``, ``MaskFeatViT`` ->
      ``VisionTransformer``: same names; MaskFeat's ``mask_token`` and MFF's
      ``proj_layers.*`` / ``proj_weights`` (its fusion of layer outputs)
      are dropped;
    - ``TimmMAEViT`` (this package) -> ``VisionTransformer``: timm names
      renamed to mmpretrain's;
    - ``SimMIMSwinTransformer`` -> ``SwinTransformer``: ``mask_token``
      dropped;
    - ``MAEHiViT``, ``iTPNHiViT`` (pixel and CLIP) -> ``HiViT``: same names;
      iTPN-CLIP's ``mask_token`` dropped;
    - ``MixMIMPretrainTransformer`` -> ``MixMIMTransformer``: same names;
    - ``BEiTPretrainViT`` (BEiT v1 / v2), ``CAEPretrainViT`` -> ``BEiTViT``:
      ``mask_token`` dropped; BEiT's shared relative position bias copied to
      each layer (``BEIT_SHARED_REL_POS_BIAS`` in
      :mod:`aemim_mm.apis.key_converters`);
    - ``SparseResNet`` (SparK) -> ``ResNet``: same names (``conv1``,
      ``bn1``, ``layerN.*``), the clean BatchNorm running statistics kept;
    - ``SparseConvNeXt`` (SparK) -> ``ConvNeXt``: same names
      (``downsample_layers.*``, ``stages.*``). ``SparseConvNeXt`` has no
      final norms (``ConvNeXt``'s ``norm{i}`` of each ``out_indices``
      entry): the file loads strictly into ``ConvNeXt(..., out_indices=())``;
      a fine-tuning config's ``ConvNeXt`` (``out_indices=-1``) gets a new
      ``norm3``.

    The file loads with ``strict=True`` into that backbone built with the
    pre-training's structure (arch, image and patch size, final norm, position
    embeddings, layer scale; for ConvNets: depth, widths, stem, layer scale,
    GRN); a fine-tuning config loads it with
    ``backbone.init_cfg=dict(type='Pretrained', checkpoint=PATH,
    prefix='backbone.')``. Layers that only the fine-tuning config adds (the
    pooled-feature norm ``ln2`` of ``out_type='avg_featmap'``, CAE's and
    HiViT's relative position bias tables where pre-training had none,
    ConvNeXt's final norm ``norm3``) are
    initialised anew by mmengine's non-strict loader, as upstream. The fixed
    sin-cos ``pos_embed`` of MAE is kept; ``VisionTransformer`` resizes it at
    load time for another image size.
``'det'``
    The same content as ``'mmpretrain'`` (``meta['format']`` differs): the
    plain-ViT detection backbone of :mod:`aemim_mm.det` subclasses
    mmpretrain's ``VisionTransformer`` and loads it with the same
    ``init_cfg``. Keys it has no use for (e.g. the final norm ``ln1`` when it
    has none) are reported by mmengine's loader as unexpected, and ignored.
    ViT only (``VisionTransformer`` targets).
``'timm'``
    A flat timm ``VisionTransformer`` state dict (``cls_token``,
    ``pos_embed``, ``patch_embed.proj.*``, ``blocks.N.*``, ``norm.*``), for
    ``timm_model.load_state_dict(torch.load(PATH))``. ViT only.

Any other format for a non-ViT encoder (Swin, HiViT, MixMIM, BEiT / CAE,
ResNet, ConvNeXt) raises :class:`CheckpointFormatError` naming the backbone
and the formats that fit it. The backbone is recognised
from the key names under ``backbone.`` (:func:`_backbone_kind`).

The key renamings are in :mod:`aemim_mm.apis.key_converters` (the ViT ones
are re-exported here).
"""
import math
import os
import os.path as osp
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import (Callable, Dict, List, Mapping, Optional, Sequence, Tuple,
                    Union)

import torch

from ..models.adapters import is_adversarial_key
from ..utils.safe_load import safe_load
from ..version import __version__
from .key_converters import (CheckpointFormatError, KeyMap,
                             beit_pretrain_key_map, mmpretrain_vit_to_timm,
                             timm_vit_key_map, timm_vit_to_mmpretrain)

__all__ = [
    'ENCODERS', 'FORMATS', 'EncoderExport', 'EncoderSpec',
    'CheckpointFormatError', 'export_encoder', 'extract_encoder',
    'mmpretrain_vit_to_timm', 'timm_vit_to_mmpretrain'
]

PathLike = Union[str, os.PathLike]

#: The output formats, in the order they are written.
FORMATS: Tuple[str, ...] = ('mmpretrain', 'det', 'timm')
_BACKBONE = 'backbone.'


def _same_names(keys: Sequence[str]) -> KeyMap:
    """The key map of an encoder whose names the target shares."""
    return [(k, k) for k in keys]


@dataclass(frozen=True)
class EncoderSpec:
    """How one kind of pre-training encoder is exported.

    Attributes:
        name: The pre-training backbone(s), for messages and the report.
        target: The mmpretrain classification backbone (registry name) the
            ``'mmpretrain'`` export loads into strictly.
        pretrain_only: Encoder parameters only pre-training uses, dropped:
            whole key names, or prefixes ending in ``'.'``.
        key_map: ``keys -> [(target key, source key)]`` (no prefix), applied
            after dropping; see :mod:`aemim_mm.apis.key_converters`.
        formats: The formats that fit (:data:`FORMATS`).
    """
    name: str
    target: str
    pretrain_only: Tuple[str, ...]
    key_map: Callable[[Sequence[str]], KeyMap]
    formats: Tuple[str, ...]

    def is_pretrain_only(self, key: str) -> bool:
        """Whether ``key`` (no ``backbone.`` prefix) is dropped."""
        return any(key == p or (p.endswith('.') and key.startswith(p))
                   for p in self.pretrain_only)


_VIT_FORMATS = ('mmpretrain', 'det', 'timm')
#: The exportable encoders, by kind (see :func:`_backbone_kind`).
ENCODERS: Dict[str, EncoderSpec] = {
    'vit': EncoderSpec(
        'ViT (mmpretrain MAEViT / MILANViT / MFFViT / MaskFeatViT)',
        'VisionTransformer',
        # MaskFeat's mask token; MFF's fusion of layer outputs
        ('mask_token', 'proj_layers.', 'proj_weights'), _same_names,
        _VIT_FORMATS),
    'timm_vit': EncoderSpec(
        'ViT (aemim_mm TimmMAEViT, timm key names)', 'VisionTransformer',
        (), timm_vit_key_map, _VIT_FORMATS),
    'swin': EncoderSpec(
        'Swin (mmpretrain SimMIMSwinTransformer)', 'SwinTransformer',
        ('mask_token', ), _same_names, ('mmpretrain', )),
    'hivit': EncoderSpec(
        'HiViT (mmpretrain MAEHiViT / iTPNHiViT)', 'HiViT',
        ('mask_token', ), _same_names, ('mmpretrain', )),
    'mixmim': EncoderSpec(
        'MixMIM (mmpretrain MixMIMPretrainTransformer)', 'MixMIMTransformer',
        (), _same_names, ('mmpretrain', )),
    'beit': EncoderSpec(
        'BEiT ViT (mmpretrain BEiTPretrainViT / CAEPretrainViT)', 'BEiTViT',
        ('mask_token', ), beit_pretrain_key_map, ('mmpretrain', )),
    # SparK's sparse ConvNets subclass their classification backbone and
    # replace layers in place (same names, nothing added)
    'resnet': EncoderSpec(
        'ResNet (mmpretrain ResNet; SparK\'s SparseResNet)', 'ResNet',
        (), _same_names, ('mmpretrain', )),
    # a 3x3 stem without max pooling: the CIFAR ResNet of the survey's
    # methods (SimCLR, BYOL, ... on CIFAR-10)
    'resnet_cifar': EncoderSpec(
        'ResNet, CIFAR stem (mmpretrain ResNet_CIFAR)', 'ResNet_CIFAR',
        (), _same_names, ('mmpretrain', )),
    'convnext': EncoderSpec(
        'ConvNeXt (mmpretrain SparseConvNeXt, SparK)', 'ConvNeXt',
        (), _same_names, ('mmpretrain', )),
}
_KIND_NAMES = {k: spec.name for k, spec in ENCODERS.items()}
# Top-level state-dict entries of pre-training algorithms that are not the
# encoder, with the reason they are dropped (the decoder and ``adv_*`` are
# handled first).
_NON_ENCODER = (
    ('head.', 'pre-training head (head.*)'),
    ('target_generator.', 'target generator / tokenizer (target_generator.*)'),
    ('teacher.', 'momentum teacher (teacher.*)'),
    (('target_net.', 'encoder_k.', 'momentum_encoder.'),
     'momentum / target network (target_net.*, encoder_k.*, '
     'momentum_encoder.*)'),
    (('queue', 'queue_ptr'), 'negative queue (queue, queue_ptr)'),
    (('enc_dec_norms.', 'enc_dec_projectors.', 'mask_tokens.'),
     'SparK decoder side (enc_dec_norms.*, enc_dec_projectors.*, '
     'mask_tokens.*)'),
    # ADIOS's adversary: it makes the occlusion masks during pre-training;
    # a fine-tuned or evaluated encoder takes whole images
    ('mask_net.', 'ADIOS masking network (mask_net.*)'),
)
# Entries only a pre-training algorithm has (a classifier has none).
_PRETRAINING_ENTRIES = ('neck.', 'target_generator.', 'teacher.',
                        'enc_dec_norms.', 'enc_dec_projectors.',
                        'mask_tokens.')


@dataclass
class EncoderExport:
    """What :func:`export_encoder` / :func:`extract_encoder` found and did.

    Attributes:
        src: The source checkpoint.
        kind: A key of :data:`ENCODERS` (``'vit'``, ``'timm_vit'``,
            ``'swin'``, ``'hivit'``, ``'mixmim'``, ``'beit'``, ``'resnet'``,
            ``'convnext'``).
        encoder: The clean encoder under the key names of its fine-tuning
            backbone (:attr:`target`), without the ``backbone.`` prefix.
        kept: The source ``state_dict`` keys that were kept.
        dropped: Source ``state_dict`` keys that were dropped, by reason.
        dropped_entries: Top-level checkpoint entries other than
            ``state_dict`` (``meta``, ``optimizer``, ``message_hub`` ...).
        arch: What the weights say about the architecture (``str`` / ``int``).
        paths: The written files, by format.
        sources: For each key of ``encoder``, the source ``state_dict`` key
            its tensor comes from (several keys may share one source: BEiT's
            shared relative position bias).
    """
    src: str
    kind: str
    encoder: 'OrderedDict[str, torch.Tensor]'
    kept: List[str]
    dropped: Dict[str, List[str]]
    dropped_entries: List[str]
    arch: Dict[str, Union[int, str]]
    paths: Dict[str, str] = field(default_factory=dict)
    sources: Dict[str, str] = field(default_factory=dict)

    @property
    def target(self) -> str:
        """The mmpretrain classification backbone the export loads into."""
        return ENCODERS[self.kind].target

    @property
    def converted(self) -> Dict[str, str]:
        """The ``encoder`` keys whose name differs from their source key."""
        return {k: v for k, v in self.sources.items()
                if _BACKBONE + k != v}

    def summary(self) -> str:
        """A human-readable report: what was kept, dropped and written."""
        lines = [f'source: {self.src}',
                 f'backbone: {_KIND_NAMES[self.kind]}; ' + ', '.join(
                     f'{k}={v}' for k, v in self.arch.items()),
                 f'kept {len(self.kept)} tensors '
                 f'({_numel(self.encoder):,} values):']
        lines += [f'  {group}: {n}' for group, n in _groups(self.kept)]
        lines.append(f'loads into mmpretrain {self.target} (strict); '
                     f'{len(self.converted)} tensors under new names')
        if self.arch.get('layer_scale'):
            lines.append(
                f'  layer scale: build the fine-tuning {self.target} with '
                'layer_scale_init_value > 0, or loading drops every layer-'
                'scale tensor (check a config: tools/export_encoder.py '
                '--finetune-config CONFIG)')
        renamed: 'OrderedDict[Tuple[str, str], int]' = OrderedDict()
        for new, old in self.converted.items():
            pair = (_group(old), _group(_BACKBONE + new))
            renamed[pair] = renamed.get(pair, 0) + 1
        lines += [f'  {old} -> {new}: {n}'
                  for (old, new), n in renamed.items()]
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
    its parent module (``neck.decoder_embed.*``), at most three names deep
    (``target_generator.blocks.group_1.*``); short keys stay whole."""
    parts = key.split('.')
    for i, part in enumerate(parts[:4]):
        if part.isdigit():
            return '.'.join(parts[:i]) + '.*'
    return key if len(parts) <= 2 else '.'.join(parts[:min(
        len(parts) - 1, 3)]) + '.*'


def _groups(keys: Sequence[str]) -> List[Tuple[str, int]]:
    """Count keys by :func:`_group`, in order of first appearance."""
    counts: 'OrderedDict[str, int]' = OrderedDict()
    for key in keys:
        group = _group(key)
        counts[group] = counts.get(group, 0) + 1
    return list(counts.items())


# ------------------------------------------------------------- validation
_BEIT_MARKER = re.compile(
    r'^(rel_pos_bias\.|layers\.\d+\.(gamma_[12]$|attn\.(q_bias|v_bias|'
    r'relative_position_bias_table)$))')


def _backbone_kind(keys: Sequence[str], src: str) -> str:
    """The kind of pre-training encoder (a key of :data:`ENCODERS`), from the
    key names under ``backbone.``.

    Raises:
        CheckpointFormatError: If the names fit no known encoder.
    """
    names = [k[len(_BACKBONE):] for k in keys if k.startswith(_BACKBONE)]

    def has(pattern: str) -> bool:
        return any(re.match(pattern, n) for n in names)

    if has(r'patch_embed\.projection\.'):
        if has(r'stages\.\d+\.'):
            return 'swin'
        if has(r'layers\.\d+\.blocks\.\d+\.'):
            return 'mixmim'
        if has(r'layers\.\d+\.'):
            return 'beit' if any(_BEIT_MARKER.match(n) for n in names) \
                else 'vit'
    if has(r'patch_embed\.proj\.') and has(r'blocks\.\d+\.'):
        return 'hivit' if has(r'blocks\.\d+\.reduction\.') else 'timm_vit'
    if has(r'(conv1\.|stem\.)') and has(r'layer1\.\d+\.conv1\.'):
        return 'resnet'
    if has(r'downsample_layers\.\d+\.') and has(r'stages\.\d+\.\d+\.'):
        return 'convnext'
    raise CheckpointFormatError(
        f'{src} is not a MAE-style pre-training checkpoint: expected encoder '
        "weights under 'backbone.' with 'backbone.patch_embed.projection.*' "
        "plus 'backbone.layers.N.*' (MAEViT, BEiT / CAE ViTs), "
        "'backbone.stages.N.*' (SimMIM Swin) or 'backbone.layers.N.blocks.*' "
        "(MixMIM), or 'backbone.patch_embed.proj.*' plus "
        "'backbone.blocks.N.*' (TimmMAEViT; HiViT with "
        "'blocks.N.reduction.*'), or 'backbone.conv1.*' plus "
        "'backbone.layer1.N.*' (SparK's SparseResNet), or "
        "'backbone.downsample_layers.N.*' plus 'backbone.stages.N.M.*' "
        "(SparK's SparseConvNeXt); found key groups "
        f'{[g for g, _ in _groups(list(keys))][:12]}.')


def _check_pretraining(state_dict: Mapping[str, torch.Tensor],
                       src: str) -> None:
    """Refuse classifier / already-exported checkpoints with a clear error.

    A pre-training checkpoint has a decoder (``neck.*``), a target generator
    (``target_generator.*``: BEiT v1 has no neck) or a teacher
    (``teacher.*``); a classifier has none of these.
    """
    pretraining = any(k.startswith(_PRETRAINING_ENTRIES) for k in state_dict)
    head = [k for k in state_dict if k.startswith('head.')]
    if head and not pretraining:
        raise CheckpointFormatError(
            f'{src} looks like a classifier (fine-tuned) checkpoint, not a '
            'MIM pre-training checkpoint: it has classification-head weights '
            f'{head[:4]} and no decoder, target generator or teacher '
            f'({", ".join(p + "*" for p in _PRETRAINING_ENTRIES)}). '
            'export_encoder expects a checkpoint saved while pre-training '
            '(backbone.* encoder + neck.* decoder).')
    if not pretraining:
        raise CheckpointFormatError(
            f'{src} has no decoder weights (neck.*), nor target generator or '
            'teacher: it is not a MIM pre-training checkpoint (perhaps it '
            'was already exported, or is a classifier backbone). '
            'export_encoder expects a checkpoint saved while pre-training '
            '(backbone.* encoder + neck.* decoder).')


def _stage_depths(encoder: Mapping[str, torch.Tensor], pattern: str) -> str:
    """``'d0,d1,...'``: blocks per stage, by ``pattern`` (stage, block)."""
    depths: Dict[int, int] = {}
    for key in encoder:
        m = re.match(pattern, key)
        if m:
            s, b = int(m.group(1)), int(m.group(2))
            depths[s] = max(depths.get(s, 0), b + 1)
    return ','.join(str(depths[s]) for s in sorted(depths))


def _hivit_blocks(encoder: Mapping[str, torch.Tensor]) -> str:
    """``'b0,b1,...'``: HiViT's blocks per stage. ``blocks`` is flat: stages
    are separated by the merging blocks (those with a ``reduction``). (Not
    the arch's ``depths``: HiViT doubles the MLP-only early stages.)"""
    blocks = sorted({int(k.split('.')[1]) for k in encoder
                     if k.startswith('blocks.')})
    merges = {int(k.split('.')[1]) for k in encoder
              if re.match(r'blocks\.\d+\.reduction\.', k)}
    depths, count = [], 0
    for b in blocks:
        if b in merges:
            depths.append(count)
            count = 0
        else:
            count += 1
    return ','.join(str(d) for d in depths + [count])


#: mmpretrain ``ResNet``'s ``arch_settings``: (block, blocks per stage) ->
#: depth.
_RESNET_DEPTHS = {
    ('BasicBlock', '2,2,2,2'): 18, ('BasicBlock', '3,4,6,3'): 34,
    ('Bottleneck', '3,4,6,3'): 50, ('Bottleneck', '3,4,23,3'): 101,
    ('Bottleneck', '3,8,36,3'): 152,
}


def _resnet_arch(encoder: Mapping[str, torch.Tensor]
                 ) -> Dict[str, Union[int, str]]:
    """``depth`` (where the blocks fit one of ``ResNet``'s), block type,
    blocks per stage, stem and base widths, deep stem."""
    blocks = _stage_depths(encoder, r'layer(\d+)\.(\d+)\.')
    block = ('Bottleneck' if any(re.match(r'layer\d+\.\d+\.conv3\.', k)
                                 for k in encoder) else 'BasicBlock')
    deep_stem = any(k.startswith('stem.') for k in encoder)
    if deep_stem:     # three convolutions, the last one stem_channels wide
        convs = sorted((k for k in encoder
                        if re.match(r'stem\.\d+\.(.+\.)?weight$', k)
                        and encoder[k].dim() == 4),
                       key=lambda k: int(k.split('.')[1]))
        stem_channels = int(encoder[convs[-1]].shape[0])
    else:
        stem_channels = int(encoder['conv1.weight'].shape[0])
    arch: Dict[str, Union[int, str]] = {}
    depth = _RESNET_DEPTHS.get((block, blocks))
    if depth is not None:
        arch['depth'] = depth
    arch.update(
        block=block,
        stage_blocks=blocks,
        num_stages=len(blocks.split(',')),
        stem_channels=stem_channels,
        base_channels=int(encoder['layer1.0.conv1.weight'].shape[0]),
        deep_stem=int(deep_stem))
    return arch


def _convnext_arch(encoder: Mapping[str, torch.Tensor]
                   ) -> Dict[str, Union[int, str]]:
    """Blocks and channels per stage, stem patch size, layer scale, GRN,
    linear point-wise convolutions."""
    depths = _stage_depths(encoder, r'stages\.(\d+)\.(\d+)\.')
    channels = ','.join(
        str(int(encoder[f'stages.{s}.0.depthwise_conv.weight'].shape[0]))
        for s in range(len(depths.split(','))))
    return dict(
        depths=depths,
        channels=channels,
        stem_patch_size=int(
            encoder['downsample_layers.0.0.weight'].shape[-1]),
        layer_scale=int('stages.0.0.gamma' in encoder),
        use_grn=int(any(k.startswith('stages.0.0.grn.') for k in encoder)),
        linear_pw_conv=int(
            encoder['stages.0.0.pointwise_conv1.weight'].dim() == 2))


def _infer_arch(kind: str,
                encoder: Mapping[str, torch.Tensor]) -> Dict[str, int]:
    """Architecture facts read off the weights (for meta and the report)."""
    if kind in ('resnet', 'resnet_cifar'):
        return _resnet_arch(encoder)
    if kind == 'convnext':
        return _convnext_arch(encoder)
    if kind in ('swin', 'mixmim'):
        stage = 'stages' if kind == 'swin' else 'layers'
        depths = _stage_depths(encoder, stage + r'\.(\d+)\.blocks\.(\d+)\.')
        weight = encoder['patch_embed.projection.weight']
        return dict(
            embed_dims=int(weight.shape[0]),
            patch_size=int(weight.shape[-1]),
            num_stages=len(depths.split(',')),
            depths=depths)
    if kind == 'hivit':
        last = max(int(k.split('.')[1]) for k in encoder
                   if k.startswith('blocks.'))
        arch = dict(
            embed_dims=int(encoder[f'blocks.{last}.norm1.weight'].shape[0]),
            blocks_per_stage=_hivit_blocks(encoder),
            rpe=int(any(k.endswith('relative_position_bias_table')
                        for k in encoder)),
            layer_scale=int(f'blocks.{last}.gamma_1' in encoder))
        if 'pos_embed' in encoder:
            arch['num_patches'] = int(encoder['pos_embed'].shape[1])
        return arch
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
    if kind == 'beit':
        arch['final_norm'] = int('ln1.weight' in encoder)
        arch['use_abs_pos_emb'] = int('pos_embed' in encoder)
        arch['use_rel_pos_bias'] = int(
            'layers.0.attn.relative_position_bias_table' in encoder)
        arch['layer_scale'] = int('layers.0.gamma_1' in encoder)
    return arch


# ------------------------------------------------------------- extraction
def extract_encoder(checkpoint: Mapping, src: str = '<checkpoint>'
                    ) -> EncoderExport:
    """Split a loaded pre-training checkpoint into encoder and the rest.

    Args:
        checkpoint: The loaded checkpoint dict (must hold ``state_dict``).
        src: Its name, for messages.

    Returns:
        The clean encoder under its fine-tuning backbone's key names
        (:data:`ENCODERS`) and what was dropped.

    Raises:
        CheckpointFormatError: If the checkpoint is not a MIM (or AEMIM)
            pre-training checkpoint of a supported encoder.
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
    stem = state_dict.get(_BACKBONE + 'conv1.weight')
    if kind == 'resnet' and stem is not None and stem.shape[-1] == 3:
        kind = 'resnet_cifar'
    spec = ENCODERS[kind]

    kept, source = [], OrderedDict()
    dropped: Dict[str, List[str]] = OrderedDict()

    def drop(reason: str, key: str) -> None:
        dropped.setdefault(reason, []).append(key)

    for key, value in state_dict.items():
        if is_adversarial_key(key):
            drop('adversarial adapters (adv_*)', key)
        elif key.startswith('neck.'):
            drop('decoder (neck.*)', key)
        elif not key.startswith(_BACKBONE):
            drop(next((reason for prefix, reason in _NON_ENCODER
                       if key.startswith(prefix)),
                      'other non-encoder weights'), key)
        elif spec.is_pretrain_only(key[len(_BACKBONE):]):
            drop('pre-training only parameters', key)
        else:
            kept.append(key)
            source[key[len(_BACKBONE):]] = value.detach().clone().contiguous()
    try:
        key_map = spec.key_map(list(source))
    except CheckpointFormatError as error:
        raise CheckpointFormatError(f'{src}: {error}') from error
    encoder: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    used = set()
    for new, old in key_map:
        encoder[new] = source[old].clone() if old in used else source[old]
        used.add(old)
    entries = [str(k) for k in checkpoint if k != 'state_dict']
    return EncoderExport(
        src=src,
        kind=kind,
        encoder=encoder,
        kept=kept,
        dropped=dict(dropped),
        dropped_entries=entries,
        arch=_infer_arch('vit' if kind == 'timm_vit' else kind, encoder),
        sources={new: _BACKBONE + old for new, old in key_map})


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
    meta['finetune_backbone'] = result.target
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
            one of the algorithms of ``docs/algorithms.md``, with
            ``AdversarialMIMWrapper`` or without.
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
            checkpoint, or a format does not fit its backbone (``'det'`` /
            ``'timm'`` for anything but a ViT: Swin, HiViT, MixMIM, BEiT /
            CAE, ResNet, ConvNeXt); nothing is written then.
        aemim_mm.utils.safe_load.UnsafeCheckpointError: If ``src`` holds
            pickled objects outside the ``weights_only`` allow-list.
    """
    src = os.fspath(src)
    formats = _check_formats(formats)
    out_paths = _output_paths(src, out_dir, paths, formats)
    if not osp.isfile(src):
        raise FileNotFoundError(f'Pre-training checkpoint not found: {src}')
    result = extract_encoder(safe_load(src), src)
    spec = ENCODERS[result.kind]
    unfit = [f for f in formats if f not in spec.formats]
    if unfit:
        raise CheckpointFormatError(
            f'{src} has a {spec.name} encoder; format(s) {unfit} need a plain '
            'ViT (an encoder that loads into mmpretrain\'s VisionTransformer'
            f'). Formats for this backbone: {list(spec.formats)} (its '
            f"'mmpretrain' export loads into mmpretrain's {spec.target}).")
    for fmt in formats:
        path = out_paths[fmt]
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        tmp = path + '.tmp'
        torch.save(_payload(result, fmt), tmp)
        os.replace(tmp, path)
        result.paths[fmt] = path
    return result
