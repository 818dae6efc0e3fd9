"""SparK (sparse ResNet / ConvNeXt) under AdversarialMIMWrapper, with
AdvProp's split BatchNorm: equality with plain SparK, which route's running
statistics move when, the Runner, the encoder export, refusals, and a
2-process gloo run against 1 process with the same global batch."""
import copy
import os
import socket
from typing import Dict, List

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from mmengine.model.utils import _BatchNormXd
from torch.nn.modules.batchnorm import _BatchNorm
from torch.testing import assert_close

from aemim_mm.models.adapters import is_adversarial_key
from aemim_mm.models.randomness import SampleRandomness
from aemim_mm.models.split_norm import is_split_norm, norm_route
from mmpretrain.models.utils.sparse_modules import (SparseBatchNorm2d,
                                                    SparseHelper,
                                                    SparseSyncBatchNorm2d)
from mmpretrain.registry import MODELS
from tiny_models import build_wrapper, valid_images
from tiny_spark import ADAPTER, KINDS, SPARK_IMG, plain_backbone_cfg, spark_cfg

ATTACK_OFF = dict(type='FeatureDistancePGD', eps=0, steps=2)
ATTACK = dict(type='FeatureDistancePGD', eps=2, steps=2)
KIND = pytest.mark.parametrize('kind', KINDS)
STATS = ('running_mean', 'running_var', 'num_batches_tracked')


def _wrapper(kind: str, sync: bool = True, **kwargs):
    kwargs.setdefault('adapter', ADAPTER[kind])
    kwargs.setdefault('attack', ATTACK)
    return build_wrapper(spark_cfg(kind, sync=sync), **kwargs)


def _plain_like(wrapper, kind: str):
    """Plain SparK holding the wrapper's clean parameters and statistics."""
    plain = MODELS.build(spark_cfg(kind))
    state = {k: v for k, v in wrapper.state_dict().items()
             if not is_adversarial_key(k)}
    plain.load_state_dict(state, strict=True)
    return plain


def _split_batch_norms(model: nn.Module) -> Dict[str, _BatchNorm]:
    return {n: m for n, m in model.named_modules()
            if isinstance(m, _BatchNorm) and is_split_norm(m)}


def _record_masks(monkeypatch, wrapper) -> List[torch.Tensor]:
    masks = []
    original = wrapper.mim.sample_mask

    def spy(*args):
        masks.append(original(*args))
        return masks[-1]

    monkeypatch.setattr(wrapper.mim, 'sample_mask', spy)
    return masks


def _grads(model: nn.Module, loss: torch.Tensor) -> Dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()
            if p.grad is not None}


# ------------------------------------------------------ plain equivalence
@KIND
def test_default_mask_draw_is_spark_own_draw(kind):
    """``sample_seed=None``: the interface draws from torch's global
    generator as ``SparK.mask`` does (same seed -> same mask)."""
    wrapper = _wrapper(kind)
    x = valid_images(3, size=SPARK_IMG)
    torch.manual_seed(4)
    mask = wrapper.mim.sample_mask(x, [None] * 3,
                                   SampleRandomness(3, x.device))
    torch.manual_seed(4)
    assert torch.equal(mask, wrapper.algorithm.mask(x.shape, x.device))
    assert mask.shape == (3, 1, 2, 2) and mask.dtype == torch.bool
    assert (mask.flatten(1).sum(1) == wrapper.algorithm.len_keep).all()


@KIND
def test_attack_off_equals_plain_spark_float64(kind, monkeypatch):
    """eps 0, loss_ratio 1: loss, every gradient and the clean running
    statistics are plain SparK's with the same (identically seeded) mask."""
    wrapper = _wrapper(kind, attack=ATTACK_OFF, loss_ratio=1.0)
    plain = _plain_like(wrapper, kind)
    wrapper.double().train()
    plain.double().train()
    masks = _record_masks(monkeypatch, wrapper)
    x = valid_images(4, seed=3, size=SPARK_IMG).double()
    torch.manual_seed(7)
    out = wrapper.loss(x, [None] * 4)
    total, _ = wrapper.parse_losses(out)
    torch.manual_seed(7)
    assert torch.equal(plain.mask(x.shape, x.device), masks[0])
    torch.manual_seed(7)
    expected = plain.loss(x, [])['loss']
    assert_close(out['loss_clean'], expected)
    assert_close(total, expected)
    assert_close(out['rec_adv'], out['rec_clean'])          # x_adv = x
    got, want = _grads(wrapper, total), _grads(plain, expected)
    assert want and {f'algorithm.{n}' for n in want} <= set(got)
    for name, grad in got.items():
        if is_adversarial_key(name):        # weighted by 1 - 1 = 0
            assert not grad.any(), name
        else:
            plain_name = name[len('algorithm.'):]
            assert_close(grad, want.get(plain_name, torch.zeros_like(grad)),
                         msg=name)
    for name, norm in _split_batch_norms(wrapper.algorithm).items():
        for stat in STATS:
            assert_close(getattr(norm, stat),
                         getattr(plain.get_submodule(name), stat),
                         msg=f'{name}.{stat}')


