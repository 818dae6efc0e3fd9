"""PseudoLabelHook: AdvCL's pseudo-labels, computed or read once, before
training.

Config::

    custom_hooks = [dict(
        type='PseudoLabelHook',
        checkpoint='https://download.openmmlab.com/.../simclr_....pth',
        backbone=dict(type='ResNet', depth=50),
        ks=(2, 10, 50, 100, 500))]

In ``before_train`` (after a resume, before the first iteration), rank 0
reads the cache, or computes the labels of every training image (features
of the checkpoint's encoder, k-means; progress and ETA in the log) and
writes the cache; the other ranks wait, then read it. The labels go to the
model (``set_pseudo_labels``), which looks them up by each sample's
``sample_idx``. The cache (default ``<work_dir>/pseudo_labels.pth``) is
keyed by the checkpoint's bytes, the data and the settings
(:mod:`aemim_mm.datasets.pseudo_labels`); one that does not match stops the
run with :class:`~aemim_mm.datasets.pseudo_labels.PseudoLabelCacheError`.
"""
import os.path as osp
from typing import Optional, Sequence

from mmengine.dist import barrier, get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmpretrain.registry import HOOKS
from ...datasets.pseudo_labels import (IMAGENET_MEAN, IMAGENET_STD,
                                       PseudoLabelSpec,
                                       load_or_compute_pseudo_labels)
from ...utils.checks import is_int
from ...utils.safe_load import download_checkpoint

__all__ = ['PseudoLabelHook']


@HOOKS.register_module()
class PseudoLabelHook(Hook):
    """Give the model its pseudo-labels before training (AdvCL).

    Args:
        checkpoint: The encoder's checkpoint: a local path or a URL
            (downloaded into torch.hub's cache, never unpickled unsafely).
        backbone: The encoder's mmpretrain backbone config.
        ks: The numbers of clusters (AdvCL: 2, 10, 50, 100, 500), in the
            order of the model's heads.
        image_size: Images are resized to this size for the encoder.
        mean: Normalisation mean (0-255, RGB) of the encoder.
        std: Normalisation std of the encoder.
        batch_size: Images per encoder forward.
        seed: k-means' seed.
        cache: The cache file; ``None``: ``<work_dir>/pseudo_labels.pth``.

    Raises:
        ValueError: For bad ``ks`` / sizes, naming the option.
        FileNotFoundError: For a local ``checkpoint`` that does not exist
            (when the hook is built, before training).
    """

    priority = 'VERY_HIGH'

    def __init__(self,
                 checkpoint: str,
                 backbone: dict,
                 ks: Sequence[int] = (2, 10, 50, 100, 500),
                 image_size: int = 224,
                 mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD,
                 batch_size: int = 64,
                 seed: int = 0,
                 cache: Optional[str] = None) -> None:
        if not isinstance(checkpoint, str) or not checkpoint:
            raise ValueError('PseudoLabelHook: checkpoint must be a path or '
                             f'URL, got {checkpoint!r}.')
        if '://' not in checkpoint and not osp.isfile(checkpoint):
            raise FileNotFoundError(
                f'PseudoLabelHook: checkpoint not found: {checkpoint!r}.')
        if not isinstance(backbone, dict) or 'type' not in backbone:
            raise ValueError('PseudoLabelHook: backbone must be a backbone '
                             f'config dict with a type, got {backbone!r}.')
        ks = tuple(ks)
        if not ks or not all(is_int(k) and k >= 2 for k in ks) or len(
                set(ks)) != len(ks):
            raise ValueError('PseudoLabelHook: ks must be distinct ints >= 2,'
                             f' got {ks!r}.')
        for name, value in (('image_size', image_size),
                            ('batch_size', batch_size)):
            if not is_int(value) or value < 1:
                raise ValueError(f'PseudoLabelHook: {name} must be an int >= '
                                 f'1, got {value!r}.')
        self.checkpoint = checkpoint
        self.spec = PseudoLabelSpec(
            checkpoint=checkpoint, backbone=dict(backbone), ks=ks,
            image_size=image_size, mean=tuple(mean), std=tuple(std),
            batch_size=batch_size, seed=seed)
        self.cache = cache

    def before_train(self, runner) -> None:
        """Read or compute the labels; hand them to the model."""
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        if not hasattr(model, 'set_pseudo_labels'):
            raise TypeError(
                f'PseudoLabelHook: {type(model).__name__} takes no '
                'pseudo-labels (set_pseudo_labels); it is for AdvCL.')
        dataset = runner.train_dataloader.dataset
        paths = [dataset.get_data_info(i)['img_path']
                 for i in range(len(dataset))]
        cache = self.cache or osp.join(runner.work_dir, 'pseudo_labels.pth')
        if '://' in self.checkpoint:
            if get_rank() == 0:
                download_checkpoint(self.checkpoint)
            barrier()
            self.spec.checkpoint = download_checkpoint(self.checkpoint)
        root = getattr(dataset, 'data_root', '') or ''
        if get_rank() == 0:
            labels = load_or_compute_pseudo_labels(paths, self.spec, cache,
                                                   root=root)
        barrier()
        if get_rank() != 0:
            labels = load_or_compute_pseudo_labels(paths, self.spec, cache,
                                                   root=root)
        model.set_pseudo_labels(labels, self.spec.ks)
