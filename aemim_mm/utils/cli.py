"""What the command-line tools share.

``tools/train.py`` and ``tools/test.py`` both take a config, ``--work-dir``,
``--cfg-options``, ``--launcher`` and the ``--local-rank`` that
``torch.distributed.launch`` passes, and both run an mmengine ``Runner`` in a
process group that also works without CUDA (:mod:`.distributed`). Tools that
build a model without a ``Runner`` (``tools/benchmark.py``,
``tools/attack_precision.py``) initialise it with :func:`init_weights_quietly`.
The evaluation tools (``tools/eval_adv_robustness.py``,
``tools/eval_robust_accuracy.py``, ``tools/certify.py``) take ``CONFIG CKPT``
pairs (:func:`add_checkpoint_pair_args`, :func:`check_checkpoint_pairs`).
"""
import argparse
import logging
import os
import os.path as osp
from typing import Callable

from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger
from mmengine.runner import Runner
from torch import nn

from .distributed import end_process_group, init_cpu_process_group

#: The launchers of mmengine's ``Runner``.
LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')


def add_runner_args(parser: argparse.ArgumentParser, work_dir_help: str,
                    cfg_options_example: str) -> None:
    """Add ``--work-dir``, ``--cfg-options``, ``--launcher``, ``--local-rank``.

    Args:
        parser: The tool's parser, changed in place.
        work_dir_help: What the work dir holds for this tool.
        cfg_options_example: An example override, shown in the help.
    """
    parser.add_argument(
        '--work-dir',
        help=f'directory for {work_dir_help} (default: the config\'s '
        'work_dir, else ./work_dirs/<config name>)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help=f'override config settings, e.g. {cfg_options_example}')
    parser.add_argument(
        '--launcher', choices=LAUNCHERS, default='none', help='job launcher')
    # torch.distributed.launch passes --local_rank (older) or --local-rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_runner_args(parser: argparse.ArgumentParser,
                      argv=None) -> argparse.Namespace:
    """Parse, and export ``--local-rank`` as ``LOCAL_RANK`` unless set.

    Args:
        parser: A parser with :func:`add_runner_args`.
        argv: Arguments (without the program name). Defaults to ``sys.argv``.

    Returns:
        The parsed arguments.
    """
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def apply_runner_args(cfg: Config, args: argparse.Namespace) -> None:
    """Merge ``--cfg-options``, then set the launcher and the work dir.

    The work dir is the command line's, else the config's, else
    ``./work_dirs/<config name>``.

    Args:
        cfg: The config loaded from ``args.config``, changed in place.
        args: Parsed by a parser with :func:`add_runner_args`.
    """
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])


def run(cfg: Config, loop: Callable[[Runner], object]) -> None:
    """Build a ``Runner`` from ``cfg`` and run ``loop`` on it.

    A gloo process group started here for a CPU run is ended after the
    loop. Not after a failure: ending waits for every rank (a barrier), and
    a failed rank's peers would wait for it forever; the launcher ends them.

    Args:
        cfg: The final config.
        loop: ``Runner.train`` or ``Runner.test``, say.
    """
    started = init_cpu_process_group(cfg)
    loop(Runner.from_cfg(cfg))
    if started:
        end_process_group()


def init_weights_quietly(model: nn.Module) -> None:
    """``model.init_weights()`` without mmengine's per-parameter log.

    Without a ``Runner``'s log file, mmengine logs one line per parameter to
    the console (thousands for a ViT), burying a tool's own output. Warnings
    and errors still show.

    Args:
        model: An mmengine ``BaseModule``.
    """
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)


def add_checkpoint_pair_args(parser: argparse.ArgumentParser) -> None:
    """``CONFIG CKPT [CONFIG2 CKPT2 ...]``, ``--out-dir``, ``--data`` (class
    folders in place of each config's test set) and ``--names``."""
    parser.add_argument('models', nargs='+', metavar='CONFIG CKPT',
                        help='pairs of config and checkpoint')
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--data', default=None,
                        help='class folders to evaluate on (default: the '
                        'config\'s test_dataloader.dataset)')
    parser.add_argument('--names', nargs='+', default=None,
                        help='one name per checkpoint (default: the '
                        'checkpoint file names)')


def check_checkpoint_pairs(parser: argparse.ArgumentParser,
                           args: argparse.Namespace) -> None:
    """Set ``args.pairs`` from ``args.models``; refuse (``parser.error``,
    naming it) an odd number of paths, a missing file or ``--data``
    folder, or a ``--names`` of the wrong length."""
    if len(args.models) % 2:
        parser.error('give CONFIG CKPT pairs; got an odd number of paths')
    args.pairs = list(zip(args.models[::2], args.models[1::2]))
    for config, ckpt in args.pairs:
        for path in (config, ckpt):
            if not osp.isfile(path):
                parser.error(f'file not found: {path}')
    if args.data is not None and not osp.isdir(args.data):
        parser.error(f'--data folder not found: {args.data}')
    if args.names is not None and len(args.names) != len(args.pairs):
        parser.error(f'--names needs {len(args.pairs)} names')


def exit_unless_checkpoints_fit(pairs) -> None:
    """Load every ``(config, checkpoint)`` of ``pairs`` strictly (on the
    CPU, then dropped), so that a checkpoint of another architecture stops
    a tool before any work on the first pair.

    Raises:
        SystemExit: Naming the checkpoint and the model it does not fit
            (:class:`~aemim_mm.evaluation.inference.CheckpointMismatchError`).
    """
    from ..evaluation.inference import (CheckpointMismatchError,
                                        load_classifier)
    for config, ckpt in pairs:
        try:
            load_classifier(config, ckpt, 'cpu')
        except CheckpointMismatchError as e:
            raise SystemExit(f'error: {e}')