def _batch_stats(norm: nn.Module, x: torch.Tensor):
    """Per-channel (mean, unbiased var) of what ``norm`` normalises."""
    if isinstance(norm, (SparseBatchNorm2d, SparseSyncBatchNorm2d)):
        index = SparseHelper._get_active_map_or_index(
            H=x.shape[2], returning_active_map=False)
        feats = x.permute(0, 2, 3, 1)[index]
    else:
        feats = x.transpose(0, 1).flatten(1).t()
    return feats.mean(0), feats.var(0, unbiased=True)


@KIND
def test_each_route_tracks_its_own_pass_once(kind, monkeypatch):
    """After one ``loss()`` with eps > 0: the clean statistics are those of
    one plain SparK forward on the clean batch with the same mask (neither
    the attack nor the adversarial pass moved them); the adversarial ones
    moved once, by the batch statistics of the adversarial pass; the
    attack's forwards counted nowhere."""
    wrapper = _wrapper(kind, loss_ratio=0.5)
    plain = _plain_like(wrapper, kind)
    wrapper.train()
    plain.train()
    norms = _split_batch_norms(wrapper.algorithm)
    assert norms
    if kind == 'resnet':        # encoder, enc_dec_norms and decoder
        assert {n.split('.')[0] for n in norms} == {
            'backbone', 'enc_dec_norms', 'neck'}
    initial = {n: {s: getattr(m, s).clone() for s in STATS}
               for n, m in norms.items()}
    calls = {n: [] for n in norms}

    def hook(name):
        def record(module, args):
            calls[name].append(
                (norm_route(module), module.track_running_stats,
                 _batch_stats(module, args[0].detach())))
        return record

    for name, module in norms.items():
        module.register_forward_pre_hook(hook(name))
    masks = _record_masks(monkeypatch, wrapper)
    x = valid_images(4, seed=1, size=SPARK_IMG)
    out = wrapper.loss(x, [None] * 4)
    assert float(out['adv_dist']) > 0 and float(out['adv_linf']) > 0
    plain.mask = lambda *args, **kwargs: masks[0]
    plain.loss(x, [])
    for name, norm in norms.items():
        momentum = norm.momentum
        tracked = [(route, stats) for route, track, stats in calls[name]
                   if track]
        attack = [route for route, track, _ in calls[name] if not track]
        assert [r for r, _ in tracked] == ['clean', 'adv'], name
        # the attack runs the encoder only (feature distance), on 'adv'
        assert set(attack) <= {'adv'}, name
        assert bool(attack) == name.startswith('backbone.'), name
        plain_norm = plain.get_submodule(name)
        for stat in STATS:
            assert_close(getattr(norm, stat), getattr(plain_norm, stat),
                         msg=f'{name}.{stat}')
        assert int(norm.num_batches_tracked) == 1
        assert int(norm.adv_num_batches_tracked) == 1
        for route, (mean, var) in tracked:
            prefix = 'adv_' if route == 'adv' else ''
            init = initial[name]
            assert_close(getattr(norm, prefix + 'running_mean'),
                         (1 - momentum) * init['running_mean'] +
                         momentum * mean, msg=f'{name} {route} mean')
            assert_close(getattr(norm, prefix + 'running_var'),
                         (1 - momentum) * init['running_var'] +
                         momentum * var, msg=f'{name} {route} var')
        assert not torch.equal(norm.adv_running_mean,
                               initial[name]['running_mean']), name
        assert not torch.equal(norm.adv_running_mean, norm.running_mean)


