"""Distributed runs without CUDA: gloo process groups and CPU DDP.

Shared by ``tools/train.py`` and ``tools/test.py``: mmengine assumes CUDA
for distributed runs (NCCL, ``torch.cuda.set_device``, ``device_ids``);
these helpers make ``tools/dist_train.sh CONFIG 2`` and
``tools/dist_test.sh`` work on CPU machines too.
"""
import datetime

import torch
from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log


def use_cpu_distributed(cfg: Config) -> None:
    """Make distributed training work without CUDA (gloo, CPU DDP).

    NCCL needs CUDA, so the process group uses ``gloo``. mmengine's default
    ``MMDistributedDataParallel`` gets ``device_ids=[LOCAL_RANK]``, which torch
    refuses for a CPU module, so ``device_ids=None`` is set in
    ``model_wrapper_cfg`` (with mmengine's other defaults). This lets
    ``tools/dist_train.sh CONFIG 2`` run two CPU processes.

    Args:
        cfg: The config, changed in place.
    """
    env_cfg = cfg.setdefault('env_cfg', ConfigDict())
    dist_cfg = env_cfg.setdefault('dist_cfg', ConfigDict())
    if dist_cfg.get('backend') != 'gloo':
        print_log(
            f'CUDA is not available: env_cfg.dist_cfg.backend '
            f'{dist_cfg.get("backend")!r} -> \'gloo\'',
            logger='current')
        dist_cfg.backend = 'gloo'
    if cfg.get('launcher', 'none') != 'none':
        wrapper = cfg.get('model_wrapper_cfg') or ConfigDict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
        if wrapper.get('type', 'MMDistributedDataParallel') in (
                'MMDistributedDataParallel', 'AEMIMDistributedDataParallel'):
            wrapper.setdefault('device_ids', None)
        cfg.model_wrapper_cfg = wrapper


def init_cpu_process_group(cfg: Config) -> bool:
    """Start the gloo process group for ``--launcher pytorch`` without CUDA.

    mmengine's ``init_dist`` calls ``torch.cuda.set_device`` for every
    launcher, which fails on a machine without CUDA. Starting the process
    group here (from the environment that ``torch.distributed.run`` sets) makes
    the Runner skip its own ``init_dist``. Does nothing with CUDA, without a
    launcher, or when a process group exists.

    Args:
        cfg: The config after :func:`merge_args` (``launcher``, ``env_cfg``).

    Returns:
        Whether a process group was started (then the caller ends it with
        :func:`end_process_group`).

    Raises:
        RuntimeError: For the ``slurm`` / ``mpi`` launchers without CUDA.
    """
    launcher = cfg.get('launcher', 'none')
    if (launcher == 'none' or torch.cuda.is_available()
            or torch.distributed.is_initialized()):
        return False
    if launcher != 'pytorch':
        raise RuntimeError(
            f'--launcher {launcher} needs CUDA (mmengine sets a CUDA device '
            'for it); without CUDA use --launcher pytorch '
            '(tools/dist_train.sh)')
    kwargs = dict(cfg.env_cfg.get('dist_cfg', {}))
    kwargs['backend'] = 'gloo'
    if kwargs.get('timeout') is not None:  # seconds, as in mmengine
        kwargs['timeout'] = datetime.timedelta(seconds=kwargs['timeout'])
    torch.distributed.init_process_group(**kwargs)
    return True


def end_process_group() -> None:
    """Wait for all ranks, then end the process group (a clean exit)."""
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
