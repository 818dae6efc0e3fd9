"""Two processes over gloo equal one process with the same global batch, for
every survey method (RoCL, CLAE, ACL, BYORL on BYOL, AdvCL, A-RoCL,
A-AdvCL, AdCo, IFM, MoCHi, HCL, CaCo): same losses, same updated parameters,
running statistics, queues and banks (AdCo's and CaCo's, with their velocity,
through their fill and their steps) after each iteration's sample-keyed attack or draws. SyncBatchNorm in encoder and projector
(CPU stand-in of test_spark.py), mmengine's DDP wrapper, SGD, float64 (in
float32, a reduction order may flip the sign of a near-zero input gradient
and so one pixel of the attack, which then grows over the iterations)."""
import copy
import os
from typing import Dict, List

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from mmpretrain.registry import MODELS
from test_spark import cpu_sync_batch_norm_forward, free_port
from tiny_ssl import (IMG, byol_cfg, moco_cfg, mocov3_cfg, set_max_iters,
                      simclr_cfg)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings(     # the stand-in's differentiable all_reduce
        'ignore:torch.distributed.nn.functional.all_reduce is deprecated'
        ':FutureWarning'),
]

GLOBAL_BATCH, ITERS, LR = 4, 3, 0.05
SYNC = dict(type='SyncBN')


def _sync(cfg: dict) -> dict:
    """``cfg`` with SyncBN in the backbone and every projector / predictor."""
    cfg = copy.deepcopy(cfg)
    cfg['backbone']['norm_cfg'] = SYNC
    if cfg['neck']['type'] != 'MoCoV2Neck':       # (MoCo's has no norm)
        cfg['neck']['norm_cfg'] = SYNC
    if 'predictor' in cfg['head']:
        cfg['head']['predictor']['norm_cfg'] = SYNC
    return cfg


#: method -> (config of the model, what each rank logs per sample: the
#: global loss itself for the contrastive methods, its local mean for BYOL)
CASES = {
    'RoCL': dict(type='RoCL', algorithm=_sync(simclr_cfg()), lamda=4.),
    'CLAE': dict(type='CLAE', algorithm=_sync(simclr_cfg())),
    'ACL': dict(type='ACL', algorithm=_sync(simclr_cfg())),
    'BYORL': dict(type='BYORL', algorithm=_sync(byol_cfg())),
    'AdvCL': dict(type='AdvCL', algorithm=_sync(simclr_cfg()), ks=(2, 3),
                  radius=2),
    'ARoCL': dict(type='ARoCL', algorithm=_sync(simclr_cfg()), lamda=4.,
                  hard_negatives=dict(beta=1.0, tau_plus=0.12)),
    # the adaptive degree's distance average is summed over processes
    'AAdvCL': dict(type='AAdvCL', algorithm=_sync(simclr_cfg()), ks=(2, 3),
                   radius=2, adaptive=dict(from_epoch=1, d_min=0.4),
                   hard_negatives=dict(beta=1.0, tau_plus=0.12)),
    # the bank fills in 2 iterations (8 columns, global batch 4), then
    # climbs with momentum; its gradient is averaged over processes
    'AdCo': dict(type='AdCo', algorithm=_sync(moco_cfg(queue_len=8)),
                 memory_lr=3.),
    'IFM': dict(type='IFM', algorithm=_sync(moco_cfg(queue_len=8))),
    'MoCHi': dict(type='MoCHi', algorithm=_sync(moco_cfg(queue_len=8)),
                  num_hard=4, num_mixed=3, num_query_mixed=2),
    'HCL': dict(type='HCL', algorithm=_sync(simclr_cfg())),
    # as AdCo's: 2 iterations of fill, 2 of cooperative-adversarial steps
    'CaCo': dict(type='CaCo', algorithm=_sync(mocov3_cfg()), bank_size=8,
                 memory_warmup_epochs=0),
}
#: AdvCL's three views (two augmentations and the weak one)
NUM_VIEWS = {'AdvCL': 3, 'AAdvCL': 3}
#: iterations other than ITERS (AdCo: 2 filling, 2 adversarial)
NUM_ITERS = {'AdCo': 4, 'CaCo': 4}


#: buffers whose columns are keys written in all_gather order (rank-major)
QUEUES = ('queue', 'bank', 'bank_velocity')


def _gathered_order(columns: torch.Tensor, world: int = 2) -> torch.Tensor:
    """One process's queue columns in the order two processes write them:
    each global batch as all_gather concatenates it (rank 0's samples 0, 2,
    then rank 1's 1, 3; DefaultSampler's layout)."""
    local = GLOBAL_BATCH // world
    order = [r + world * k for r in range(world) for k in range(local)]
    blocks = columns.split(GLOBAL_BATCH, dim=1)
    return torch.cat([b[:, order] for b in blocks], dim=1)