@KIND
def test_visualize_moves_no_running_statistics(kind):
    wrapper = _wrapper(kind)
    wrapper.train()
    before = {k: v.clone() for k, v in wrapper.state_dict().items()}
    active = SparseHelper._cur_active
    modes = []
    hooks = [m.register_forward_pre_hook(
        lambda module, args: modes.append(module.training))
        for m in _split_batch_norms(wrapper).values()]
    images = wrapper.visualize(valid_images(2, size=SPARK_IMG), [None] * 2)
    for hook in hooks:
        hook.remove()
    # eval mode inside (no synchronisation: rank 0 alone may visualise),
    # training mode after
    assert modes and not any(modes)
    assert all(m.training for m in _split_batch_norms(wrapper).values())
    assert set(images) == {'clean', 'adversarial', 'perturbation',
                           'reconstruction'}
    assert SparseHelper._cur_active is active
    after = wrapper.state_dict()
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert torch.equal(after[key], value), key
    assert all(m.track_running_stats
               for m in _split_batch_norms(wrapper).values())



def test_attack_precision_moves_no_running_statistics():
    from aemim_mm.evaluation.attack_precision import compare_attack_precision
    wrapper = _wrapper('resnet')
    wrapper.train()
    before = {k: v.clone() for k, v in wrapper.state_dict().items()}
    rows = compare_attack_precision(
        wrapper, valid_images(2, size=SPARK_IMG), [None] * 2, 'bfloat16',
        steps=(1, ))
    assert len(rows) == 1
    after = wrapper.state_dict()
    for key, value in before.items():
        assert torch.equal(after[key], value), key
    assert all(m.track_running_stats
               for m in _split_batch_norms(wrapper).values())

# ------------------------------------------------------ runner and export
class Images(torch.utils.data.Dataset):
    """4 random uint8 images of SparK's input size."""

    def __len__(self):
        return 4

    def __getitem__(self, i):
        from mmpretrain.structures import DataSample
        gen = torch.Generator().manual_seed(i)
        image = torch.randint(0, 256, (3, SPARK_IMG, SPARK_IMG),
                              generator=gen, dtype=torch.uint8)
        return dict(inputs=image, data_samples=DataSample())


def _runner(kind: str, work_dir, sync: bool = True):
    from mmengine.runner import Runner
    return Runner(
        model=dict(type='AdversarialMIMWrapper',
                   algorithm=spark_cfg(kind, sync=sync),
                   adapter=ADAPTER[kind], attack=ATTACK),
        work_dir=str(work_dir),
        train_dataloader=dict(dataset=Images(), batch_size=2,
                              sampler=dict(type='DefaultSampler',
                                           shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
        train_cfg=dict(by_epoch=False, max_iters=2),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           by_epoch=False, interval=2)),
        default_scope='mmpretrain')


@KIND
def test_two_runner_iterations_and_the_encoder_export(kind, tmp_path):
    """mmpretrain's SparK norms (SyncBatchNorms) through the Runner."""
    from aemim_mm.apis.export import export_encoder
    from aemim_mm.utils.safe_load import safe_load

    runner = _runner(kind, tmp_path)
    norms = _split_batch_norms(runner.model.algorithm)
    assert len(norms) == len(_split_batch_norms(_wrapper(kind).algorithm)) > 0
    runner.train()
    assert runner.iter == 2
    scalars = runner.message_hub.log_scalars
    for key in ('loss', 'loss_clean', 'loss_adv', 'rec_clean', 'rec_adv',
                'adv_dist'):
        assert torch.isfinite(torch.tensor(
            scalars[f'train/{key}'].current())), key
    checkpoint = safe_load(str(tmp_path / 'iter_2.pth'))
    state = checkpoint['state_dict']
    assert _split_batch_norms(runner.model.algorithm).keys() == norms.keys()
    for name, norm in norms.items():
        for stat in STATS:
            assert_close(state[f'{name}.adv_{stat}'],
                         getattr(norm, 'adv_' + stat))
            assert_close(state[f'{name}.{stat}'], getattr(norm, stat))
        assert int(state[f'{name}.num_batches_tracked']) == 2
        assert int(state[f'{name}.adv_num_batches_tracked']) == 2
        assert not torch.equal(state[f'{name}.adv_running_mean'],
                               state[f'{name}.running_mean'])

    # key level: the clean backbone loads strictly into the plain backbone
    backbone = MODELS.build(plain_backbone_cfg(kind))
    clean = {k[len('backbone.'):]: v for k, v in state.items()
             if k.startswith('backbone.') and not is_adversarial_key(k)}
    backbone.load_state_dict(clean, strict=True)
    # and through export_encoder
    result = export_encoder(tmp_path / 'iter_2.pth', out_dir=tmp_path / 'out',
                            formats=('mmpretrain', ))
    exported = torch.load(result.paths['mmpretrain'], weights_only=True)
    encoder = {k[len('backbone.'):]: v
               for k, v in exported['state_dict'].items()}
    fresh = MODELS.build(plain_backbone_cfg(kind))
    fresh.load_state_dict(encoder, strict=True)
    assert encoder.keys() == clean.keys()
    for key, value in clean.items():
        assert torch.equal(encoder[key], value), key    # the CLEAN ones


