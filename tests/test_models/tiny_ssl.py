"""Tiny joint-embedding algorithms (SimCLR, MoCo v2, MoCo v3, BYOL, SimSiam)
and views for the
tests of the survey's adversaries (aemim_mm.models.adversarial_ssl).

Imported by the tests of this folder (pytest puts it on ``sys.path``).
"""
import copy
from typing import List

import torch

from tiny_models import PREPROCESSOR, valid_images

IMG = 16
#: a CIFAR ResNet-18 (3x3 stem), 8 channels wide: 64 output channels
RESNET = dict(type='ResNet_CIFAR', depth=18, stem_channels=8,
              base_channels=8)
FEAT = 64


def simclr_cfg(temperature: float = 0.5) -> dict:
    """A tiny SimCLR (projector with BatchNorm, as mmpretrain's)."""
    return copy.deepcopy(dict(
        type='SimCLR',
        backbone=RESNET,
        neck=dict(type='NonLinearNeck', in_channels=FEAT, hid_channels=32,
                  out_channels=16, num_layers=2, with_avg_pool=True,
                  norm_cfg=dict(type='BN1d')),
        head=dict(type='ContrastiveHead',
                  loss=dict(type='CrossEntropyLoss'),
                  temperature=temperature),
        data_preprocessor=PREPROCESSOR))


def moco_cfg(queue_len: int = 32, temperature: float = 0.2) -> dict:
    """A tiny MoCo v2 (key encoder momentum 0.01 in mmengine's convention:
    MoCo's m = 0.99)."""
    return copy.deepcopy(dict(
        type='MoCo',
        queue_len=queue_len,
        feat_dim=16,
        momentum=0.01,
        backbone=RESNET,
        neck=dict(type='MoCoV2Neck', in_channels=FEAT, hid_channels=32,
                  out_channels=16, with_avg_pool=True),
        head=dict(type='ContrastiveHead',
                  loss=dict(type='CrossEntropyLoss'),
                  temperature=temperature),
        data_preprocessor=PREPROCESSOR))


def mocov3_cfg(temperature: float = 0.2) -> dict:
    """A tiny MoCo v3 (3-layer projector without a last BatchNorm, as
    CaCo's; momentum 0.01 in mmengine's convention, cosine to 0)."""
    return copy.deepcopy(dict(
        type='MoCoV3',
        base_momentum=0.01,
        backbone=RESNET,
        neck=dict(type='NonLinearNeck', in_channels=FEAT, hid_channels=32,
                  out_channels=16, num_layers=3, with_bias=False,
                  with_last_bn=False, with_avg_pool=True,
                  norm_cfg=dict(type='BN1d')),
        head=dict(type='MoCoV3Head',
                  predictor=dict(type='NonLinearNeck', in_channels=16,
                                 hid_channels=32, out_channels=16,
                                 num_layers=2, with_bias=False,
                                 with_last_bn=False, with_avg_pool=False,
                                 norm_cfg=dict(type='BN1d')),
                  loss=dict(type='CrossEntropyLoss',
                            loss_weight=2 * temperature),
                  temperature=temperature),
        data_preprocessor=PREPROCESSOR))


def byol_cfg() -> dict:
    """A tiny BYOL (momentum 0.01 in mmengine's convention)."""
    return copy.deepcopy(dict(
        type='BYOL',
        base_momentum=0.01,
        backbone=RESNET,
        neck=dict(type='NonLinearNeck', in_channels=FEAT, hid_channels=32,
                  out_channels=16, num_layers=2, with_bias=True,
                  with_last_bn=False, with_avg_pool=True,
                  norm_cfg=dict(type='BN1d')),
        head=dict(type='LatentPredictHead',
                  loss=dict(type='CosineSimilarityLoss'),
                  predictor=dict(type='NonLinearNeck', in_channels=16,
                                 hid_channels=32, out_channels=16,
                                 with_bias=True, with_last_bn=False,
                                 with_avg_pool=False,
                                 norm_cfg=dict(type='BN1d'))),
        data_preprocessor=PREPROCESSOR))


def simsiam_cfg() -> dict:
    """A tiny SimSiam."""
    return copy.deepcopy(dict(
        type='SimSiam',
        backbone=RESNET,
        neck=dict(type='NonLinearNeck', in_channels=FEAT, hid_channels=32,
                  out_channels=16, num_layers=2, with_last_bn_affine=False,
                  with_avg_pool=True, norm_cfg=dict(type='BN1d')),
        head=dict(type='LatentPredictHead',
                  loss=dict(type='CosineSimilarityLoss'),
                  predictor=dict(type='NonLinearNeck', in_channels=16,
                                 hid_channels=8, out_channels=16,
                                 with_avg_pool=False, with_last_bn=False,
                                 with_last_bias=True,
                                 norm_cfg=dict(type='BN1d'))),
        data_preprocessor=PREPROCESSOR))


def two_views(batch: int = 4, seed: int = 0) -> List[torch.Tensor]:
    """Two normalised views whose pixels lie in [0, 255]."""
    return [valid_images(batch, seed, IMG), valid_images(batch, seed + 1,
                                                         IMG)]


def set_max_iters(max_iters: int = 100) -> None:
    """What mmengine's Runner tells the message hub, and BYOL's cosine EMA
    reads at every update."""
    from mmengine.logging import MessageHub
    MessageHub.get_current_instance().update_info('max_iters', max_iters)


def build(method: str, algorithm: dict, **kwargs):
    """An initialised survey method around ``algorithm`` (BYOL's EMA gets
    the ``max_iters`` the Runner would give it)."""
    from mmpretrain.registry import MODELS
    set_max_iters()
    model = MODELS.build(dict(type=method, algorithm=algorithm, **kwargs))
    model.init_weights()
    return model


def perturb(model: torch.nn.Module, seed: int = 0) -> None:
    """Make every parameter distinct (BatchNorm weights != 1, adversarial
    twins != clean ones)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)


def export_and_load_strictly(method: str, cfg: dict, kwargs: dict,
                             tmp_path):
    """Build ``method`` around ``cfg``, save it as a training checkpoint,
    export its encoder, and check that the export loads strictly into the
    config's classification backbone with the model's clean tensors.

    Returns:
        The export's result (what was dropped, and why).
    """
    from aemim_mm.apis import export_encoder
    from mmpretrain.registry import MODELS
    model = build(method, cfg, **kwargs)
    perturb(model)
    state = model.state_dict()
    torch.save(dict(meta=dict(epoch=1), state_dict=state),
               tmp_path / 'epoch_1.pth')
    result = export_encoder(tmp_path / 'epoch_1.pth', tmp_path / 'out',
                            formats=['mmpretrain'])
    assert result.target == 'ResNet_CIFAR'
    exported = torch.load(result.paths['mmpretrain'],
                          weights_only=True)['state_dict']
    backbone = MODELS.build(dict(cfg['backbone']))
    backbone.load_state_dict(
        {k[len('backbone.'):]: v for k, v in exported.items()}, strict=True)
    for key, value in backbone.state_dict().items():   # the clean tensors
        assert torch.equal(value, state['backbone.' + key]), key
    result.state = state
    return result
