"""Out-of-distribution evaluation: ImageNet variants, ImageNet-C, CIFAR-10-C.

Data layouts (every class folder may hold sub-folders; images are found
recursively):

* ImageNet val, -V2, -A, -R, -Sketch: ``ROOT/<class>/<image>``; ``<class>`` is
  an ImageNet-1K wnid (``n01440764``) or a class index ``0``..``999``
  (ImageNet-V2's own layout). -A and -R hold their 200 classes.
* ImageNet-Real: the ``real.json`` labels file plus the val images
  (``ILSVRC2012_val_XXXXXXXX.*``, flat or in class folders).
* ImageNet-C: ``ROOT/<corruption>/<severity 1-5>/<wnid>/<image>`` for the 15
  standard corruptions.
* CIFAR-10-C (``tools/make_cifar10c.py``): ``ROOT/<corruption>/<severity>/
  <class>/<image>`` and ``ROOT/clean/<class>/<image>``, class folders named as
  in the training set (labels by sorted folder name, as ``CustomDataset``).
"""
import os
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.logging import print_log

from .corruption_error import (IMAGENET_C_CORRUPTIONS, IMAGENET_C_SEVERITIES,
                               corruption_errors, mean_corruption_error,
                               ood_score)
from .inference import build_dataset, evaluate

# name -> (what the path is, must be a file?)
PATH_KINDS = OrderedDict([
    ('imagenet_val', 'ImageNet val images folder'),
    ('imagenet_real', 'ImageNet-Real real.json labels file'),
    ('imagenet_v2', 'ImageNet-V2 folder'),
    ('imagenet_a', 'ImageNet-A folder'),
    ('imagenet_r', 'ImageNet-R folder'),
    ('imagenet_sketch', 'ImageNet-Sketch folder'),
    ('imagenet_c', 'ImageNet-C folder'),
    ('cifar10_c', 'CIFAR-10-C folder (tools/make_cifar10c.py)'),
])


def corruption_dirs(root: str, corruptions: Sequence[str],
                    severities: Sequence[int] = IMAGENET_C_SEVERITIES
                    ) -> Dict[str, Dict[int, str]]:
    """``{corruption: {severity: ROOT/corruption/severity}}``."""
    return {
        c: {s: osp.join(root, c, str(s))
            for s in severities}
        for c in corruptions
    }


def check_paths(paths: Dict[str, Optional[str]],
                imagenet_c_corruptions: Sequence[str] = IMAGENET_C_CORRUPTIONS,
                cifar10_c_corruptions: Optional[Sequence[str]] = None) -> None:
    """Check every given data set path before any model work.

    Args:
        paths: ``{key: path or None}`` with keys of :data:`PATH_KINDS`.
        imagenet_c_corruptions: Corruptions whose 5 severity folders must
            exist under ``imagenet_c``.
        cifar10_c_corruptions: The same for ``cifar10_c`` (``None``: the
            corruption folders found there).

    Raises:
        ValueError: On an unknown key, or ``imagenet_real`` without
            ``imagenet_val``.
        FileNotFoundError: Naming the first missing path (and what it is).
    """
    unknown = set(paths) - set(PATH_KINDS)
    if unknown:
        raise ValueError(f'unknown data set keys {sorted(unknown)}; allowed: '
                         f'{list(PATH_KINDS)}')
    for key, path in paths.items():
        if path is None:
            continue
        exists = osp.isfile(path) if key == 'imagenet_real' else osp.isdir(
            path)
        if not exists:
            raise FileNotFoundError(f'{PATH_KINDS[key]} not found: {path} '
                                    f'(--{key.replace("_", "-")})')
    if paths.get('imagenet_real') and not paths.get('imagenet_val'):
        raise ValueError('--imagenet-real needs --imagenet-val (the val '
                         'images the real.json labels refer to)')
    if paths.get('imagenet_c'):
        _check_corruption_tree(paths['imagenet_c'], imagenet_c_corruptions,
                               'ImageNet-C')
    if paths.get('cifar10_c'):
        corruptions = (cifar10_c_corruptions if cifar10_c_corruptions
                       is not None else find_corruptions(paths['cifar10_c']))
        if not corruptions:
            raise FileNotFoundError(
                f'CIFAR-10-C folder has no <corruption>/<severity>/ folders: '
                f'{paths["cifar10_c"]}')
        _check_corruption_tree(paths['cifar10_c'], corruptions, 'CIFAR-10-C')


