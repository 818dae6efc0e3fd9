#!/usr/bin/env python
"""OOD / corruption robustness of a fine-tuned classifier.

Usage::

    python tools/eval_ood.py CONFIG CHECKPOINT --out-dir DIR
        [--imagenet-val DIR] [--imagenet-real REAL_JSON] [--imagenet-v2 DIR]
        [--imagenet-a DIR] [--imagenet-r DIR] [--imagenet-sketch DIR]
        [--imagenet-c DIR] [--cifar10-c DIR] [--max-per-class N]
        [--batch-size B] [--num-workers W] [--device DEV]
        [--cfg-options K=V ...]

Every data set is optional; each given path is checked before the model is
built. ImageNet-A/-R are scored over their 200 classes, ImageNet-C by the
AlexNet-normalised mCE, and the summary prints the paper's OOD score
(mean of A, R, Sketch top-1 and 100 - mCE) when A, R, Sketch and C are all
given. Writes DIR/ood_results.json and, for ImageNet-C / CIFAR-10-C,
DIR/imagenet_c_heatmap.png / DIR/cifar10_c_heatmap.png. Layouts: see
docs/downstream.md ("Robustness evaluation").
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import List, Optional

_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402
from mmengine.logging import print_log  # noqa: E402

import aemim_mm  # noqa: E402,F401
import aemim_mm.evaluation  # noqa: E402,F401  (registers data sets, metrics)
from aemim_mm.evaluation.inference import (load_classifier,  # noqa: E402
                                           test_pipeline)
from aemim_mm.evaluation.ood import (PATH_KINDS, check_paths,  # noqa: E402
                                     evaluate_cifar10_c,
                                     evaluate_imagenet_ood, summary_table)
from aemim_mm.visualization import plot_corruption_heatmap  # noqa: E402

IMAGENET_KEYS = [k for k in PATH_KINDS if k.startswith('imagenet')]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description='Evaluate a classifier on ImageNet-Real/-V2/-A/-R/-Sketch'
        '/-C and a generated CIFAR-10-C')
    parser.add_argument('config', help='classifier config (ImageClassifier)')
    parser.add_argument('checkpoint', help='fine-tuned checkpoint')
    parser.add_argument('--out-dir', required=True,
                        help='where ood_results.json and the heat maps go')
    for key, what in PATH_KINDS.items():
        parser.add_argument('--' + key.replace('_', '-'), dest=key,
                            metavar='PATH', help=what)
    parser.add_argument('--max-per-class', type=int, default=None,
                        help='images per class and data set (quick runs; '
                        'default: all)')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--num-workers', type=int, default=2)
    parser.add_argument('--device', default=None,
                        help='cpu or cuda (default: cuda when available)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='config overrides, e.g. model.head.num_classes=10')
    args = parser.parse_args(argv)
    if not any(getattr(args, k) for k in PATH_KINDS):
        parser.error('give at least one data set: ' + ', '.join(
            '--' + k.replace('_', '-') for k in PATH_KINDS))
    if args.max_per_class is not None and args.max_per_class < 1:
        parser.error('--max-per-class must be >= 1')
    return args


def main(argv: Optional[List[str]] = None) -> dict:
    """Check the paths, build the model, evaluate, write and print."""
    args = parse_args(argv)
    paths = {k: getattr(args, k) for k in PATH_KINDS}
    check_paths(paths)  # before any model work
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    model, cfg = load_classifier(args.config, args.checkpoint, device,
                                 args.cfg_options)
    pipeline = test_pipeline(cfg)
    run = dict(batch_size=args.batch_size, num_workers=args.num_workers)
    os.makedirs(args.out_dir, exist_ok=True)

    results = evaluate_imagenet_ood(
        model, pipeline, {k: paths[k]
                          for k in IMAGENET_KEYS}, args.max_per_class, **run)
    if 'imagenet-c' in results:
        plot_corruption_heatmap(
            results['imagenet-c']['top1'],
            osp.join(args.out_dir, 'imagenet_c_heatmap.png'),
            'ImageNet-C top-1 (%)')
    if paths['cifar10_c']:
        results['cifar10-c'] = evaluate_cifar10_c(model, pipeline,
                                                  paths['cifar10_c'], **run)
        plot_corruption_heatmap(
            results['cifar10-c']['top1'],
            osp.join(args.out_dir, 'cifar10_c_heatmap.png'),
            'CIFAR-10-C top-1 (%)')
    results['settings'] = dict(config=args.config, checkpoint=args.checkpoint,
                               paths=paths, max_per_class=args.max_per_class)
    out_json = osp.join(args.out_dir, 'ood_results.json')
    with open(out_json, 'w') as f:
        json.dump(results, f, indent=2)
    print_log('\n' + summary_table(results), logger='current')
    print_log(f'results: {out_json}', logger='current')
    return results


if __name__ == '__main__':
    main()
