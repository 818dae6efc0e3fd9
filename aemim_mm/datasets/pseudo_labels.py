"""AdvCL's pseudo-labels: k-means clusters of a pre-trained encoder's
features of the training images (ClusterFit), computed once and cached.

AdvCL (Fan et al., NeurIPS 2021) trains five classification heads on
cluster assignments of its training images, from k-means with k = 2, 10,
50, 100 and 500 over the features of an ImageNet-pretrained SimCLR encoder.
:func:`load_or_compute_pseudo_labels` computes them for any dataset and
encoder checkpoint, with progress and ETA, and caches them on disk keyed by
the checkpoint's bytes, the data (every image's path and size, in dataset
order) and the settings; a cache file that does not match is refused with
:class:`PseudoLabelCacheError`, never silently used.
"""
import copy
import hashlib
import json
import os
import os.path as osp
import sys
from dataclasses import asdict, dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.utils import ProgressBar

from ..utils.safe_load import safe_load

__all__ = ['PseudoLabelSpec', 'PseudoLabelCacheError', 'data_fingerprint',
           'file_sha256', 'compute_pseudo_labels',
           'load_or_compute_pseudo_labels']

#: ImageNet's mean / std (0-255, RGB): the normalisation of mmpretrain's
#: ImageNet checkpoints.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


class PseudoLabelCacheError(ValueError):
    """A pseudo-label cache that does not match the run's checkpoint, data
    or settings (the message names what differs)."""


@dataclass
class PseudoLabelSpec:
    """How the pseudo-labels are computed.

    Attributes:
        checkpoint: The encoder checkpoint (a local path), with its weights
            under ``backbone.`` (mmpretrain's pre-training and
            classification checkpoints) or without a prefix.
        backbone: The encoder's mmpretrain backbone config (e.g.
            ``dict(type='ResNet', depth=50)``).
        ks: The numbers of clusters, one head each (AdvCL: 2, 10, 50, 100,
            500).
        image_size: Images are resized to this square size for the encoder.
        mean: Per-channel normalisation mean (0-255, RGB).
        std: Per-channel normalisation std.
        batch_size: Images per encoder forward.
        seed: k-means' seed.
    """
    checkpoint: str
    backbone: dict
    ks: Tuple[int, ...] = (2, 10, 50, 100, 500)
    image_size: int = 224
    mean: Tuple[float, ...] = IMAGENET_MEAN
    std: Tuple[float, ...] = IMAGENET_STD
    batch_size: int = 64
    seed: int = 0

    def settings(self) -> dict:
        """Everything but the checkpoint path, for the cache key."""
        out = asdict(self)
        out.pop('checkpoint')
        out['ks'] = list(self.ks)
        return out


def file_sha256(path: str) -> str:
    """The sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def data_fingerprint(paths: Sequence[str], root: str = '') -> str:
    """A sha256 over every image's path (relative to ``root``) and size, in
    dataset order."""
    digest = hashlib.sha256()
    for path in paths:
        rel = osp.relpath(path, root) if root else path
        digest.update(f'{rel}\t{os.path.getsize(path)}\n'.encode())
    return digest.hexdigest()


def _encoder(spec: PseudoLabelSpec, device: torch.device) -> torch.nn.Module:
    """The backbone of ``spec`` with the checkpoint's weights (strict)."""
    from mmengine.registry import DefaultScope

    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        backbone = MODELS.build(copy.deepcopy(spec.backbone))
    state = safe_load(spec.checkpoint, map_location='cpu')
    state = state.get('state_dict', state)
    if any(k.startswith('backbone.') for k in state):
        state = {k[len('backbone.'):]: v for k, v in state.items()
                 if k.startswith('backbone.')}
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise PseudoLabelCacheError(
            f'The pseudo-label checkpoint {spec.checkpoint!r} does not fit the '
            f'backbone {spec.backbone.get("type")}: {len(missing)} missing '
            f'(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. '
            f'{unexpected[:3]}) keys.')
    backbone.to(device)
    backbone.eval()     # (mmpretrain's ResNet.train returns None)
    return backbone