@KIND
def test_one_process_runner_keeps_split_sync_batch_norms(kind, tmp_path):
    """mmpretrain's SparK norms (SparseSyncBatchNorm2d, SyncBN) through
    mmengine's Runner in one process, whose ``revert_sync_batchnorm`` would
    replace them: the model the Runner trains still has every split
    BatchNorm, and the sparse ones stay sparse."""
    runner = _runner(kind, tmp_path, sync=True)
    want = _split_batch_norms(_wrapper(kind, sync=True).algorithm)
    assert want
    got = _split_batch_norms(runner.model.algorithm)
    assert got.keys() == want.keys()
    assert any(is_adversarial_key(k) and k.endswith('running_mean')
               for k in runner.model.state_dict())
    plain = MODELS.build(spark_cfg(kind, sync=True))
    sparse = [n for n, m in plain.named_modules()
              if type(m) is SparseSyncBatchNorm2d]
    assert bool(sparse) == (kind == 'resnet')   # ConvNeXt: sparse LayerNorms
    modules = dict(runner.model.algorithm.named_modules())
    assert all(type(modules[n]) is SparseBatchNorm2d for n in sparse)


# ---------------------------------------------------------------- refusals
def test_input_size_other_than_input_size_is_refused():
    wrapper = _wrapper('resnet')
    with pytest.raises(ValueError,
                       match=r'SparK was built for 64x64 inputs \(input_size'
                       r'\), got \(32, 32\)'):
        wrapper.loss(valid_images(2, size=32), [None] * 2)


def test_unsupported_backbone_is_refused():
    cfg = spark_cfg('resnet')
    cfg['backbone']['type'] = 'ResNet'
    with pytest.raises(TypeError,
                       match=r"supports SparK with the backbone "
                       r"\['SparseConvNeXt', 'SparseResNet'\] \(exact type\)"
                       r', got ResNet'):
        MODELS.build(dict(type='AdversarialMIMWrapper', algorithm=cfg))


# ====================================================== 2-process (gloo)
def cpu_sync_batch_norm_forward(self, input: torch.Tensor) -> torch.Tensor:
    """Stand-in for ``nn.SyncBatchNorm.forward`` on CPU (test workers only):
    torch's raises on CPU tensors once a process group exists.

    Per-channel global mean and (biased) variance over every process, by
    differentiable all-reduces (two passes: sum and count, then the sum of
    squared deviations); running statistics updated as torch's BatchNorm
    does (momentum, or the cumulative average for ``momentum=None``; the
    unbiased variance), only in training mode with ``track_running_stats``.
    """
    import torch.distributed as dist
    from torch.distributed.nn.functional import all_reduce

    self._check_input_dim(input)
    factor = 0.0 if self.momentum is None else self.momentum
    if self.training and self.track_running_stats:
        self.num_batches_tracked.add_(1)
        if self.momentum is None:
            factor = 1.0 / float(self.num_batches_tracked)
    if not self.training and self.running_mean is not None:
        return F.batch_norm(input, self.running_mean, self.running_var,
                            self.weight, self.bias, False, 0.0, self.eps)
    group = self.process_group or dist.group.WORLD
    channels = input.shape[1]
    dims = [0] + list(range(2, input.dim()))
    shape = [1, channels] + [1] * (input.dim() - 2)
    count = input.new_tensor([input.numel() / channels])
    total = all_reduce(torch.cat([input.sum(dims), count]), group=group)
    num = total[-1]
    mean = total[:channels] / num
    centred = input - mean.view(shape)
    var = all_reduce((centred * centred).sum(dims), group=group) / num
    out = centred / torch.sqrt(var.view(shape) + self.eps)
    if self.weight is not None:
        out = out * self.weight.view(shape) + self.bias.view(shape)
    if self.training and self.track_running_stats:
        with torch.no_grad():
            n = float(num)
            self.running_mean.mul_(1 - factor).add_(factor * mean)
            self.running_var.mul_(1 - factor).add_(factor * var * n / (n - 1))
    return out


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.mark.filterwarnings(   # the differentiable all_reduce, torch 2.15
    'ignore:torch.distributed.nn.functional.all_reduce is deprecated'
    ':FutureWarning')
