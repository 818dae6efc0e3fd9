"""The encoder of every supported algorithm exports (``export_encoder``).

Parametrised over the list of ``test_algorithms.py``
(:data:`tiny_algorithms.CASES`): the pre-training checkpoint, of the
AEMIM-wrapped algorithm and of the plain mmpretrain one, exports in the
``'mmpretrain'`` format and loads with ``strict=True`` into the
classification backbone that mmpretrain's fine-tuning configs of that
algorithm use (:data:`FINETUNE`), built with the same arch. Every exported
tensor equals the source tensor it comes from.
"""
import re
from typing import Callable, Dict, List, Tuple

import pytest
import torch
from torch.testing import assert_close

from aemim_mm.apis import CheckpointFormatError, export_encoder
from aemim_mm.apis.export import ENCODERS
from aemim_mm.apis.key_converters import (beit_pretrain_key_map,
                                          beit_pretrain_to_beit_vit)
from aemim_mm.models.adapters import is_adversarial_key
from mmpretrain.registry import MODELS
from tiny_algorithms import CASE_IDS, CASES, case_cfg
from tiny_models import build_wrapper

CASE = pytest.mark.parametrize('case', CASES, ids=repr)
WRAPPED = pytest.mark.parametrize('wrapped', [True, False],
                                  ids=['aemim', 'plain'])


def _copy(backbone: dict, *names: str) -> dict:
    """The entries ``names`` of the pre-training backbone config."""
    return {n: backbone[n] for n in names if n in backbone}


def _vit(bb: dict) -> dict:
    return dict(type='VisionTransformer',
                **_copy(bb, 'arch', 'img_size', 'patch_size'))


def _hivit(bb: dict) -> dict:
    return dict(type='HiViT', **_copy(bb, 'arch', 'img_size', 'patch_size',
                                      'rpe', 'layer_scale_init_value'))


def _beit(final_norm: bool, abs_pos: bool, rel_pos: bool
          ) -> Callable[[dict], dict]:
    def build(bb: dict) -> dict:
        return dict(type='BEiTViT', out_type='cls_token',
                    final_norm=final_norm, use_abs_pos_emb=abs_pos,
                    use_rel_pos_bias=rel_pos, use_shared_rel_pos_bias=False,
                    **_copy(bb, 'arch', 'img_size', 'patch_size',
                            'layer_scale_init_value', 'bias'))
    return build


#: The fine-tuning backbone of each algorithm (the type of mmpretrain
#: 1.2.0's ``configs/<algo>/benchmarks/`` and ``configs/hivit``), built from
#: the pre-training backbone config with the pre-training's structure.
FINETUNE: Dict[str, Callable[[dict], dict]] = {
    'MAE-MAEViT': _vit,
    'MAE-TimmMAEViT': _vit,
    'MAE-MAEHiViT': _hivit,
    'MFF': _vit,
    'EVA': _vit,
    'MILAN': _vit,
    'iTPN-pixel': _hivit,
    'iTPN-CLIP': _hivit,
    'MixMIM': lambda bb: dict(type='MixMIMTransformer', **_copy(
        bb, 'arch', 'img_size', 'window_size')),
    'SimMIM': lambda bb: dict(type='SwinTransformer', **_copy(
        bb, 'arch', 'img_size', 'stage_cfgs', 'out_indices')),
    'MaskFeat': _vit,
    # BEiT v1 pre-trains with a final norm, v2 without; CAE has absolute
    # position embeddings and no relative position bias
    'BEiT-v1': _beit(final_norm=True, abs_pos=False, rel_pos=True),
    'BEiT-v2': _beit(final_norm=False, abs_pos=False, rel_pos=True),
    'CAE': _beit(final_norm=True, abs_pos=True, rel_pos=False),
}
#: The cases whose export renames keys (the others keep every name).
RENAMED = {'MAE-TimmMAEViT', 'BEiT-v1', 'BEiT-v2'}


