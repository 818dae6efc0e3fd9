"""Train (pre-train or fine-tune) a model from an mmengine config.

Usage::

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--auto-scale-lr] [--cfg-options KEY=VALUE ...]
        [--launcher {none,pytorch,slurm,mpi}]

Several processes: ``tools/dist_train.sh CONFIG NUM_PROCS [args]`` (works on
CPU too: without CUDA the ``gloo`` backend is used) or
``tools/slurm_train.sh``.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

# ``python tools/train.py`` puts tools/ (not the repository root) on sys.path;
# add the root so that ``aemim_mm`` imports without an installation.
_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

import torch  # noqa: E402
from mmengine.config import Config, ConfigDict  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import aemim_mm  # noqa: E402,F401  (registration + checkpoint safe globals)
from aemim_mm.utils.config_fixes import (  # noqa: E402
    enable_amp, strip_collate_scope)
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
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        default=None,
        metavar='CHECKPOINT',
        help='resume training: without a value from the latest checkpoint in '
        'the work dir, with a value from that checkpoint')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='automatic mixed precision (AmpOptimWrapper, dynamic loss '
        'scale; needs a GPU)')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the actual batch size over the '
        'config\'s auto_scale_lr.base_batch_size')
    add_runner_args(
        parser, 'logs and checkpoints', 'train_cfg.max_iters=10 '
        '"model.backbone.arch=b" "a=[1,2]" (quote lists, no spaces)')
    return parse_runner_args(parser, argv)


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command line to the config.

    Args:
        cfg: The config loaded from ``args.config``.
        args: The parsed arguments.

    Returns:
        The updated config.
    """
    apply_runner_args(cfg, args)
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if '://' not in args.resume and not osp.isfile(args.resume):
            raise FileNotFoundError(
                f'--resume: checkpoint {args.resume!r} does not exist')
        cfg.resume = True
        cfg.load_from = args.resume

    if args.amp:
        enable_amp(cfg)

    if args.auto_scale_lr:
        scale_cfg = cfg.get('auto_scale_lr')
        if not isinstance(scale_cfg, dict) or 'base_batch_size' not in \
                scale_cfg:
            raise ValueError(
                '--auto-scale-lr needs `auto_scale_lr = dict('
                'base_batch_size=...)` in the config, which has none')
        scale_cfg.enable = True

    use_aemim_ddp(cfg)
    if not torch.cuda.is_available():
        use_cpu_distributed(cfg)

    strip_collate_scope(cfg)
    return cfg


def use_aemim_ddp(cfg: Config) -> None:
    """Pick ``AEMIMDistributedDataParallel`` for an AEMIM or ADIOS model
    under DDP.

    It backpropagates AEMIM's clean loss before building the adversarial
    graph (same gradients, lower peak memory), and runs ADIOS's own
    two-optimiser step (mmengine's DDP step cannot drive its
    ``OptimWrapperDict``). The project's AEMIM and ADIOS configs select it
    themselves (``configs/_base_/aemim_ddp.py``), so that every launcher
    gets it; this covers a config that sets no ``model_wrapper_cfg``. A
    config's own ``model_wrapper_cfg`` is kept as it is.

    Args:
        cfg: The config, changed in place.
    """
    model = cfg.get('model') or {}
    if (cfg.get('launcher', 'none') == 'none'
            or cfg.get('model_wrapper_cfg') is not None
            or model.get('type') not in ('AdversarialMIMWrapper', 'ADIOS')):
        return
    cfg.model_wrapper_cfg = ConfigDict(
        type='AEMIMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))


def main(argv: Optional[List[str]] = None) -> None:
    """Build a ``Runner`` from the config and train.

    Args:
        argv: Arguments (without the program name). Defaults to ``sys.argv``.
    """
    args = parse_args(argv)
    run(merge_args(Config.fromfile(args.config), args), Runner.train)


if __name__ == '__main__':
    main()
