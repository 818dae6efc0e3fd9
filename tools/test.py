"""Evaluate a checkpoint with the config's test loop.

Usage::

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out RESULT.pkl]
        [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm,mpi}]

Several processes: ``tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [args]``.
The checkpoint is read with ``torch.load(weights_only=True)``; importing
``aemim_mm`` allows what mmengine checkpoints legitimately hold.
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

# ``python tools/test.py`` puts tools/ (not the repository root) on sys.path.
_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import aemim_mm  # noqa: E402,F401  (registration + checkpoint safe globals)
from aemim_mm.utils.config_fixes import strip_collate_scope  # noqa: E402
from aemim_mm.utils.distributed import (  # noqa: E402
    end_process_group, init_cpu_process_group, use_cpu_distributed)


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
        '--work-dir',
        help='directory for the evaluation logs (default: the config\'s '
        'work_dir, else ./work_dirs/<config name>)')
    parser.add_argument(
        '--out',
        help='also dump the predictions to this pickle file (.pkl/.pickle) '
        'with mmengine\'s DumpResults')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. test_dataloader.batch_size=8')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


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
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    missing = [
        key for key in ('test_dataloader', 'test_cfg', 'test_evaluator')
        if cfg.get(key) is None
    ]
    if missing:
        raise ValueError(
            f'{args.config} has no test loop: {", ".join(missing)} missing '
            '(a pre-training config? test a fine-tuning config instead)')
    cfg.launcher = args.launcher
    cfg.load_from = args.checkpoint
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

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
    cfg = merge_args(Config.fromfile(args.config), args)
    started = init_cpu_process_group(cfg)
    runner = Runner.from_cfg(cfg)
    runner.test()
    if started:
        end_process_group()


if __name__ == '__main__':
    main()
