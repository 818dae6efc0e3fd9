#!/usr/bin/env python
"""PGD-20 and AutoAttack robust accuracy of classifier checkpoints, in
RobustBench's fields (the adversarial pre-training literature's report).

Usage::

    python tools/eval_robust_accuracy.py CONFIG CKPT [CONFIG2 CKPT2 ...]
        --out-dir DIR [--dataset-name cifar10] [--eps 8]
        [--attacks pgd20 autoattack] [--num-samples 1000] [--data DIR]
        [--names A B ...] [--apgd-iters 100] [--targets 9]
        [--square-queries 5000] [--batch-size 128] [--seed 0]

eps is in 0-255 pixel units (8 is 8/255; default: the literature's budget
of ``--dataset-name``: 8 for CIFAR-10, 4 for ImageNet). The attacks are
ART's, and the AutoAttack authors' FAB-T
(:mod:`aemim_mm.evaluation.robust_accuracy`: AutoAttack's standard stages
APGD-CE, APGD-T, FAB-T and Square). ``--num-samples``
attacks a seeded random subset (the literature's CIFAR-10 tables use the
whole test set, RobustBench's 10000 images, or its first 1000 for
AutoAttack on a budget). Writes DIR/robust_accuracy.json (one entry per
checkpoint) and DIR/robust_accuracy.png. Each finished batch is kept in
DIR/state/NAME.jsonl: run the same command again after an interruption
and finished batches are not recomputed (other settings are refused).
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
from aemim_mm.evaluation.adversarial import subset_indices  # noqa: E402
from aemim_mm.evaluation.inference import (  # noqa: E402
    build_dataset, load_classifier, test_pipeline)
from aemim_mm.evaluation.robust_accuracy import (  # noqa: E402
    ATTACKS, THREAT_EPS, AutoAttackSettings, check_attack_options,
    evaluate_robust_accuracy)
from aemim_mm.utils.cli import (  # noqa: E402
    add_checkpoint_pair_args, check_checkpoint_pairs,
    exit_unless_checkpoints_fit)
from aemim_mm.visualization import plot_robust_accuracy  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse and check the command line (paths and options included)."""
    parser = argparse.ArgumentParser(
        description='PGD-20 / AutoAttack robust accuracy of classifiers')
    add_checkpoint_pair_args(parser)
    parser.add_argument('--dataset-name', default='cifar10',
                        choices=sorted(THREAT_EPS),
                        help='reported as RobustBench\'s dataset; sets the '
                        'default eps')
    parser.add_argument('--eps', type=float, default=None,
                        help='L-inf budget in 0-255 units (default: the '
                        'data set\'s: 8 CIFAR, 4 ImageNet)')
    parser.add_argument('--attacks', nargs='+', default=list(ATTACKS),
                        help=f'any of {list(ATTACKS)}')
    parser.add_argument('--num-samples', type=int, default=None,
                        help='attack a seeded random subset of N images')
    parser.add_argument('--apgd-iters', type=int, default=100)
    parser.add_argument('--targets', type=int, default=9,
                        help='APGD-T target classes')
    parser.add_argument('--square-queries', type=int, default=5000)
    parser.add_argument('--pgd-steps', type=int, default=20)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--num-workers', type=int, default=2)
    parser.add_argument('--device', default=None)
    args = parser.parse_args(argv)
    check_checkpoint_pairs(parser, args)
    if args.eps is None:
        args.eps = THREAT_EPS[args.dataset_name]
    try:
        check_attack_options(args.eps, args.attacks)
        args.settings = AutoAttackSettings(
            iters=args.apgd_iters, targets=args.targets,
            square_queries=args.square_queries, pgd_steps=args.pgd_steps)
    except ValueError as e:
        parser.error(str(e).replace('eps must', '--eps must').replace(
            'unknown attacks', '--attacks: unknown attacks'))
    if args.num_samples is not None and args.num_samples < 1:
        parser.error('--num-samples must be >= 1')
    if args.batch_size < 1:
        parser.error('--batch-size must be >= 1')
    return args


def main(argv: Optional[List[str]] = None) -> dict:
    """Evaluate every checkpoint; write the JSON and the plot."""
    args = parse_args(argv)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    names = args.names or [
        osp.splitext(osp.basename(ckpt))[0] for _, ckpt in args.pairs
    ]
    os.makedirs(osp.join(args.out_dir, 'state'), exist_ok=True)
    report = dict(command='python tools/eval_robust_accuracy.py ' + ' '.join(
        sys.argv[1:] if argv is None else argv), models=[])
    exit_unless_checkpoints_fit(args.pairs)
    results = {}
    for name, (config, ckpt) in zip(names, args.pairs):
        print_log(f'== {name}: {config} {ckpt}', logger='current')
        model, cfg = load_classifier(config, ckpt, device)
        if args.data is not None:
            dataset_cfg = dict(type='CustomDataset', data_root=args.data)
        else:
            dataset_cfg = dict(cfg.test_dataloader.dataset)
        dataset = build_dataset(dataset_cfg, test_pipeline(cfg))
        dataset = Subset(dataset, subset_indices(len(dataset),
                                                 args.num_samples, args.seed))
        result = evaluate_robust_accuracy(
            model, dataset, args.eps, args.attacks, args.settings,
            args.batch_size, args.num_workers, device, args.seed,
            state_file=osp.join(args.out_dir, 'state', f'{name}.jsonl'),
            checkpoint=osp.abspath(ckpt), dataset_name=args.dataset_name)
        print_log(
            f'{name}: clean {result["clean_acc"]:.2f}' +
            (f' | PGD-20 {result["pgd20_acc"]:.2f}'
             if 'pgd20_acc' in result else '') +
            (f' | AutoAttack {result["autoattack_acc"]:.2f}'
             if 'autoattack_acc' in result else '') +
            f' (eps {result["eps"]}, {result["n_examples"]} images)',
            logger='current')
        results[name] = result
        report['models'].append(dict(name=name, config=config,
                                     checkpoint=ckpt, **result))
    out_json = osp.join(args.out_dir, 'robust_accuracy.json')
    with open(out_json, 'w') as f:
        json.dump(report, f, indent=2)
    plot_robust_accuracy(results, osp.join(args.out_dir,
                                           'robust_accuracy.png'))
    print_log(f'results: {out_json}', logger='current')
    return report


if __name__ == '__main__':
    main()
