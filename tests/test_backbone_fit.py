"""How an exported encoder fits a fine-tuning config's backbone
(aemim_mm.apis.backbone_fit, tools/export_encoder.py --finetune-config):
iTPN-CLIP pre-trains HiViT with layer scale, which mmpretrain's HiViT config
lacks; the check names what non-strict loading would lose."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import aemim_mm  # noqa: F401
from aemim_mm.apis import (check_backbone_fit, export_encoder,
                           finetune_backbone)
from module_loader import load_tool
from mmpretrain.registry import MODELS

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED = REPO_ROOT / 'configs' / 'finetune' / \
    'hivit-b_aemim-itpn-clip-pre_100e_in1k.py'
TINY_ARCH = dict(embed_dims=64, depths=[1, 1, 2], num_heads=2)


@pytest.fixture(scope='module')
def itpn_clip_export(tmp_path_factory) -> str:
    """An iTPN-CLIP pre-training checkpoint (tiny HiViT with layer scale, as
    iTPN-CLIP pre-trains), exported for mmpretrain."""
    init_default_scope('mmpretrain')
    tmp = tmp_path_factory.mktemp('itpn')
    backbone = MODELS.build(dict(
        type='iTPNHiViT', arch=TINY_ARCH, rpe=True,
        layer_scale_init_value=0.1, reconstruction_type='clip'))
    state = {'backbone.' + k: v for k, v in backbone.state_dict().items()}
    state['neck.decoder_embed.weight'] = torch.zeros(2, 2)
    torch.save(dict(meta=dict(epoch=1), state_dict=state),
               tmp / 'epoch_1.pth')
    return export_encoder(tmp / 'epoch_1.pth', tmp / 'export',
                          formats=['mmpretrain']).paths['mmpretrain']


def _tiny_config(tmp_path: Path, base: str, **backbone) -> Path:
    """A config inheriting ``base`` with the tiny arch (and ``backbone``)."""
    path = tmp_path / 'tiny.py'
    arch = dict(TINY_ARCH, _delete_=True)
    path.write_text(f'_base_ = [{base!r}]\n'
                    f'model = dict(backbone=dict(arch={arch!r}, '
                    f'**{backbone!r}))\n')
    return path


@pytest.mark.parametrize('layer_scale', [0.0, 0.1])
def test_layer_scale_tensors_are_named_when_the_backbone_lacks_them(
        itpn_clip_export, layer_scale):
    backbone = MODELS.build(dict(type='HiViT', arch=TINY_ARCH, rpe=True,
                                 layer_scale_init_value=layer_scale))
    fit = check_backbone_fit(itpn_clip_export, backbone)
    exported = torch.load(itpn_clip_export, weights_only=True)['state_dict']
    gammas = sorted(k[len('backbone.'):] for k in exported if '.gamma_' in k)
    assert len(gammas) > 4          # every block has one or two
    lost = not layer_scale
    assert sorted(fit.dropped) == (gammas if lost else [])
    assert fit.loses_weights is lost
    assert not fit.mismatched and not fit.new
    assert ('WARNING' in fit.summary()) is bool(lost)


def test_shape_mismatch_and_new_tensors_are_reported(itpn_clip_export):
    backbone = MODELS.build(dict(
        type='HiViT', arch=dict(TINY_ARCH, embed_dims=32), rpe=True,
        layer_scale_init_value=0.1, ape=True))
    fit = check_backbone_fit(itpn_clip_export, backbone)
    assert 'pos_embed' in fit.mismatched
    assert fit.mismatched['pos_embed'][0][-1] == 64
    assert fit.loses_weights


def test_the_shipped_config_keeps_every_tensor_and_upstreams_does_not(
        itpn_clip_export, tmp_path):
    tool = load_tool('export_encoder')
    src = Path(itpn_clip_export)
    ours = _tiny_config(tmp_path, str(SHIPPED))
    assert check_backbone_fit(itpn_clip_export, finetune_backbone(
        Config.fromfile(ours).model)).dropped == []
    upstream = tmp_path / 'up'
    upstream.mkdir()
    theirs = _tiny_config(upstream,
                          'mmpretrain::hivit/hivit-base-p16_16xb64_in1k.py')
    ckpt = tmp_path / 'epoch_1.pth'     # a pre-training checkpoint again
    state = torch.load(src, weights_only=True)['state_dict']
    state['backbone.mask_token'] = torch.zeros(1, 1, 64)
    state['neck.decoder_embed.weight'] = torch.zeros(2, 2)
    torch.save(dict(state_dict=state), ckpt)
    out = tmp_path / 'out'
    assert tool.main([str(ckpt), '--out-dir', str(out), '--formats',
                      'mmpretrain', '--finetune-config', str(ours)]) == 0
    assert tool.main([str(ckpt), '--out-dir', str(out), '--formats',
                      'mmpretrain', '--finetune-config', str(theirs)]) == 2


def test_cli_refuses_a_bad_config_before_writing(itpn_clip_export, tmp_path,
                                                 capsys):
    tool = load_tool('export_encoder')
    out = tmp_path / 'out'
    assert tool.main([str(itpn_clip_export), '--out-dir', str(out),
                      '--finetune-config', str(tmp_path / 'nope.py')]) == 1
    assert 'error: --finetune-config' in capsys.readouterr().err
    assert not out.exists()
    assert tool.main([str(itpn_clip_export), '--out-dir', str(out),
                      '--formats', 'det', '--finetune-config',
                      str(SHIPPED)]) == 1
    assert 'add mmpretrain to --formats' in capsys.readouterr().err
