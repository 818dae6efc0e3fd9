"""One process equals two over gloo, for a model trained by a plain
optimizer step (AdPE, the learned-mask SimMIM): the harness both tests
share.

A test module gives ``build()`` (the model, uninitialised weights are
replaced by the reference's) and ``train(model, module, indices)`` (its
iterations on the global batch's samples ``indices``, ``model`` being
``module`` or its DDP; returns the per-iteration losses), by name, so that
the spawned processes import them.
"""
import importlib
import os
from typing import Dict, List

import pytest
import torch
from torch.testing import assert_close

GLOBAL_BATCH = 4


def train_steps(model, optim_wrapper, images: torch.Tensor,
                iters: int) -> List[float]:
    """``iters`` steps of ``model``'s loss on ``images`` (no data samples);
    the losses."""
    losses = []
    for _ in range(iters):
        loss = model(images, None, mode='loss')['loss']
        optim_wrapper.update_params(loss)
        losses.append(float(loss.detach()))
    return losses


def _worker(rank: int, world: int, port: int, out_dir: str,
            test_module: str) -> None:
    import torch.distributed as dist
    from mmengine.model import MMDistributedDataParallel
    from mmengine.registry import init_default_scope
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=world)
    try:
        import aemim_mm  # noqa: F401
        init_default_scope('mmpretrain')
        tests = importlib.import_module(test_module)
        module = tests.build_for_processes()
        module.load_state_dict(torch.load(os.path.join(out_dir, 'init.pth'),
                                          weights_only=True))
        module.double().train()
        ddp = MMDistributedDataParallel(module=module)
        losses = tests.train_for_processes(
            ddp, module, list(range(GLOBAL_BATCH))[rank::world])
        torch.save(dict(losses=losses, state=module.state_dict()),
                   os.path.join(out_dir, f'rank{rank}.pth'))
    finally:
        dist.destroy_process_group()


def one_equals_two(tmp_path, test_module: str) -> Dict[str, torch.Tensor]:
    """Train ``test_module``'s model on the global batch in this process and
    on its halves in two gloo processes (DefaultSampler's layout); assert
    that the mean of the processes' losses is the one process's at every
    iteration and that every process ends with its weights and buffers.

    Returns:
        The one process's final state dict.
    """
    import torch.multiprocessing as mp
    from test_spark import free_port
    tests = importlib.import_module(test_module)
    torch.manual_seed(0)
    reference = tests.build_for_processes()
    torch.save(reference.state_dict(), tmp_path / 'init.pth')
    reference.double().train()
    want_losses: List[float] = tests.train_for_processes(
        reference, reference, list(range(GLOBAL_BATCH)))
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path), test_module),
             nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f'rank{r}.pth', weights_only=True)
             for r in range(2)]
    for it, want in enumerate(want_losses):
        got = sum(r['losses'][it] for r in ranks) / 2
        assert got == pytest.approx(want, rel=1e-9), it
    state = reference.state_dict()
    for rank in ranks:
        for key, value in state.items():
            assert_close(rank['state'][key], value, rtol=1e-8, atol=1e-10,
                         msg=key)
    return state
