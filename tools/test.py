"""Evaluate a checkpoint with the config's test loop.

Usage::

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out RESULT.pkl]
        [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm,mpi}]

Several processes: ``tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [args]``.
The checkpoint is read with ``torch.load(weights_only=True)``; importing
``aemim_mm`` allows what mmengine checkpoints legitimately hold.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

# ``python tools/test.py`` puts tools/ (not the repository root) on sys.path.
_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import aemim_mm  # noqa: E402,F401  (registration + checkpoint safe globals)
from aemim_mm.utils.config_fixes import strip_collate_scope  # noqa: E402
from aemim_mm.utils.cli import (  # noqa: E402
    add_runner_args, apply_runner_args, parse_runner_args, run)
from aemim_mm.utils.distributed import use_cpu_distributed  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv: Arguments (without the program name). Defaults to ``sys.argv``.

    Returns:
        The parsed arguments.
    """
    parser = argparse.ArgumentParser(description='Test (evaluate) a model')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out',
        help='also dump the predictions to this pickle file (.pkl/.pickle) '
        'with mmengine\'s DumpResults')
    add_runner_args(parser, 'the evaluation logs',
                    'test_dataloader.batch_size=8')
    return parse_runner_args(parser, argv)


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command line to the config.

    Args:
        cfg: The config loaded from ``args.config``.
        args: The parsed arguments.

    Returns:
        The updated config.

    Raises:
        ValueError: If the config has no test loop, or ``--out`` is not a
            pickle file name.
    """
    apply_runner_args(cfg, args)
    missing = [
        key for key in ('test_dataloader', 'test_cfg', 'test_evaluator')
        if cfg.get(key) is None
    ]
    if missing:
        raise ValueError(
            f'{args.config} has no test loop: {", ".join(missing)} missing '
            '(a pre-training config? test a fine-tuning config instead)')
    cfg.load_from = args.checkpoint

    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(
                f'--out must name a .pkl or .pickle file, got {args.out!r}')
        dump = dict(type='DumpResults', out_file_path=args.out)
        evaluator = cfg.test_evaluator
        cfg.test_evaluator = (list(evaluator) + [dump] if isinstance(
            evaluator, (list, tuple)) else [evaluator, dump])

    if not torch.cuda.is_available():
        use_cpu_distributed(cfg)
    strip_collate_scope(cfg)
    return cfg


def main(argv: Optional[List[str]] = None) -> None:
    """Build a ``Runner`` from the config and run its test loop.

    Args:
        argv: Arguments (without the program name). Defaults to ``sys.argv``.
    """
    args = parse_args(argv)
    run(merge_args(Config.fromfile(args.config), args), Runner.test)


if __name__ == '__main__':
    main()
