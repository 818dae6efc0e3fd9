#!/usr/bin/env python
"""Certified L2 robustness of Gaussian-smoothed classifiers (Cohen et al.'s
CERTIFY), as RUSH evaluates a contrastive encoder fine-tuned with noise.

Usage::

    python tools/certify.py CONFIG CKPT [CONFIG2 CKPT2 ...] --out-dir DIR
        --sigma 0.25 [--n0 100] [--n 100000] [--alpha 0.001]
        [--skip 20] [--max-images N] [--data DIR] [--names A B ...]
        [--batch-size 1000] [--seed 0]

``--sigma`` and the radii are in [0, 1] pixel units, as in the
randomized-smoothing literature (each checkpoint is the base classifier,
fine-tuned with that noise: configs/survey/rush_*.py). Every ``--skip``-th
test image is certified (Cohen et al.: every 20th CIFAR-10 test image, 500
images, n0 100, n 100000, alpha 0.001). Writes DIR/certify.json (per image:
index, label, prediction or -1 for an abstention, radius, correct; per
checkpoint: certified accuracy at radii 0, 0.25, ..., abstentions) and
DIR/certified_accuracy.png. Each certified image is kept at once in
DIR/state/NAME.jsonl: rerun the same command after an interruption and
certified images are not recomputed (other settings are refused).
"""
import argparse
import hashlib
import json
import os
import os.path as osp
import sys
import time
from typing import List, Optional

_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.logging import print_log  # noqa: E402

import aemim_mm  # noqa: E402,F401
import aemim_mm.evaluation  # noqa: E402,F401  (registers data sets)
from aemim_mm.evaluation.adversarial import PixelSpaceClassifier  # noqa
from aemim_mm.evaluation.certify import (ABSTAIN, certified_accuracy,  # noqa
                                         certify, check_certify_options)
from aemim_mm.evaluation.inference import (  # noqa: E402
    build_dataset, load_classifier, test_pipeline)
from aemim_mm.evaluation.progress import Progress  # noqa: E402
from aemim_mm.evaluation.robust_accuracy import StateFile  # noqa: E402
from aemim_mm.utils.cli import (  # noqa: E402
    add_checkpoint_pair_args, check_checkpoint_pairs,
    exit_unless_checkpoints_fit)
from aemim_mm.visualization import plot_certified_accuracy  # noqa: E402

#: Radii of the summary table ([0, 1] units).
RADII = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse and check the command line (paths and options included)."""
    parser = argparse.ArgumentParser(
        description='certified L2 accuracy of Gaussian-smoothed classifiers')
    add_checkpoint_pair_args(parser)
    parser.add_argument('--sigma', type=float, required=True,
                        help='noise std, [0, 1] pixel units')
    parser.add_argument('--n0', type=int, default=100)
    parser.add_argument('--n', type=int, default=100000)
    parser.add_argument('--alpha', type=float, default=0.001)
    parser.add_argument('--skip', type=int, default=20,
                        help='certify every SKIP-th test image')
    parser.add_argument('--max-images', type=int, default=None)
    parser.add_argument('--batch-size', type=int, default=1000)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--device', default=None)
    args = parser.parse_args(argv)
    check_checkpoint_pairs(parser, args)
    try:
        check_certify_options(args.sigma, args.n0, args.n, args.alpha,
                              args.batch_size)
    except ValueError as e:
        parser.error('--' + str(e).replace('batch_size', 'batch-size'))
    for name in ('skip', 'max_images'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1')
    return args


def run_key(args: argparse.Namespace, ckpt: str, indices: List[int]) -> str:
    """What a state file's certificates were computed with (hash)."""
    text = json.dumps(dict(sigma=args.sigma, n0=args.n0, n=args.n,
                           alpha=args.alpha, seed=args.seed,
                           checkpoint=osp.abspath(ckpt), indices=indices),
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def main(argv: Optional[List[str]] = None) -> dict:
    """Certify every checkpoint; write the JSON and the plot."""
    args = parse_args(argv)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    names = args.names or [
        osp.splitext(osp.basename(ckpt))[0] for _, ckpt in args.pairs
    ]
    exit_unless_checkpoints_fit(args.pairs)
    os.makedirs(osp.join(args.out_dir, 'state'), exist_ok=True)
    report = dict(command='python tools/certify.py ' + ' '.join(
        sys.argv[1:] if argv is None else argv),
                  settings=dict(sigma=args.sigma, n0=args.n0, n=args.n,
                                alpha=args.alpha, skip=args.skip,
                                seed=args.seed, units='[0, 1] pixels'),
                  models=[])
    curves = {}
    for name, (config, ckpt) in zip(names, args.pairs):
        print_log(f'== {name}: {config} {ckpt}', logger='current')
        classifier, cfg = load_classifier(config, ckpt, device)
        model = PixelSpaceClassifier(classifier, 1.0).to(device).eval()
        dataset_cfg = (dict(type='CustomDataset', data_root=args.data)
                       if args.data is not None else
                       dict(cfg.test_dataloader.dataset))
        dataset = build_dataset(dataset_cfg, test_pipeline(cfg))
        indices = list(range(0, len(dataset), args.skip))[:args.max_images]
        state = StateFile(osp.join(args.out_dir, 'state', f'{name}.jsonl'),
                          run_key(args, ckpt, indices))
        progress = Progress(len(indices), f'certify {name} (images)')
        for idx in indices:
            if idx not in state.done:
                sample = dataset[idx]
                image = sample['inputs'].float().to(device) / 255.0
                label = int(sample['data_samples'].gt_label[0])
                start = time.perf_counter()
                cert = certify(model, image, args.sigma, args.n0, args.n,
                               args.alpha, args.batch_size,
                               seed=args.seed + idx)
                state.add(dict(batch=idx, label=label,
                               prediction=cert.prediction,
                               radius=cert.radius, p_lower=cert.p_lower,
                               correct=cert.prediction == label,
                               seconds=time.perf_counter() - start))
            progress.step()
        rows = [state.done[i] for i in indices]
        for row in rows:
            row['index'] = row.pop('batch')
            row.pop('key', None)
        radii = [r['radius'] for r in rows]
        correct = [r['correct'] for r in rows]
        grid = np.linspace(0, max(max(radii, default=0.0), 0.25) * 1.05,
                           200).tolist()
        curves[name] = dict(radius=grid, accuracy=certified_accuracy(
            radii, correct, grid))
        summary = dict(zip([f'{r:g}' for r in RADII],
                           certified_accuracy(radii, correct, RADII)))
        abstentions = sum(r['prediction'] == ABSTAIN for r in rows)
        print_log(f'{name}: certified accuracy ' + ', '.join(
            f'r={k}: {v:.1f}' for k, v in summary.items()) +
            f'; {abstentions} of {len(rows)} abstained', logger='current')
        report['models'].append(dict(
            name=name, config=config, checkpoint=ckpt, n_examples=len(rows),
            certified_accuracy=summary, abstentions=abstentions,
            images=rows))
    out_json = osp.join(args.out_dir, 'certify.json')
    with open(out_json, 'w') as f:
        json.dump(report, f, indent=2)
    plot_certified_accuracy(curves, osp.join(args.out_dir,
                                             'certified_accuracy.png'))
    print_log(f'results: {out_json}', logger='current')
    return report


if __name__ == '__main__':
    main()
