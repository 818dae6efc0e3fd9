"""The clean-first step under DDP against the same step without DDP.

:class:`~aemim_mm.engine.model_wrappers.AEMIMDistributedDataParallel` is
what ``tools/dist_train.sh`` trains an AEMIM config with on GPUs (NCCL). In
ONE process its all-reduce averages over one rank, so its training step must
move the weights exactly as the wrapper's own ``train_step`` does: same model
(a copy), same batch, same random draws (the global generator re-seeded
before each step), deterministic kernels where torch has them, plain SGD.
:func:`run_ddp_check` trains both for a few steps and reports the largest
difference of every logged value and of every parameter.
"""
import copy
import os
import socket
from typing import Any, Dict, Optional

import torch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def build_model(config: str, overrides: Optional[dict], device: str):
    """The config's AEMIM model (with ``overrides``, dotted keys as
    ``--cfg-options`` takes them), initialised, on ``device``."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    from aemim_mm.utils.cli import init_weights_quietly
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(config)
    if overrides:
        cfg.merge_from_dict(overrides)
    model = MODELS.build(cfg.model)
    init_weights_quietly(model)
    return model.to(device).train()


def run_ddp_check(config: str, backend: str, device: str, steps: int = 3,
                  batch_size: int = 8, img_size: int = 32,
                  overrides: Optional[dict] = None, seed: int = 0,
                  tolerance: float = 1e-5) -> Dict[str, Any]:
    """Train a model and its copy ``steps`` steps, with and without DDP.

    Args:
        config: An AEMIM config (``configs/aemim_vit-t-p4_cifar10.py``).
        backend: ``'nccl'`` (GPU) or ``'gloo'`` (CPU rehearsal).
        device: ``'cuda'`` or ``'cpu'``.
        steps: Training steps of each.
        batch_size: Images per step.
        img_size: Image side (the config's).
        overrides: Config changes in dotted keys (a smaller model for the
            rehearsal), or ``None``.
        seed: Seed of the weights, the batches and every step's draws.
        tolerance: Largest difference, relative to the value's magnitude
            (at least 1), that still passes.

    Returns:
        ``passed`` (the differences within ``tolerance`` and the weights
        moved), ``max_log_diff`` (per logged key), ``max_param_diff``,
        ``worst_param``, ``max_param_change`` (how far training moved the
        plain model's weights), and the settings.
    """
    from mmengine.optim import OptimWrapper

    from aemim_mm.benchmark.timing import make_batch
    from aemim_mm.engine.model_wrappers import AEMIMDistributedDataParallel
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(seed)
    plain = build_model(config, overrides, device)
    module = copy.deepcopy(plain)
    initial = {n: p.detach().clone() for n, p in plain.named_parameters()}
    started = not torch.distributed.is_initialized()
    if started:
        torch.distributed.init_process_group(
            backend, init_method=f'tcp://127.0.0.1:{_free_port()}', rank=0,
            world_size=1)
    try:
        ddp = AEMIMDistributedDataParallel(
            module=module,
            device_ids=[torch.cuda.current_device()]
            if device == 'cuda' else None,
            broadcast_buffers=False)

        def optim(model):
            # SGD: an update proportional to the gradient, so that the
            # rounding noise of non-deterministic GPU kernels stays at its
            # size (Adam's first step is lr x sign(g) for every component)
            return OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01,
                                                momentum=0.9))

        optims = dict(plain=optim(plain), ddp=optim(module))
        log_diff: Dict[str, float] = {}
        for i in range(steps):
            batch = make_batch(batch_size, img_size, seed + i)
            logs = {}
            for name, model in (('plain', plain), ('ddp', ddp)):
                torch.manual_seed(seed + 1000 + i)
                logs[name] = model.train_step(copy.copy(batch), optims[name])
            for key, value in logs['plain'].items():
                a, b = float(value.detach()), float(logs['ddp'][key].detach())
                diff = abs(a - b) / max(1.0, abs(a))
                log_diff[key] = max(log_diff.get(key, 0.0), diff)
        worst, worst_name = 0.0, None
        for (name, p), q in zip(plain.named_parameters(),
                                module.parameters()):
            diff = float(((p - q).abs().max() /
                          p.abs().max().clamp(min=1.0)).item())
            if diff > worst:
                worst, worst_name = diff, name
        moved = max(float((p.detach() - initial[n]).abs().max())
                    for n, p in plain.named_parameters())
    finally:
        if started:
            torch.distributed.destroy_process_group()
    return dict(
        passed=bool(worst <= tolerance and moved > 0
                    and all(d <= tolerance for d in log_diff.values())),
        max_log_diff=log_diff, max_param_diff=worst, worst_param=worst_name,
        max_param_change=moved,
        tolerance=tolerance, backend=backend, device=device, steps=steps,
        batch_size=batch_size, wrapper=type(ddp).__name__,
        device_name=(torch.cuda.get_device_name() if device == 'cuda' else
                     f'CPU, {os.cpu_count()} cores'),
        torch=torch.__version__)