def _labels(module) -> None:
    """The same pseudo-labels (of the global batch) in every process."""
    if hasattr(module, 'set_pseudo_labels'):
        gen = torch.Generator().manual_seed(5)
        module.set_pseudo_labels(torch.stack(
            [torch.randint(0, k, (GLOBAL_BATCH, ), generator=gen)
             for k in module.ks], dim=1), module.ks)


def _views(num_views: int = 2) -> List[List[torch.Tensor]]:
    """uint8 views of each of the global batch's samples."""
    gen = torch.Generator().manual_seed(0)
    return [[torch.randint(0, 256, (3, IMG, IMG), generator=gen,
                           dtype=torch.uint8) for _ in range(num_views)]
            for _ in range(GLOBAL_BATCH)]


def _train(model, module, samples, indices,
           iters: int = ITERS) -> List[Dict[str, float]]:
    """``ITERS`` SGD steps in float64 (so that no sign of the attack's
    gradient can differ by rounding between the two runs), one
    ``sample_seed`` per iteration; ``model`` is ``module`` or its DDP."""
    from mmpretrain.structures import DataSample
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    data = module.data_preprocessor(
        dict(inputs=[torch.stack([s[v] for s in samples])
                     for v in range(len(samples[0]))],
             data_samples=[DataSample(metainfo=dict(sample_idx=i))
                           for i in indices]), True)
    views = [v.double() for v in data['inputs']]
    logs = []
    for it in range(iters):
        module.sample_seed = 1000 + it
        losses = model(views, data['data_samples'], mode='loss')
        optimizer.zero_grad()
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        optimizer.step()
        logs.append({k: float(v.detach()) for k, v in losses.items()})
    return logs


def _worker(rank: int, world: int, port: int, method: str,
            out_dir: str) -> None:
    import torch.distributed as dist
    from mmengine.model import MMDistributedDataParallel
    from mmengine.registry import init_default_scope
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=world)
    try:
        nn.SyncBatchNorm.forward = cpu_sync_batch_norm_forward
        nn.parallel.DistributedDataParallel._passing_sync_batchnorm_handle = (
            lambda self, module: None)
        import aemim_mm  # noqa: F401
        init_default_scope('mmpretrain')
        set_max_iters()
        module = MODELS.build(copy.deepcopy(CASES[method]))
        assert any(isinstance(m, nn.SyncBatchNorm) for m in module.modules())
        module.load_state_dict(
            torch.load(os.path.join(out_dir, 'init.pth'), weights_only=True),
            strict=True)
        module.double().train()
        _labels(module)
        ddp = MMDistributedDataParallel(module=module,
                                        broadcast_buffers=False)
        # DefaultSampler's layout: rank r gets global samples r, r + world
        views = _views(NUM_VIEWS.get(method, 2))
        logs = _train(ddp, module, views[rank::world],
                      list(range(GLOBAL_BATCH))[rank::world],
                      NUM_ITERS.get(method, ITERS))
        torch.save(dict(logs=logs, state=module.state_dict()),
                   os.path.join(out_dir, f'rank{rank}.pth'))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize('method', sorted(CASES))
def test_two_processes_equal_one_process(method, tmp_path):
    import torch.multiprocessing as mp
    torch.manual_seed(0)
    set_max_iters()
    reference = MODELS.build(copy.deepcopy(CASES[method]))
    reference.init_weights()
    torch.save(reference.state_dict(), tmp_path / 'init.pth')
    init = copy.deepcopy(reference.state_dict())
    reference.double().train()
    _labels(reference)
    ref_logs = _train(reference, reference, _views(NUM_VIEWS.get(method, 2)),
                      list(range(GLOBAL_BATCH)), NUM_ITERS.get(method, ITERS))
    mp.spawn(_worker, args=(2, free_port(), method, str(tmp_path)),
             nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f'rank{r}.pth', weights_only=True)
             for r in range(2)]
    for it in range(NUM_ITERS.get(method, ITERS)):
        for key in ref_logs[it]:
            if 'loss' not in key:
                continue
            # contrastive losses: every rank computes the global loss;
            # BYOL's: each rank its local mean (equal batches)
            got = sum(r['logs'][it][key] for r in ranks) / 2
            assert got == pytest.approx(ref_logs[it][key], rel=1e-9,
                                        abs=1e-10), (method, it, key)
    want = reference.state_dict()
    moved = [k for k in want if not torch.equal(want[k], init[k])]
    assert any('running_mean' in k for k in moved)
    assert any(k.startswith('backbone.') and 'weight' in k for k in moved)
    for rank in ranks:
        state = rank['state']
        assert state.keys() == want.keys()
        for key, value in want.items():
            if key in QUEUES:
                value = _gathered_order(value)
            assert_close(state[key], value, rtol=1e-8, atol=1e-10,
                         msg=f'{method}: {key}')
    for key, value in ranks[0]['state'].items():    # every process: one bank
        assert_close(ranks[1]['state'][key], value, rtol=1e-12, atol=1e-14,
                     msg=f'{method}: {key} differs between the processes')