def _check_corruption_tree(root: str, corruptions: Sequence[str],
                           what: str) -> None:
    for by_severity in corruption_dirs(root, corruptions).values():
        for path in by_severity.values():
            if not osp.isdir(path):
                raise FileNotFoundError(f'{what} severity folder not found: '
                                        f'{path}')


def find_corruptions(root: str) -> List[str]:
    """Corruption folders under ``root``: those with a ``1/`` sub-folder."""
    import os
    return sorted(
        d for d in os.listdir(root)
        if osp.isdir(osp.join(root, d, '1')) and d != 'clean')


def _top1(result: dict) -> float:
    keys = [k for k in result if k.endswith('top1')]
    return float(result[keys[0]])


def evaluate_imagenet_ood(model: torch.nn.Module, pipeline: Sequence[dict],
                          paths: Dict[str, Optional[str]],
                          max_per_class: Optional[int] = None,
                          corruptions: Sequence[str] = IMAGENET_C_CORRUPTIONS,
                          batch_size: int = 64, num_workers: int = 2
                          ) -> dict:
    """Score a 1000-way ImageNet classifier on the given ImageNet variants.

    Args:
        model: An mmpretrain classifier with 1000 ImageNet-1K outputs.
        pipeline: The test pipeline (from the classifier's config).
        paths: ``{key: path or None}`` (see :data:`PATH_KINDS`); already
            checked with :func:`check_paths`.
        max_per_class: Images per class kept in each data set (``None``: all;
            for ImageNet-Real, ``1000 * max_per_class`` images).
        corruptions: ImageNet-C corruptions in the mCE.
        batch_size: Images per batch.
        num_workers: Data loading processes.

    Returns:
        ``{'imagenet': top1, 'imagenet-real': ..., 'imagenet-v2': ...,
        'imagenet-a': ..., 'imagenet-r': ..., 'imagenet-sketch': ...,
        'imagenet-c': {'top1': {c: {s: acc}}, 'ce': {c: CE}, 'mce': mCE},
        'score': ...}`` for what was given (all in %). ``score`` (the paper's
        OOD score) needs A, R, Sketch and C.
    """
    results: dict = {}
    acc = [dict(type='Accuracy', topk=(1, ))]
    folder_sets = [('imagenet_val', 'imagenet', acc),
                   ('imagenet_v2', 'imagenet-v2', acc),
                   ('imagenet_a', 'imagenet-a',
                    [dict(type='SubsetAccuracy', subset='imagenet-a')]),
                   ('imagenet_r', 'imagenet-r',
                    [dict(type='SubsetAccuracy', subset='imagenet-r')]),
                   ('imagenet_sketch', 'imagenet-sketch', acc)]
    run = dict(batch_size=batch_size, num_workers=num_workers)
    for key, name, metrics in folder_sets:
        if not paths.get(key):
            continue
        dataset = build_dataset(
            dict(type='ImageNetClassFolders', data_root=paths[key],
                 max_per_class=max_per_class), pipeline)
        results[name] = _top1(evaluate(model, dataset, metrics, name, **run))
        print_log(f'{name}: top-1 {results[name]:.2f}', logger='current')
    if paths.get('imagenet_real'):
        dataset = build_dataset(
            dict(type='ImageNetReal', data_root=paths['imagenet_val'],
                 real_json=paths['imagenet_real'],
                 max_images=None if max_per_class is None else 1000 *
                 max_per_class), pipeline)
        results['imagenet-real'] = _top1(
            evaluate(model, dataset, [dict(type='RealAccuracy')],
                     'imagenet-real', **run))
    if paths.get('imagenet_c'):
        top1 = evaluate_corruption_grid(
            model, pipeline, paths['imagenet_c'], corruptions,
            dataset_type='ImageNetClassFolders', max_per_class=max_per_class,
            **run)
        results['imagenet-c'] = dict(
            top1=top1, ce=corruption_errors(top1),
            mce=mean_corruption_error(top1, corruptions))
    if all(k in results for k in ('imagenet-a', 'imagenet-r',
                                  'imagenet-sketch', 'imagenet-c')):
        results['score'] = ood_score(results['imagenet-a'],
                                     results['imagenet-r'],
                                     results['imagenet-sketch'],
                                     results['imagenet-c']['mce'])
    return results


