#!/usr/bin/env python
"""Every pre-training method of the package on CIFAR-10, evaluated as the
adversarial pre-training literature does: one table.

Usage::

    python tools/compare_methods.py --preset {smoke,full} --out-dir DIR
        [--data DIR] [--methods aemim rocl ...]
        [--protocols slf alf aff-trades aff-pgd-at] [--seed 0]

Per method (the plain baselines MAE, SimCLR and MoCo v2, AEMIM and Fast
AEMIM, every survey method with a CIFAR-10 config): pre-training from its
config, export of the encoder, each fine-tuning protocol of
``configs/eval/`` (SLF, ALF, AFF with TRADES and with PGD-AT), and per
classifier clean accuracy, PGD-20 and AutoAttack at 8/255
(:mod:`aemim_mm.evaluation.comparison`). ``--data`` holds CIFAR-10 as
``train/<class>/`` and ``test/<class>/`` folders (``tools/prepare_cifar10.py``;
default ``data/cifar10``). Presets: ``smoke`` checks the plumbing in minutes
on a CPU (one iteration per training stage, ResNet widths / 8, 4 test images,
a tiny AutoAttack; its numbers mean nothing); ``full`` trains every config
as shipped and evaluates on 1000 test images with AutoAttack's standard
budgets (GPUs: days). Progress and ETA per stage. Writes
DIR/comparison.{md,json} and DIR/comparison_<protocol>.png; each method's
stages under DIR/<method>/. Run the same command again after an
interruption: finished stages are skipped, an interrupted evaluation
resumes by batch.
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from mmengine.logging import print_log  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

import aemim_mm  # noqa: E402,F401
import aemim_mm.evaluation  # noqa: E402,F401  (registers data sets)
from aemim_mm.evaluation.comparison import (  # noqa: E402
    PRESETS, PROTOCOLS, Stages, available_methods, check_protocols,
    run_method, stage_count, write_report)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse and check the command line (before any work)."""
    parser = argparse.ArgumentParser(
        description='compare every pre-training method on CIFAR-10')
    parser.add_argument('--preset', choices=sorted(PRESETS), required=True)
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--data', default=os.environ.get(
        'CIFAR10_ROOT', 'data/cifar10'))
    parser.add_argument('--methods', nargs='+', default=None)
    parser.add_argument('--protocols', nargs='+', default=list(PROTOCOLS))
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    try:
        args.method_list = available_methods(args.methods)
        check_protocols(args.protocols)
    except ValueError as e:
        parser.error(str(e))
    for split in ('train', 'test'):
        if not osp.isdir(osp.join(args.data, split)):
            parser.error(f'--data {args.data} has no {split}/ folder of '
                         'class folders (python tools/prepare_cifar10.py '
                         'makes one)')
    return args


def main(argv: Optional[List[str]] = None) -> dict:
    """Run every stage of every method; write the table and the plots."""
    args = parse_args(argv)
    init_default_scope('mmpretrain')
    os.makedirs(args.out_dir, exist_ok=True)
    command = 'python tools/compare_methods.py ' + ' '.join(
        sys.argv[1:] if argv is None else argv)
    preset = PRESETS[args.preset]
    methods = args.method_list
    print_log(f'compare: preset {args.preset} ({preset.description}); '
              f'methods {[m.name for m in methods]}; protocols '
              f'{args.protocols}', logger='current')
    stages = Stages(stage_count(methods, args.protocols),
                    log=lambda line: print_log(line, logger='current'))
    results = {}
    for method in methods:
        results[method.name] = run_method(
            method, preset, args.protocols, osp.abspath(args.data),
            osp.abspath(args.out_dir), stages, args.seed)
    report = write_report(args.out_dir, args.preset, command, methods,
                          args.protocols, results)
    print(report['table'])
    print_log(f'table: {osp.join(args.out_dir, "comparison.md")}',
              logger='current')
    return report


if __name__ == '__main__':
    main()
