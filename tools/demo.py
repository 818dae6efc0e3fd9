"""Run the AEMIM demo: pre-train a small MAE ViT on scikit-image's photos.

Usage::

    python tools/demo.py [--config configs/aemim_demo_skimage.py]
        [--work-dir work_dirs/demo] [--iters N] [--cfg-options KEY=VALUE ...]

Runs the config through mmengine's ``Runner`` on CPU (or the GPU if there is
one); the log shows progress and an ETA. At the end it prints where the
checkpoint, the log, the loss-curve PNG and the image-grid PNG are, and exits
non-zero if any of them is missing.

``--iters N`` sets the number of training iterations and rescales every other
iteration count of the demo config (learning-rate warm-up and cosine, eps
warm-up, grid and plot intervals, checkpoint) in proportion.

It sets ``OMP_WAIT_POLICY=PASSIVE`` unless the variable is set (see below).
"""
import argparse
import glob
import os
import os.path as osp
import sys
import time
from typing import Dict, List, Optional

# Before torch loads OpenMP: let idle OpenMP threads sleep instead of
# spinning. On a small shared CPU machine, spinning threads competing with
# other processes slowed training 10-20x in our runs; passive waiting costs
# ~25 % when the machine is otherwise idle. Override by setting the variable.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

# ``python tools/demo.py`` puts tools/ (not the repository root) on sys.path.
_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import aemim_mm  # noqa: E402,F401  (registration)

DEFAULT_CONFIG = osp.join(_REPO_ROOT, 'configs', 'aemim_demo_skimage.py')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv: Arguments without the program name (default: ``sys.argv``).

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser = argparse.ArgumentParser(
        description='AEMIM demo on the photos of skimage.data')
    parser.add_argument(
        '--config', default=DEFAULT_CONFIG, help='demo config file')
    parser.add_argument(
        '--work-dir',
        default='work_dirs/demo',
        help='directory for logs, checkpoint and images '
        '(default: work_dirs/demo)')
    parser.add_argument(
        '--iters',
        type=int,
        default=None,
        help='training iterations (default: the config\'s); every other '
        'iteration count is rescaled in proportion')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings (applied after --iters), e.g. '
        'train_dataloader.batch_size=16')
    return parser.parse_args(argv)


def _scale(n: int, ratio: float, lo: int, hi: int) -> int:
    """``round(n * ratio)`` clamped to ``[lo, hi]``."""
    return int(min(hi, max(lo, round(n * ratio))))


def set_iters(cfg: Config, iters: int) -> None:
    """Set the demo's length to ``iters`` iterations, rescaling the rest.

    Rescales in proportion: the LinearLR warm-up and the cosine that follows
    it, the checkpoint interval (one checkpoint at the end), the logging
    interval, and the custom hooks' ``vis_interval``, ``interval`` and the
    ``warmup_iters`` / ``begin`` / ``milestones`` of their schedules.

    Args:
        cfg: The demo config (changed in place).
        iters: New number of training iterations, ``>= 2``.

    Raises:
        ValueError: If ``iters < 2`` or the config is not iteration based.
    """
    if iters < 2:
        raise ValueError(f'--iters must be >= 2, got {iters}.')
    if cfg.train_cfg.get('type') != 'IterBasedTrainLoop':
        raise ValueError('--iters needs an IterBasedTrainLoop config.')
    old = int(cfg.train_cfg.max_iters)
    r = iters / old
    cfg.train_cfg.max_iters = iters

    warmup = None
    for s in cfg.get('param_scheduler', []) or []:
        if s.get('type') == 'LinearLR':
            warmup = _scale(s.get('end', 0), r, 1, iters - 1)
            s.begin, s.end = 0, warmup
    for s in cfg.get('param_scheduler', []) or []:
        if s.get('type') == 'CosineAnnealingLR':
            begin = warmup if warmup is not None else _scale(
                s.get('begin', 0), r, 0, iters - 1)
            s.begin, s.end, s.T_max = begin, iters, iters - begin

    hooks = cfg.default_hooks
    if 'checkpoint' in hooks:
        hooks.checkpoint.interval = iters
    if 'logger' in hooks:
        hooks.logger.interval = min(int(hooks.logger.interval), iters)
    if cfg.get('log_processor') and 'window_size' in cfg.log_processor:
        cfg.log_processor.window_size = min(
            int(cfg.log_processor.window_size), iters)

    for h in cfg.get('custom_hooks', []) or []:
        for key in ('vis_interval', 'interval'):
            if h.get(key):
                h[key] = _scale(h[key], r, 1, iters)
        for key in ('eps_schedule', 'steps_schedule', 'adv_ratio_schedule'):
            sched = h.get(key)
            if not isinstance(sched, dict):
                continue
            if 'warmup_iters' in sched:
                sched['warmup_iters'] = _scale(sched['warmup_iters'], r, 1,
                                               iters)
            if 'begin' in sched:
                sched['begin'] = _scale(sched['begin'], r, 0, iters)
            if 'milestones' in sched:
                ms = sorted({_scale(m, r, 1, iters)
                             for m in sched['milestones']})
                if len(ms) != len(sched['milestones']):
                    raise ValueError(
                        f'--iters {iters} is too few for the {key} '
                        f'milestones {sched["milestones"]}.')
                sched['milestones'] = ms


def find_outputs(runner: Runner) -> Dict[str, Optional[str]]:
    """Locate the demo's outputs after training.

    Args:
        runner: The runner that trained.

    Returns:
        dict: ``checkpoint``, ``log``, ``loss_curves_png``,
        ``loss_curves_json`` and ``grid_png`` (the last grid) paths, ``None``
        where missing.
    """
    work_dir = runner.work_dir

    def existing(path: Optional[str]) -> Optional[str]:
        return path if path and osp.isfile(path) else None

    ckpt = None
    last = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(last):
        with open(last) as f:
            ckpt = existing(f.read().strip())
    if ckpt is None:
        ckpts = sorted(glob.glob(osp.join(work_dir, '*.pth')),
                       key=osp.getmtime)
        ckpt = ckpts[-1] if ckpts else None

    grids = glob.glob(
        osp.join(runner.log_dir, 'vis_data', 'vis_image', 'aemim_grid_*.png'))

    def step(p: str) -> int:
        try:
            return int(osp.splitext(p)[0].rsplit('_', 1)[1])
        except ValueError:
            return -1

    grid = max(grids, key=step) if grids else None
    return dict(
        checkpoint=ckpt,
        log=existing(osp.join(runner.log_dir, f'{runner.timestamp}.log')),
        loss_curves_png=existing(osp.join(work_dir, 'loss_curves.png')),
        loss_curves_json=existing(osp.join(work_dir, 'loss_curves.json')),
        grid_png=grid)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the demo; return the exit status (0 if every output exists)."""
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.iters is not None:
        set_iters(cfg, args.iters)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = osp.abspath(args.work_dir)

    runner = Runner.from_cfg(cfg)
    start = time.time()
    runner.train()
    elapsed = time.time() - start

    outputs = find_outputs(runner)
    print(f'\nAEMIM demo: {cfg.train_cfg.max_iters} iterations in '
          f'{elapsed:.0f} s. Outputs:')
    for name, path in outputs.items():
        print(f'  {name:17s}: {path if path else "MISSING"}')
    missing = [k for k, v in outputs.items() if v is None]
    if missing:
        print(f'ERROR: demo outputs missing: {missing} (work dir '
              f'{cfg.work_dir}).', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