@pytest.fixture(scope='module')
def clip_dir(tmp_path_factory) -> str:
    """Where the tiny random CLIP checkpoints (EVA, MILAN, iTPN) go."""
    return str(tmp_path_factory.mktemp('clip'))


def _perturb(model: torch.nn.Module) -> None:
    """Make every parameter distinct (LayerNorm weights != 1, adv != clean),
    so that a tensor copied to the wrong key is caught."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)


def _pretrained(case, clip_dir: str, wrapped: bool) -> torch.nn.Module:
    if wrapped:
        model = build_wrapper(case_cfg(case, clip_dir))
    else:
        model = MODELS.build(case_cfg(case, clip_dir))
        model.init_weights()
    _perturb(model)
    return model


def _save(model: torch.nn.Module, path) -> Dict[str, torch.Tensor]:
    """Save as mmengine's Runner does (``meta`` + ``state_dict``)."""
    state = model.state_dict()
    torch.save(dict(meta=dict(epoch=1, iter=1, cfg='model = dict()'),
                    state_dict=state), path)
    return state


def _finetune_backbone(case, clip_dir: str, **overrides) -> torch.nn.Module:
    cfg = FINETUNE[case.name](case_cfg(case, clip_dir)['backbone'])
    cfg.update(overrides)
    return MODELS.build(cfg)


def _exported(path: str) -> Dict[str, torch.Tensor]:
    data = torch.load(path, weights_only=True)
    assert all(k.startswith('backbone.') for k in data['state_dict'])
    return {k[len('backbone.'):]: v for k, v in data['state_dict'].items()}


def test_every_algorithm_has_a_finetuning_backbone():
    assert sorted(FINETUNE) == sorted(CASE_IDS)


@CASE
@WRAPPED
def test_encoder_loads_strictly_into_the_finetuning_backbone(
        case, wrapped, clip_dir, tmp_path):
    model = _pretrained(case, clip_dir, wrapped)
    src = _save(model, tmp_path / 'epoch_1.pth')
    assert any(is_adversarial_key(k) for k in src) == wrapped
    result = export_encoder(tmp_path / 'epoch_1.pth', tmp_path / 'out',
                            formats=['mmpretrain'])
    exported = _exported(result.paths['mmpretrain'])

    backbone = _finetune_backbone(case, clip_dir)
    assert result.target == type(backbone).__name__
    meta = torch.load(result.paths['mmpretrain'], weights_only=True)['meta']
    assert meta['finetune_backbone'] == result.target
    fresh = backbone.state_dict()
    backbone.load_state_dict(exported, strict=True)   # no missing / extra
    assert {k: v.shape for k, v in exported.items()} == {
        k: v.shape for k, v in fresh.items()}

    assert not any('adv_' in k for k in exported)
    # every exported tensor is its source tensor (renamed or not) ...
    assert sorted(result.sources) == sorted(exported)
    for key, value in exported.items():
        assert_close(value, src[result.sources[key]], rtol=0, atol=0)
    # ... and what the fine-tuning backbone now holds
    for key, value in backbone.state_dict().items():
        assert_close(value, exported[key], rtol=0, atol=0)
    # buffers (relative position indices) equal the ones the backbone makes
    for name, buffer in _finetune_backbone(case, clip_dir).named_buffers():
        if name in exported:
            assert_close(exported[name], buffer, rtol=0, atol=0)
    assert bool(result.converted) == (case.name in RENAMED)
    # every clean encoder key is kept or listed as dropped
    listed = set(result.kept).union(*map(set, result.dropped.values()))
    assert listed == set(src)