@pytest.mark.parametrize('mode', ['train', 'train-untracked', 'eval',
                                  'cumulative'])
@pytest.mark.parametrize('dims', [2, 4])
def test_cpu_sync_batch_norm_stand_in_is_batch_norm(mode, dims, tmp_path):
    """In a 1-process gloo group the stand-in is ``F.batch_norm``: output,
    gradients, running statistics and their count."""
    import torch.distributed as dist
    assert not dist.is_initialized()
    gen = torch.Generator().manual_seed(0)
    norm = nn.SyncBatchNorm(3, momentum=None if mode == 'cumulative' else 0.1,
                            track_running_stats=True)
    with torch.no_grad():
        norm.weight.copy_(torch.rand(3, generator=gen) + 0.5)
        norm.bias.copy_(torch.randn(3, generator=gen))
        norm.running_mean.copy_(torch.randn(3, generator=gen))
        norm.running_var.copy_(torch.rand(3, generator=gen) + 0.5)
        norm.num_batches_tracked.fill_(4)
    norm.train(mode != 'eval')
    if mode == 'train-untracked':
        norm.track_running_stats = False
    ref = copy.deepcopy(norm)
    shape = (6, 3) if dims == 2 else (2, 3, 4, 5)
    x = torch.randn(shape, generator=gen) * 2 + 1
    probe = torch.randn(shape, generator=gen)
    x_ref = x.clone().requires_grad_()
    x.requires_grad_()
    expected = ref(x_ref)       # no process group: torch's F.batch_norm
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/pg',
                            rank=0, world_size=1)
    try:
        out = cpu_sync_batch_norm_forward(norm, x)
        (out * probe).sum().backward()
    finally:
        dist.destroy_process_group()
    (expected * probe).sum().backward()
    assert_close(out, expected)
    assert_close(x.grad, x_ref.grad)
    assert_close(norm.weight.grad, ref.weight.grad)
    assert_close(norm.bias.grad, ref.bias.grad)
    for stat in STATS:
        assert_close(getattr(norm, stat), getattr(ref, stat), msg=stat)
    moved = mode in ('train', 'cumulative')
    assert int(norm.num_batches_tracked) == (5 if moved else 4)


GLOBAL_BATCH, ITERS, LR = 4, 2, 0.05


def _dist_wrapper():
    """The SparK ResNet of the gloo test: SparseSyncBatchNorm2d in the
    encoder (SparseResNet's default) and in enc_dec_norms, SyncBN in the
    decoder (SparKLightDecoder's default)."""
    cfg = spark_cfg('resnet', norm_cfg=dict(type='SparseSyncBatchNorm2d'))
    return MODELS.build(dict(type='AdversarialMIMWrapper', algorithm=cfg,
                             adapter='bn', attack=ATTACK))


def _global_images() -> List[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return [torch.randint(0, 256, (3, SPARK_IMG, SPARK_IMG), generator=gen,
                          dtype=torch.uint8) for _ in range(GLOBAL_BATCH)]


def _in_float64(module) -> None:
    """``module`` in float64, its data preprocessor's output too, so that no
    sign of the attack's gradient can differ by rounding between one process
    and two (in float32 the second iteration's loss differs by 2e-5 between
    one and two threads alone)."""
    module.double()
    preprocess = module.data_preprocessor.forward

    def forward(data: dict, training: bool = False) -> dict:
        data = preprocess(data, training)
        data['inputs'] = data['inputs'].double()
        return data

    module.data_preprocessor.forward = forward


def _train(model, module, images: List[torch.Tensor]) -> List[Dict]:
    """``ITERS`` training steps (SGD), one ``sample_seed`` per iteration."""
    from mmengine.optim import OptimWrapper
    from mmpretrain.structures import DataSample
    optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=LR))
    logs = []
    for it in range(ITERS):
        module.sample_seed = 1000 + it
        data = dict(inputs=torch.stack(images),
                    data_samples=[DataSample() for _ in images])
        logs.append({k: float(v.detach()) for k, v in model.train_step(
            data, optim_wrapper).items()})
    return logs