def evaluate_corruption_grid(model: torch.nn.Module, pipeline: Sequence[dict],
                             root: str, corruptions: Sequence[str],
                             severities: Sequence[int] = IMAGENET_C_SEVERITIES,
                             dataset_type: str = 'CustomDataset',
                             max_per_class: Optional[int] = None,
                             batch_size: int = 64, num_workers: int = 2
                             ) -> Dict[str, Dict[int, float]]:
    """Top-1 (%) on ``root/<corruption>/<severity>`` for every pair.

    Args:
        dataset_type: ``'ImageNetClassFolders'`` (wnid folders, ImageNet-C) or
            ``'CustomDataset'`` (labels by sorted folder name, CIFAR-10-C).
        max_per_class: Only for ``ImageNetClassFolders``.
    """
    top1: Dict[str, Dict[int, float]] = {}
    dirs = corruption_dirs(root, corruptions, severities)
    for corruption, by_severity in dirs.items():
        top1[corruption] = {}
        for severity, path in by_severity.items():
            cfg = dict(type=dataset_type, data_root=path)
            if dataset_type == 'ImageNetClassFolders':
                cfg['max_per_class'] = max_per_class
            dataset = build_dataset(cfg, pipeline)
            name = f'{osp.basename(osp.normpath(root))}/{corruption}/{severity}'
            top1[corruption][severity] = _top1(
                evaluate(model, dataset, [dict(type='Accuracy', topk=(1, ))],
                         name, batch_size, num_workers))
            print_log(f'{name}: top-1 {top1[corruption][severity]:.2f}',
                      logger='current')
    return top1


def evaluate_cifar10_c(model: torch.nn.Module, pipeline: Sequence[dict],
                       root: str, corruptions: Optional[Sequence[str]] = None,
                       batch_size: int = 64, num_workers: int = 2) -> dict:
    """Accuracy per corruption x severity on a generated CIFAR-10-C.

    Returns:
        ``{'top1': {c: {s: acc}}, 'mean_corruption_accuracy': ...,
        'clean': acc or None, 'corruptions': [...]}`` (all in %).
    """
    corruptions = list(corruptions or find_corruptions(root))
    # the severities generated (tools/make_cifar10c.py --severities ...)
    severities = sorted({
        int(d)
        for c in corruptions for d in os.listdir(osp.join(root, c))
        if d.isdigit()
    })
    top1 = evaluate_corruption_grid(model, pipeline, root, corruptions,
                                    severities=severities,
                                    dataset_type='CustomDataset',
                                    batch_size=batch_size,
                                    num_workers=num_workers)
    values = [v for by_s in top1.values() for v in by_s.values()]
    clean = None
    if osp.isdir(osp.join(root, 'clean')):
        dataset = build_dataset(
            dict(type='CustomDataset', data_root=osp.join(root, 'clean')),
            pipeline)
        clean = _top1(
            evaluate(model, dataset, [dict(type='Accuracy', topk=(1, ))],
                     'cifar10-c/clean', batch_size, num_workers))
    return dict(top1=top1, mean_corruption_accuracy=sum(values) / len(values),
                clean=clean, corruptions=corruptions)


def summary_table(results: dict) -> str:
    """A plain-text table of :func:`evaluate_imagenet_ood`'s results."""
    rows = [('data set', 'metric', 'value')]
    names = [('imagenet', 'ImageNet-1K val', 'top-1'),
             ('imagenet-real', 'ImageNet-Real', 'top-1'),
             ('imagenet-v2', 'ImageNet-V2', 'top-1'),
             ('imagenet-a', 'ImageNet-A (200 classes)', 'top-1'),
             ('imagenet-r', 'ImageNet-R (200 classes)', 'top-1'),
             ('imagenet-sketch', 'ImageNet-Sketch', 'top-1')]
    for key, label, metric in names:
        if key in results:
            rows.append((label, metric, f'{results[key]:.2f}'))
    if 'imagenet-c' in results:
        rows.append(('ImageNet-C', 'mCE (lower is better)',
                     f'{results["imagenet-c"]["mce"]:.2f}'))
    if 'score' in results:
        rows.append(('OOD score', 'mean(A, R, Sketch, 100 - mCE)',
                     f'{results["score"]:.2f}'))
    else:
        rows.append(('OOD score', 'needs A, R, Sketch and C', 'n/a'))
    if 'cifar10-c' in results:
        c10 = results['cifar10-c']
        if c10.get('clean') is not None:
            rows.append(('CIFAR-10-C', 'clean top-1', f'{c10["clean"]:.2f}'))
        rows.append(('CIFAR-10-C', 'mean corruption accuracy',
                     f'{c10["mean_corruption_accuracy"]:.2f}'))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ['  '.join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, '  '.join('-' * w for w in widths))
    return '\n'.join(lines)
