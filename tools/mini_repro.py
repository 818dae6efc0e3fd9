#!/usr/bin/env python
"""Mini-reproduction: MAE vs Fast AEMIM vs AEMIM on CIFAR-10, one command.

    python tools/mini_repro.py --preset smoke \
        --out-dir work_dirs/mini_repro_smoke
    python tools/mini_repro.py --preset gpu --out-dir work_dirs/mini_repro_gpu

For each method and seed: pre-train (configs/*_vit-t-p4_cifar10.py), export
the encoder, fine-tune and linear-probe it (configs/finetune,
configs/linear_probe), evaluate clean top-1, CIFAR-10-C-like corruptions,
FGSM and PGD; MAE is also pre-trained for the wall time of the other methods.
Writes OUT/results.md, OUT/results.json and the plots. Stages that are done
are skipped (run the same command again to continue a killed run);
--force redoes them. See docs/mini_repro.md and projects/mini_repro/.
"""
import argparse
import os.path as osp
import shlex
import sys

_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# the pipeline is the project projects/mini_repro/aemim_repro, beside the
# package and not installed with it
for _path in (_REPO_ROOT, osp.join(_REPO_ROOT, 'projects', 'mini_repro')):
    if _path not in sys.path:
        sys.path.insert(0, _path)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='MAE vs Fast AEMIM vs AEMIM on CIFAR-10 (pre-train, '
        'fine-tune, linear probe, robustness), one command.')
    parser.add_argument('--preset', required=True,
                        help='a name in configs/mini_repro/ (smoke, gpu) or '
                        'a preset file')
    parser.add_argument('--out-dir', required=True,
                        help='output folder (created; a second run with the '
                        'same folder continues / skips finished stages)')
    parser.add_argument('--data-root', default=None,
                        help='prepared CIFAR-10 with train/<class>/ and '
                        'test/<class>/ (default: the preset\'s data.root, '
                        '$CIFAR10_ROOT or data/cifar10, extracted from '
                        '../shared/data/cifar10_jpg.tar.gz when missing)')
    parser.add_argument('--seeds', type=int, nargs='+', default=None,
                        help='replace the preset\'s seeds')
    parser.add_argument('--force', action='store_true',
                        help='redo every stage, also those already done')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from aemim_repro import load_preset, run_pipeline
    preset = load_preset(args.preset, _REPO_ROOT, args.seeds)
    if args.data_root is not None and not osp.isdir(args.data_root):
        raise FileNotFoundError(f'--data-root: not a folder: '
                                f'{args.data_root}')
    command = 'python tools/mini_repro.py ' + ' '.join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    run_pipeline(preset, osp.abspath(args.out_dir), args.data_root,
                 args.force, command)
    return 0


if __name__ == '__main__':
    sys.exit(main())