def _dist_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    """One process of the 2-process run (``torch.multiprocessing.spawn``)."""
    import torch.distributed as dist
    from mmengine.registry import init_default_scope
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=world)
    try:
        # torch's SyncBatchNorm refuses CPU tensors under a process group
        # (SparseSyncBatchNorm2d's forward calls this one too), and DDP
        # refuses CPU modules holding one: its only check, nothing else
        nn.SyncBatchNorm.forward = cpu_sync_batch_norm_forward
        nn.parallel.DistributedDataParallel._passing_sync_batchnorm_handle = (
            lambda self, module: None)
        import aemim_mm  # noqa: F401
        from aemim_mm.engine.model_wrappers import \
            AEMIMDistributedDataParallel
        init_default_scope('mmpretrain')
        module = _dist_wrapper()
        module.load_state_dict(
            torch.load(os.path.join(out_dir, 'init.pth'), weights_only=True),
            strict=True)
        _in_float64(module)
        module.train()
        sync_types = {type(m) for m in _split_batch_norms(
            module.algorithm).values()}
        assert sync_types == {SparseSyncBatchNorm2d, MODELS.get('SyncBN')}
        ddp = AEMIMDistributedDataParallel(
            module=module, broadcast_buffers=False, device_ids=None)
        # DefaultSampler's layout: rank r gets global samples r, r + world
        images = _global_images()[rank::world]
        logs = _train(ddp, module, images)
        torch.save(dict(logs=logs, state=module.state_dict()),
                   os.path.join(out_dir, f'rank{rank}.pth'))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_equal_one_with_the_same_global_batch(tmp_path):
    """SyncBatchNorm everywhere (clean and adversarial routes), gloo, DDP as
    the configs select it (``AEMIMDistributedDataParallel``), batch 2 per
    process against 1 process with batch 4: same losses, same updated
    parameters (so the same averaged gradients), same clean AND adversarial
    running statistics, after each of 2 iterations' sample-keyed draws."""
    import torch.multiprocessing as mp
    torch.manual_seed(0)
    reference = _dist_wrapper()
    reference.init_weights()
    torch.save(reference.state_dict(), tmp_path / 'init.pth')
    _in_float64(reference)
    init = copy.deepcopy(reference.state_dict())
    norms = _split_batch_norms(reference.algorithm)
    # built without a process group: their one-process equivalents
    assert {type(m) for m in norms.values()} == {SparseBatchNorm2d,
                                                  _BatchNormXd}
    reference.train()
    ref_logs = _train(reference, reference, _global_images())
    mp.spawn(_dist_worker, args=(2, free_port(), str(tmp_path)), nprocs=2,
             join=True)
    ranks = [torch.load(tmp_path / f'rank{r}.pth', weights_only=True)
             for r in range(2)]
    # losses: each rank logs the mean over its samples; every sample has the
    # same number of masked positions and is attacked (adv_ratio 1)
    for it in range(ITERS):
        for key in ('loss', 'loss_clean', 'loss_adv', 'rec_clean',
                    'rec_adv'):
            got = sum(r['logs'][it][key] for r in ranks) / 2
            assert got == pytest.approx(ref_logs[it][key], rel=1e-10,
                                        abs=1e-12), (it, key)
    want = reference.state_dict()
    for rank in ranks:
        state = rank['state']
        assert state.keys() == want.keys()
        for key, value in want.items():
            assert_close(state[key], value, rtol=1e-9, atol=1e-10, msg=key)
    # the statistics that were compared moved, on both routes
    for name in norms:
        for prefix in ('', 'adv_'):
            key = f'{name}.{prefix}running_mean'
            assert not torch.equal(want[key], init[key]), key
            assert int(want[f'{name}.{prefix}num_batches_tracked']) == ITERS