@CASE
def test_dropped_weights_are_listed_in_the_summary(case, clip_dir, tmp_path):
    model = _pretrained(case, clip_dir, wrapped=True)
    src = _save(model, tmp_path / 'ckpt.pth')
    result = export_encoder(tmp_path / 'ckpt.pth', tmp_path / 'out',
                            formats=['mmpretrain'])
    summary = result.summary()
    assert f'loads into mmpretrain {result.target} (strict)' in summary
    expected = {
        'adversarial adapters (adv_*)': lambda k: is_adversarial_key(k),
        'decoder (neck.*)': lambda k: k.startswith('neck.'),
        'pre-training head (head.*)': lambda k: k.startswith('head.'),
        'target generator / tokenizer (target_generator.*)':
            lambda k: k.startswith('target_generator.'),
        'momentum teacher (teacher.*)': lambda k: k.startswith('teacher.'),
    }
    for reason, belongs in expected.items():
        keys = [k for k in src if belongs(k) and (
            reason.startswith('adversarial') or not is_adversarial_key(k))]
        assert result.dropped.get(reason, []) == keys
        if keys:
            assert f'  {reason}: {len(keys)}' in summary
    assert all(not k.startswith('backbone.')
               for k in result.dropped.get('other non-encoder weights', []))


#: What a fine-tuning config of mmpretrain 1.2.0 sets differently from the
#: pre-training structure, and the keys mmengine's (non-strict)
#: ``Pretrained`` loader then reports: (overrides, missing, unexpected), as
#: regexes. These layers are new at fine-tuning, as upstream.
_VIT_FT = (dict(final_norm=False, out_type='avg_featmap'),
           [r'ln2\.'], [r'ln1\.'])
_REL_POS = r'layers\.\d+\.attn\.relative_position_(bias_table|index)'
FINETUNE_CONFIG: Dict[str, Tuple[dict, List[str], List[str]]] = {
    'MAE-MAEViT': _VIT_FT, 'MAE-TimmMAEViT': _VIT_FT, 'MFF': _VIT_FT,
    'EVA': _VIT_FT, 'MILAN': _VIT_FT, 'MaskFeat': _VIT_FT,
    'MAE-MAEHiViT': (dict(rpe=True),
                     [r'relative_position_index',
                      r'blocks\.\d+\.attn\.relative_position_(bias_table|'
                      r'index)'], []),
    'iTPN-pixel': (dict(rpe=True),
                   [r'relative_position_index',
                    r'blocks\.\d+\.attn\.relative_position_(bias_table|'
                    r'index)'], []),
    'iTPN-CLIP': (dict(rpe=True), [], []),
    'MixMIM': (dict(), [], []),
    'SimMIM': (dict(), [], []),
    'BEiT-v1': (dict(final_norm=False, out_type='avg_featmap'),
                [r'ln2\.'], [r'ln1\.']),
    'BEiT-v2': (dict(out_type='avg_featmap'), [r'ln2\.'], []),
    'CAE': (dict(final_norm=False, out_type='avg_featmap',
                 use_rel_pos_bias=True),
            [r'ln2\.', _REL_POS], [r'ln1\.']),
}


@CASE
def test_finetuning_config_adds_only_new_layers(case, clip_dir, tmp_path):
    """Through the fine-tuning configs' ``init_cfg=Pretrained``: only the
    layers the fine-tuning config adds are missing (documented)."""
    assert sorted(FINETUNE_CONFIG) == sorted(CASE_IDS)
    _save(_pretrained(case, clip_dir, wrapped=True), tmp_path / 'c.pth')
    result = export_encoder(tmp_path / 'c.pth', tmp_path / 'out',
                            formats=['mmpretrain'])
    overrides, missing, unexpected = FINETUNE_CONFIG[case.name]
    backbone = _finetune_backbone(case, clip_dir, **overrides)
    report = backbone.load_state_dict(_exported(result.paths['mmpretrain']),
                                      strict=False)

    def fits(keys: List[str], patterns: List[str]) -> None:
        assert all(any(re.match(p, k) for p in patterns) for k in keys), keys
        assert all(any(re.match(p, k) for k in keys) for p in patterns), keys

    fits(report.missing_keys, missing)
    fits(report.unexpected_keys, unexpected)


@pytest.mark.parametrize('case', [c for c in CASES
                                  if FINETUNE[c.name] is not _vit], ids=repr)
