"""Tiny SparK configs (sparse ResNet-18 / ConvNeXt) for CPU tests.

64 px input, down-sampling 32 -> a 2 x 2 mask of which 2 positions are
kept (``mask_ratio=0.5``): every sample keeps the same number of positions.
Imported by the tests of this folder (pytest puts it on ``sys.path``).
"""
import copy

from tiny_models import PREPROCESSOR

SPARK_IMG = 64
KINDS = ('resnet', 'convnext')
#: The adapter each backbone is trained with: a sparse ResNet has BatchNorms
#: only; a sparse ConvNeXt has sparse LayerNorms and a BatchNorm decoder.
ADAPTER = dict(resnet='bn', convnext='norm')

RESNET = dict(type='SparseResNet', depth=18, base_channels=8, stem_channels=8,
              out_indices=(0, 1, 2, 3))
CONVNEXT_ARCH = dict(depths=[1, 1, 1, 1], channels=[8, 16, 32, 64])
CONVNEXT = dict(type='SparseConvNeXt', arch=CONVNEXT_ARCH,
                out_indices=(0, 1, 2, 3), gap_before_output=False)


def spark_cfg(kind: str, sync: bool = True, **backbone) -> dict:
    """A tiny SparK config with a sparse ResNet-18 (``'resnet'``, width 8)
    or a 1-1-1-1 sparse ConvNeXt (``'convnext'``); ``backbone`` updates the
    backbone dict.

    ``sync=True``: mmpretrain's norms (``SparseSyncBatchNorm2d`` in the
    ResNet and its ``enc_dec_norms``, ``SyncBN`` in the decoder);
    ``sync=False``: their unsynchronised twins (``SparseBatchNorm2d``,
    ``BN``), which mmengine's Runner leaves alone in a 1-process run.
    """
    sparse_bn = 'SparseSyncBatchNorm2d' if sync else 'SparseBatchNorm2d'
    if kind == 'resnet':
        bb, norm = dict(RESNET), dict(type=sparse_bn)
        if not sync:
            bb['norm_cfg'] = dict(type=sparse_bn)
    elif kind == 'convnext':
        bb, norm = dict(CONVNEXT), dict(type='SparseLN2d', eps=1e-6)
    else:
        raise ValueError(kind)
    bb.update(backbone)
    return copy.deepcopy(dict(
        type='SparK', input_size=SPARK_IMG, downsample_raito=32,
        mask_ratio=0.5, enc_dec_norm_cfg=norm, enc_dec_norm_dim=64,
        backbone=bb,
        neck=dict(type='SparKLightDecoder', feature_dim=32,
                  upsample_ratio=32, mid_channels=0, last_act=False,
                  norm_cfg=dict(type='SyncBN' if sync else 'BN')),
        head=dict(type='SparKPretrainHead',
                  loss=dict(type='PixelReconstructionLoss', criterion='L2')),
        data_preprocessor=PREPROCESSOR))


def plain_backbone_cfg(kind: str) -> dict:
    """The mmpretrain classification backbone the encoder exports to."""
    if kind == 'resnet':
        return dict(type='ResNet', depth=18, base_channels=8,
                    stem_channels=8, out_indices=(0, 1, 2, 3))
    return dict(type='ConvNeXt', arch=CONVNEXT_ARCH, out_indices=())
