#!/usr/bin/env python
"""FGSM / PGD robustness of one or several classifier checkpoints.

Usage::

    python tools/eval_adv_robustness.py CONFIG CKPT [CONFIG2 CKPT2 ...]
        --out-dir DIR [--data DIR] [--imagenet-wnids] [--names A B ...]
        [--fgsm-eps 0 1 2 4 8] [--pgd-eps 0 1 2 4 8] [--pgd-steps 20]
        [--pgd-step-size S] [--no-pgd-random-start] [--pixel-range {1,255}]
        [--num-samples N] [--seed 0] [--batch-size B] [--device DEV]

eps and step sizes are in 0-255 pixel units (2 = 2/255). The attacks (ART's
FGSM and PGD) work on pixels; each model's data preprocessor runs inside the
attacked function. ``--data`` is a folder of class folders (labels by sorted
folder name as mmpretrain's CustomDataset, or with ``--imagenet-wnids`` by
ImageNet-1K index of wnid folders); default: each config's test set. Writes
DIR/adv_robustness.json and DIR/adv_robustness.png (accuracy against eps, one
curve per checkpoint).
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
from mmengine.logging import print_log  # noqa: E402
from torch.utils.data import Subset  # noqa: E402

import aemim_mm  # noqa: E402,F401
import aemim_mm.evaluation  # noqa: E402,F401  (registers data sets)
from aemim_mm.evaluation.adversarial import (evaluate_attacks,  # noqa: E402
                                             subset_indices)
from aemim_mm.evaluation.inference import (build_dataset,  # noqa: E402
                                           load_classifier, test_pipeline)
from aemim_mm.utils.cli import (add_checkpoint_pair_args,  # noqa: E402
                                check_checkpoint_pairs)
from aemim_mm.visualization import plot_accuracy_vs_eps  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse and check the command line (paths included)."""
    parser = argparse.ArgumentParser(
        description='FGSM / PGD accuracy against eps for classifiers')
    add_checkpoint_pair_args(parser)
    parser.add_argument('--imagenet-wnids', action='store_true',
                        help='--data has ImageNet wnid (or 0..999) folders: '
                        'label by ImageNet-1K index')
    parser.add_argument('--fgsm-eps', nargs='+', type=float,
                        default=[0, 1, 2, 4, 8])
    parser.add_argument('--pgd-eps', nargs='+', type=float,
                        default=[0, 1, 2, 4, 8])
    parser.add_argument('--pgd-steps', type=int, default=20)
    parser.add_argument('--pgd-step-size', type=float, default=None,
                        help='0-255 units (default: 2.5 * eps / steps)')
    parser.add_argument('--no-pgd-random-start', action='store_true')
    parser.add_argument('--pixel-range', type=float, choices=[1.0, 255.0],
                        default=1.0, help='attack space [0, 1] or [0, 255]')
    parser.add_argument('--num-samples', type=int, default=None,
                        help='attack a seeded random subset of N images')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--num-workers', type=int, default=2)
    parser.add_argument('--device', default=None)
    args = parser.parse_args(argv)
    check_checkpoint_pairs(parser, args)
    if any(e < 0 for e in args.fgsm_eps + args.pgd_eps):
        parser.error('eps values must be >= 0')
    if args.pgd_steps < 1:
        parser.error('--pgd-steps must be >= 1')
    if args.num_samples is not None and args.num_samples < 1:
        parser.error('--num-samples must be >= 1')
    return args


def main(argv: Optional[List[str]] = None) -> dict:
    """Attack every checkpoint; write the JSON and the plot."""
    args = parse_args(argv)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    names = args.names or [
        osp.splitext(osp.basename(ckpt))[0] for _, ckpt in args.pairs
    ]
    os.makedirs(args.out_dir, exist_ok=True)
    report = dict(settings=dict(
        data=args.data, fgsm_eps=args.fgsm_eps, pgd_eps=args.pgd_eps,
        pgd_steps=args.pgd_steps, pgd_step_size=args.pgd_step_size,
        pgd_random_start=not args.no_pgd_random_start,
        pixel_range=args.pixel_range, num_samples=args.num_samples,
        seed=args.seed, eps_unit='1/255', attack_library='ART'),
                  models=[])
    curves = {}
    for name, (config, ckpt) in zip(names, args.pairs):
        print_log(f'== {name}: {config} {ckpt}', logger='current')
        model, cfg = load_classifier(config, ckpt, device)
        if args.data is not None:
            dataset_cfg = dict(
                type='ImageNetClassFolders' if args.imagenet_wnids else
                'CustomDataset', data_root=args.data)
        else:
            dataset_cfg = dict(cfg.test_dataloader.dataset)
        dataset = build_dataset(dataset_cfg, test_pipeline(cfg))
        dataset = Subset(dataset,
                         subset_indices(len(dataset), args.num_samples,
                                        args.seed))
        result = evaluate_attacks(
            model, dataset, args.fgsm_eps, args.pgd_eps, args.pgd_steps,
            args.pgd_step_size, not args.no_pgd_random_start,
            args.pixel_range, args.batch_size, args.num_workers, device,
            args.seed)
        print_log(
            f'{name}: clean {result["clean"]:.2f} | FGSM ' + ', '.join(
                f'{e:g}: {a:.2f}' for e, a in result['fgsm'].items()) +
            ' | PGD ' + ', '.join(f'{e:g}: {a:.2f}'
                                  for e, a in result['pgd'].items()),
            logger='current')
        curves[name] = result
        report['models'].append(dict(name=name, config=config,
                                     checkpoint=ckpt, **result))
    out_json = osp.join(args.out_dir, 'adv_robustness.json')
    with open(out_json, 'w') as f:
        json.dump(report, f, indent=2)
    plot_accuracy_vs_eps(curves, osp.join(args.out_dir, 'adv_robustness.png'))
    print_log(f'results: {out_json}', logger='current')
    return report


if __name__ == '__main__':
    main()