@torch.no_grad()
def _features(paths: Sequence[str], spec: PseudoLabelSpec,
              device: torch.device) -> np.ndarray:
    """L2-normalised, globally pooled last-stage features of the images."""
    import mmcv
    encoder = _encoder(spec, device)
    mean = torch.tensor(spec.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, device=device).view(1, 3, 1, 1)
    feats: List[np.ndarray] = []
    bar = ProgressBar(len(paths), file=sys.stdout)
    for start in range(0, len(paths), spec.batch_size):
        batch = []
        for path in paths[start:start + spec.batch_size]:
            img = mmcv.imread(path, channel_order='rgb')
            img = mmcv.imresize(img, (spec.image_size, spec.image_size),
                                interpolation='bilinear')
            batch.append(torch.from_numpy(img).permute(2, 0, 1))
            bar.update()
        x = (torch.stack(batch).to(device).float() - mean) / std
        out = encoder(x)[-1]
        pooled = F.adaptive_avg_pool2d(out, 1).flatten(1) if out.dim() == 4 \
            else out
        feats.append(F.normalize(pooled, dim=1).cpu().numpy())
    print()
    return np.concatenate(feats)


def compute_pseudo_labels(paths: Sequence[str], spec: PseudoLabelSpec,
                          device: Optional[torch.device] = None
                          ) -> torch.Tensor:
    """k-means assignments of every image, one column per ``k``.

    Args:
        paths: The images, in dataset order.
        spec: Encoder, sizes and cluster counts.
        device: Where the encoder runs (default: CUDA when available).

    Returns:
        A (len(paths), len(spec.ks)) int64 tensor.

    Raises:
        ValueError: If a ``k`` exceeds the number of images.
    """
    from sklearn.cluster import KMeans
    too_many = [k for k in spec.ks if k > len(paths)]
    if too_many:
        raise ValueError(f'pseudo-label ks {too_many} exceed the number of '
                         f'images ({len(paths)}).')
    device = device or torch.device(
        'cuda' if torch.cuda.is_available() else 'cpu')
    print_log(f'Pseudo-labels: features of {len(paths)} images from '
              f'{spec.checkpoint}', logger='current')
    feats = _features(paths, spec, device)
    columns = []
    for k in spec.ks:
        print_log(f'Pseudo-labels: k-means with k={k}', logger='current')
        km = KMeans(n_clusters=k, n_init=1, random_state=spec.seed)
        columns.append(km.fit_predict(feats).astype(np.int64))
    return torch.from_numpy(np.stack(columns, axis=1))


def load_or_compute_pseudo_labels(paths: Sequence[str],
                                  spec: PseudoLabelSpec,
                                  cache: str,
                                  root: str = '',
                                  device: Optional[torch.device] = None
                                  ) -> torch.Tensor:
    """The pseudo-labels from ``cache``, computed and written there first if
    it does not exist.

    Args:
        paths: The images, in dataset order.
        spec: How to compute them.
        cache: The cache file.
        root: Paths are fingerprinted relative to it (a moved data folder
            keeps its cache).
        device: Where the encoder runs.

    Returns:
        A (len(paths), len(spec.ks)) int64 tensor.

    Raises:
        FileNotFoundError: If the checkpoint does not exist.
        PseudoLabelCacheError: If ``cache`` exists and was computed from
            another checkpoint, other data or other settings.
    """
    if not osp.isfile(spec.checkpoint):
        raise FileNotFoundError(
            f'pseudo-label checkpoint not found: {spec.checkpoint!r}')
    key = dict(checkpoint_sha256=file_sha256(spec.checkpoint),
               data_sha256=data_fingerprint(paths, root),
               num_images=len(paths), settings=spec.settings())
    if osp.isfile(cache):
        saved = safe_load(cache)
        differs = [name for name in key if saved.get(name) != key[name]]
        if differs:
            raise PseudoLabelCacheError(
                f'The pseudo-label cache {cache!r} does not match this run: '
                f'its {", ".join(differs)} differ ('
                + '; '.join(f'{n}: cache {json.dumps(saved.get(n))[:80]} vs '
                            f'run {json.dumps(key[n])[:80]}' for n in differs)
                + '). Delete it to recompute, or point the cache elsewhere.')
        print_log(f'Pseudo-labels: read {cache}', logger='current')
        return saved['labels']
    labels = compute_pseudo_labels(paths, spec, device)
    os.makedirs(osp.dirname(osp.abspath(cache)), exist_ok=True)
    tmp = cache + '.tmp'
    torch.save(dict(key, labels=labels), tmp)
    os.replace(tmp, cache)
    print_log(f'Pseudo-labels: wrote {cache}', logger='current')
    return labels