@pytest.mark.parametrize('fmt', ['det', 'timm'])
def test_det_and_timm_refused_for_other_backbones(case, fmt, clip_dir,
                                                  tmp_path):
    _save(_pretrained(case, clip_dir, wrapped=True), tmp_path / 'c.pth')
    spec = next(s for s in ENCODERS.values()
                if s.target == FINETUNE[case.name]({})['type'])
    with pytest.raises(CheckpointFormatError, match=(
            re.escape(f'has a {spec.name} encoder; format(s) '
                      f"['{fmt}'] need a plain ViT") +
            r".*Formats for this backbone: \['mmpretrain'\].*loads into "
            f"mmpretrain's {spec.target}")):
        export_encoder(tmp_path / 'c.pth', tmp_path / 'out',
                       formats=['mmpretrain', fmt])
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('case', [c for c in CASES
                                  if FINETUNE[c.name] is _vit], ids=repr)
def test_vit_encoders_export_every_format(case, clip_dir, tmp_path):
    """ViT encoders keep today's ``det`` and ``timm`` outputs."""
    from timm.models.vision_transformer import VisionTransformer
    _save(_pretrained(case, clip_dir, wrapped=True), tmp_path / 'c.pth')
    result = export_encoder(tmp_path / 'c.pth', tmp_path / 'out')
    assert sorted(result.paths) == ['det', 'mmpretrain', 'timm']
    det = torch.load(result.paths['det'], weights_only=True)
    assert det['meta']['format'] == 'det'
    bb = case_cfg(case, clip_dir)['backbone']
    arch = bb['arch']
    vit = VisionTransformer(
        img_size=bb['img_size'], patch_size=bb['patch_size'],
        embed_dim=arch['embed_dims'], depth=arch['num_layers'],
        num_heads=arch['num_heads'],
        mlp_ratio=arch['feedforward_channels'] / arch['embed_dims'],
        num_classes=0)
    vit.load_state_dict(torch.load(result.paths['timm'], weights_only=True),
                        strict=True)


def test_beit_shared_relative_position_bias_goes_to_every_layer(
        clip_dir, tmp_path):
    case = CASE_IDS['BEiT-v1']
    src = _save(_pretrained(case, clip_dir, wrapped=True),
                tmp_path / 'beit.pth')
    result = export_encoder(tmp_path / 'beit.pth', tmp_path / 'out',
                            formats=['mmpretrain'])
    exported = _exported(result.paths['mmpretrain'])
    shared = src['backbone.rel_pos_bias.relative_position_bias_table']
    for n in range(2):
        key = f'layers.{n}.attn.relative_position_bias_table'
        assert_close(exported[key], shared, rtol=0, atol=0)
        assert result.sources[key] == \
            'backbone.rel_pos_bias.relative_position_bias_table'
    assert 'rel_pos_bias.relative_position_bias_table' not in exported
    assert result.dropped['pre-training only parameters'] == [
        'backbone.mask_token']
    # copies, not views of one tensor: fine-tuning updates each layer alone
    assert exported['layers.0.attn.relative_position_bias_table'] \
        .data_ptr() != exported['layers.1.attn.relative_position_bias_table'
                                ].data_ptr()


@pytest.mark.parametrize('keys, match', [
    (['rel_pos_bias.relative_position_bias_table', 'layers.0.ln1.weight'],
     r'needs both .*relative_position_index'),
    (['rel_pos_bias.relative_position_bias_table',
      'rel_pos_bias.relative_position_index'], r"no 'layers\.N\.\*' keys"),
    (['rel_pos_bias.relative_position_bias_table',
      'rel_pos_bias.relative_position_index',
      'layers.0.attn.relative_position_bias_table'],
     'both a shared relative position bias .* and per-layer ones'),
])
def test_beit_key_map_refuses_ambiguous_relative_position_bias(keys, match):
    with pytest.raises(CheckpointFormatError, match=match):
        beit_pretrain_key_map(keys)


def test_beit_converter_keeps_other_keys():
    state = {'cls_token': torch.zeros(1, 1, 4),
             'layers.0.gamma_1': torch.ones(4)}
    assert list(beit_pretrain_to_beit_vit(state)) == list(state)
