"""Split normalisation layers (AdvProp's auxiliary BatchNorm, in place):
conversion, the two routes, frozen running statistics, refusals and the
wrapper's load hook for plain checkpoints."""
import copy

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from aemim_mm.models.adapters import (AdapterLayerNorm, adapter_route,
                                      clean_twin_key, convert_adapters,
                                      is_adversarial_key)
from aemim_mm.models.split_norm import (add_adversarial_twins,
                                        frozen_running_stats, is_split_norm,
                                        norm_route, reset_adversarial_twins)
from aemim_mm.models.sync_batch_norm import (
    check_equal_adversarial_forwards, one_process_batch_norms)
from mmpretrain.models.utils.sparse_modules import (SparseBatchNorm2d,
                                                    SparseHelper,
                                                    SparseLayerNorm2D,
                                                    SparseSyncBatchNorm2d)
from mmpretrain.registry import MODELS
from tiny_models import build_wrapper
from tiny_spark import spark_cfg

C = 4
BN_TWINS = {'adv_weight', 'adv_bias'}, {
    'adv_running_mean', 'adv_running_var', 'adv_num_batches_tracked'}
LN_TWINS = {'adv_weight', 'adv_bias'}, set()
SPARSE = (SparseBatchNorm2d, SparseSyncBatchNorm2d, SparseLayerNorm2D)


def _mmengine_sync_bn():
    return MODELS.get('SyncBN')(C)


#: (id, factory, adapter, expected (params, buffers) twins)
LAYERS = [
    ('BatchNorm2d', lambda: nn.BatchNorm2d(C), 'bn', BN_TWINS),
    ('SyncBatchNorm', lambda: nn.SyncBatchNorm(C), 'bn', BN_TWINS),
    ('mmengine-SyncBN', _mmengine_sync_bn, 'bn', BN_TWINS),
    ('SparseBatchNorm2d', lambda: SparseBatchNorm2d(C), 'bn', BN_TWINS),
    ('SparseSyncBatchNorm2d', lambda: SparseSyncBatchNorm2d(C), 'bn',
     BN_TWINS),
    ('SparseLayerNorm2D', lambda: SparseLayerNorm2D(C), 'ln', LN_TWINS),
    ('LayerNorm', lambda: nn.LayerNorm(C), 'ln', LN_TWINS),
]
LAYER = pytest.mark.parametrize('factory,adapter,twins',
                                [case[1:] for case in LAYERS],
                                ids=[case[0] for case in LAYERS])
BATCH_NORMS = [case for case in LAYERS if case[2] == 'bn']
BATCH_NORM = pytest.mark.parametrize('factory',
                                     [case[1] for case in BATCH_NORMS],
                                     ids=[case[0] for case in BATCH_NORMS])


class Holder(nn.Module):
    """A model whose ``backbone`` is a Sequential around the layers."""

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__()
        self.backbone = nn.Sequential(*layers)


@pytest.fixture(autouse=True)
def _active_map():
    """A (2, 1, 3, 3) active map for the sparse layers (restored after)."""
    saved = SparseHelper._cur_active
    gen = torch.Generator().manual_seed(5)
    active = torch.rand(2, 1, 3, 3, generator=gen) < 0.5
    active[:, :, 0, 0] = True      # at least one kept position per sample
    SparseHelper._cur_active = active
    yield active
    SparseHelper._cur_active = saved


def _random_layer(factory, seed: int = 0) -> nn.Module:
    """A layer with non-trivial affine parameters and running statistics."""
    layer = factory()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        layer.weight.copy_(torch.rand(C, generator=gen) + 0.5)
        layer.bias.copy_(torch.randn(C, generator=gen))
        if getattr(layer, 'running_mean', None) is not None:
            layer.running_mean.copy_(torch.randn(C, generator=gen))
            layer.running_var.copy_(torch.rand(C, generator=gen) + 0.5)
            layer.num_batches_tracked.fill_(7)
    return layer


def _input(layer: nn.Module, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    if isinstance(layer, nn.LayerNorm) and not isinstance(
            layer, SparseLayerNorm2D):
        return torch.randn(2, 3, 3, C, generator=gen) * 3 + 1
    return torch.randn(2, C, 3, 3, generator=gen) * 3 + 1


def _convert(factory, adapter: str, seed: int = 0):
    """``(converted layer, unconverted copy, holder)``."""
    plain = _random_layer(factory, seed)
    holder = Holder(copy.deepcopy(plain))
    converted = convert_adapters(holder, adapter, ('backbone', ))
    assert converted == ['backbone.0']
    return holder.backbone[0], plain, holder


def _stats(layer: nn.Module, prefix: str = '') -> dict:
    return {
        name: getattr(layer, prefix + name).clone()
        for name in ('running_mean', 'running_var', 'num_batches_tracked')
        if getattr(layer, prefix + name, None) is not None
    }


def _assert_stats(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for name in got:
        assert_close(got[name], want[name], msg=name)


def _with_adv_values(plain: nn.Module, layer: nn.Module) -> nn.Module:
    """A copy of the unconverted ``plain`` holding ``layer``'s adversarial
    parameters and statistics as its own."""
    ref = copy.deepcopy(plain)
    with torch.no_grad():
        for name, tensor in list(ref.named_parameters()) + list(
                ref.named_buffers()):
            tensor.copy_(getattr(layer, 'adv_' + name))
    return ref


def _perturb_adversarial(layer: nn.Module) -> None:
    """Give the twins values of their own (they start as copies)."""
    gen = torch.Generator().manual_seed(9)
    with torch.no_grad():
        layer.adv_weight.copy_(torch.rand(C, generator=gen) + 2)
        layer.adv_bias.copy_(torch.randn(C, generator=gen) - 3)
        if hasattr(layer, 'adv_running_mean'):
            layer.adv_running_mean.copy_(torch.randn(C, generator=gen))
            layer.adv_running_var.copy_(torch.rand(C, generator=gen) + 1)
            layer.adv_num_batches_tracked.fill_(3)


# ------------------------------------------------------------ conversion
@LAYER
def test_conversion_keeps_the_class_and_adds_exactly_the_twins(
        factory, adapter, twins):
    layer, plain, holder = _convert(factory, adapter)
    if type(plain) is nn.LayerNorm:
        assert type(layer) is AdapterLayerNorm
    else:
        assert type(layer) is type(plain)
        assert is_split_norm(layer) and norm_route(layer) == 'clean'
    params, buffers = twins
    plain_params = {n for n, _ in plain.named_parameters()}
    plain_buffers = {n for n, _ in plain.named_buffers()}
    assert {n for n, _ in layer.named_parameters()} == plain_params | params
    assert {n for n, _ in layer.named_buffers()} == plain_buffers | buffers
    for name in params:
        assert getattr(layer, name).requires_grad
    # the twins start as copies of the clean tensors, in other storage
    for name in params | buffers:
        twin, clean = getattr(layer, name), getattr(layer, name[4:])
        assert_close(twin, clean)
        assert twin.data_ptr() != clean.data_ptr()
    # dropping adv_* keys gives the plain layer's state dict
    state = holder.state_dict()
    clean_state = {k: v for k, v in state.items() if not is_adversarial_key(k)}
    plain_holder = Holder(copy.deepcopy(plain))
    assert clean_state.keys() == plain_holder.state_dict().keys()
    fresh = Holder(factory())
    fresh.load_state_dict(clean_state, strict=True)
    for key, value in plain_holder.state_dict().items():
        assert_close(fresh.state_dict()[key], value, msg=key)
    assert sorted(k for k in state if is_adversarial_key(k)) == sorted(
        f'backbone.0.{n}' for n in params | buffers)


# ---------------------------------------------------------------- routes
@LAYER
def test_clean_route_is_the_unconverted_layer(factory, adapter, twins):
    layer, plain, _ = _convert(factory, adapter)
    _perturb_adversarial(layer)
    adv_before = _stats(layer, 'adv_')
    layer.train()
    plain.train()
    x = _input(layer)
    with adapter_route(layer, 'clean'):
        out = layer(x)
    assert_close(out, plain(x))
    assert_close(layer(x), plain(x))                # clean by default
    _assert_stats(_stats(layer), _stats(plain))     # both moved alike
    _assert_stats(_stats(layer, 'adv_'), adv_before)
    if twins[1]:
        assert int(layer.num_batches_tracked) == 9   # 7 + 2 forwards


@LAYER
def test_adversarial_route_uses_and_updates_only_the_twins(
        factory, adapter, twins):
    layer, plain, _ = _convert(factory, adapter)
    _perturb_adversarial(layer)
    ref = _with_adv_values(plain, layer)
    clean_before = _stats(layer)
    clean_weight = layer.weight
    layer.train()
    ref.train()
    x = _input(layer)
    with adapter_route(layer, 'adv'):
        out = layer(x)
        if twins[1]:
            assert norm_route(layer) == 'adv'
    expected = ref(x)
    assert_close(out, expected)
    # the route is back: clean tensors under the original names
    assert layer.weight is clean_weight
    if twins[1]:
        assert norm_route(layer) == 'clean'
        assert int(layer.adv_num_batches_tracked) == 4
        assert int(layer.num_batches_tracked) == 7
    _assert_stats(_stats(layer), clean_before)
    _assert_stats(_stats(layer, 'adv_'), _stats(ref))
    # gradients flow to the adversarial affine parameters only
    probe = torch.randn_like(out)
    (out * probe).sum().backward()
    (expected * probe).sum().backward()
    assert layer.weight.grad is None and layer.bias.grad is None
    assert_close(layer.adv_weight.grad, ref.weight.grad)
    assert_close(layer.adv_bias.grad, ref.bias.grad)


@LAYER
def test_route_is_restored_after_an_exception(factory, adapter, twins):
    layer, _, _ = _convert(factory, adapter)
    names = {n: id(t) for n, t in list(layer.named_parameters()) + list(
        layer.named_buffers())}
    with pytest.raises(RuntimeError, match='boom'):
        with adapter_route(layer, 'adv'):
            assert layer.weight is not None
            raise RuntimeError('boom')
    assert {n: id(t) for n, t in list(layer.named_parameters()) + list(
        layer.named_buffers())} == names
    if twins[1]:
        assert norm_route(layer) == 'clean'


@LAYER
@pytest.mark.parametrize('how', ['double', 'deepcopy'])
def test_double_and_deepcopy_keep_both_routes(factory, adapter, twins, how):
    layer, plain, _ = _convert(factory, adapter)
    _perturb_adversarial(layer)
    ref_adv = _with_adv_values(plain, layer)
    if how == 'double':
        layer, plain = layer.double(), plain.double()
        ref_adv = ref_adv.double()
        x = _input(layer).double()
        assert layer.adv_weight.dtype == torch.float64
    else:
        original = layer
        layer = copy.deepcopy(layer)
        x = _input(layer)
        assert layer.adv_weight.data_ptr() != original.adv_weight.data_ptr()
    layer.train()
    with adapter_route(layer, 'adv'):
        assert_close(layer(x), ref_adv.train()(x))
    assert_close(layer(x), plain.train()(x))
    _assert_stats(_stats(layer, 'adv_'), _stats(ref_adv))
    _assert_stats(_stats(layer), _stats(plain))
    if how == 'deepcopy':       # the original did not move
        assert_close(original.adv_weight, layer.adv_weight)
        if twins[1]:
            assert int(original.num_batches_tracked) == 7
            assert int(original.adv_num_batches_tracked) == 3


# ------------------------------------------------------- frozen statistics
def _batch_stat_output(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``layer``'s normalisation with the batch's statistics (biased
    variance), written out."""
    sparse = isinstance(layer, (SparseBatchNorm2d, SparseSyncBatchNorm2d))
    if sparse:
        index = SparseHelper._get_active_map_or_index(
            H=x.shape[2], returning_active_map=False)
        feats = x.permute(0, 2, 3, 1)[index]                   # (n, C)
    else:
        feats = x.permute(0, 2, 3, 1).reshape(-1, C)
    mean = feats.mean(0)
    var = feats.var(0, unbiased=False)
    normed = (feats - mean) / torch.sqrt(var + layer.eps)
    normed = normed * layer.weight + layer.bias
    if sparse:
        out = torch.zeros_like(x.permute(0, 2, 3, 1))
        out[index] = normed
        return out.permute(0, 3, 1, 2)
    return normed.reshape(x.shape[0], x.shape[2], x.shape[3],
                          C).permute(0, 3, 1, 2)


@BATCH_NORM
@pytest.mark.parametrize('route', ['clean', 'adv'])
def test_frozen_running_stats_normalise_with_the_batch(factory, route):
    layer, _, holder = _convert(factory, 'bn')
    _perturb_adversarial(layer)
    before = _stats(layer), _stats(layer, 'adv_')
    holder.train()
    x = _input(layer)
    with adapter_route(holder, route), frozen_running_stats(holder):
        out = layer(x)
        expected = _batch_stat_output(layer, x)
    assert_close(out, expected)
    assert layer.track_running_stats
    _assert_stats(_stats(layer), before[0])
    _assert_stats(_stats(layer, 'adv_'), before[1])
    # eval mode: the running statistics of the route normalise, unchanged
    holder.eval()
    with adapter_route(holder, route):
        want = layer(x)
    with adapter_route(holder, route), frozen_running_stats(holder):
        assert_close(layer(x), want)
    holder.train()          # and training afterwards updates them again
    layer(x)
    assert int(layer.num_batches_tracked) == 8


def test_frozen_running_stats_restore_each_layers_own_flag():
    """A layer without running statistics stays without them after the
    block; one with them gets them back."""
    model = nn.Sequential(nn.BatchNorm2d(C, track_running_stats=False),
                          nn.BatchNorm2d(C))
    with frozen_running_stats(model):
        assert [m.track_running_stats for m in model] == [False, False]
    assert [m.track_running_stats for m in model] == [False, True]


def test_nested_routes_restore_the_outer_route():
    """``adapter_route(..., 'clean')`` inside ``adapter_route(..., 'adv')``:
    the clean parameters inside, the adversarial ones again after it, the
    clean ones after the outer block."""
    layer, _, holder = _convert(lambda: nn.BatchNorm2d(C), 'bn')
    clean, adv = layer.weight, layer.adv_weight
    assert clean is not adv
    with adapter_route(holder, 'adv'):
        assert layer.weight is adv
        with adapter_route(holder, 'clean'):
            assert layer.weight is clean
        assert layer.weight is adv
    assert layer.weight is clean


# ---------------------------------------------------------------- refusals
class OwnForwardBN(nn.BatchNorm2d):

    def forward(self, x):
        return super().forward(x) * 2


SUPPORTED_BN = (r"\['BatchNorm1d', 'BatchNorm2d', 'BatchNorm3d', "
                r"'SyncBatchNorm', '_BatchNormXd', 'SparseBatchNorm2d', "
                r"'SparseSyncBatchNorm2d'\]")


@pytest.mark.parametrize('adapter', ['bn', 'norm'])
@pytest.mark.parametrize('bad', [
    lambda: nn.InstanceNorm2d(C, affine=True, track_running_stats=True),
    lambda: OwnForwardBN(C),
], ids=['InstanceNorm2d', 'OwnForwardBN'])
def test_unsupported_batch_norm_types_are_named(adapter, bad):
    model = Holder(nn.BatchNorm2d(C), bad())
    name = type(model.backbone[1]).__name__
    with pytest.raises(ValueError,
                       match=f"adapter='{adapter}' splits {SUPPORTED_BN}; "
                       f'backbone.1 is a {name}, which it does not split'):
        convert_adapters(model, adapter, ('backbone', ))


def test_norm_adapter_refuses_group_norm():
    model = Holder(nn.BatchNorm2d(C), nn.GroupNorm(2, C))
    with pytest.raises(ValueError,
                       match=r"adapter='norm' splits \['BatchNorm1d'.*"
                       r"'LayerNorm', 'SparseLayerNorm2D'\]; backbone.1 is "
                       'a GroupNorm'):
        convert_adapters(model, 'norm', ('backbone', ))


def test_bn_adapter_without_batch_norms():
    model = Holder(nn.Linear(C, C), nn.LayerNorm(C), nn.GroupNorm(2, C))
    with pytest.raises(ValueError,
                       match=r"adapter='bn' found no BatchNorm layers in "
                       r"adapter_scope=\('backbone',\) of Holder"):
        convert_adapters(model, 'bn', ('backbone', ))


def test_batch_norm_without_anything_to_split():
    model = Holder(nn.BatchNorm2d(C, affine=False, track_running_stats=False))
    with pytest.raises(ValueError, match='BatchNorm2d has no affine '
                       'parameters and no running statistics: nothing to '
                       'split'):
        convert_adapters(model, 'bn', ('backbone', ))


def test_none_adapter_changes_nothing():
    model = Holder(_random_layer(lambda: nn.BatchNorm2d(C)),
                   _random_layer(lambda: SparseLayerNorm2D(C)),
                   nn.LayerNorm(C), nn.GroupNorm(2, C))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    types = [type(m) for m in model.modules()]
    assert convert_adapters(model, 'none', ('backbone', )) == []
    assert [type(m) for m in model.modules()] == types
    assert not any(is_split_norm(m) for m in model.modules())
    after = model.state_dict()
    assert after.keys() == before.keys()
    for key in before:
        assert torch.equal(after[key], before[key]), key


# ------------------------------------------------------- wrapper load hook
def test_plain_checkpoint_fills_adversarial_params_and_buffers():
    """A plain SparK checkpoint (no adv_ keys) loads strictly into the
    wrapper; every adv_ parameter AND running statistic is its clean twin."""
    wrapper = build_wrapper(spark_cfg('resnet'), adapter='bn')
    plain = MODELS.build(spark_cfg('resnet'))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, tensor in list(plain.named_parameters()) + list(
                plain.named_buffers()):
            if name.endswith('running_var'):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=gen))
            else:
                tensor.fill_(11)
    checkpoint = plain.state_dict()
    assert not any(is_adversarial_key(k) for k in checkpoint)
    result = wrapper.load_state_dict(checkpoint, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    state = wrapper.state_dict()
    adv = [k for k in state if is_adversarial_key(k)]
    leaves = {k.rsplit('.', 1)[-1] for k in adv}
    assert leaves == {'adv_weight', 'adv_bias', 'adv_running_mean',
                      'adv_running_var', 'adv_num_batches_tracked'}
    for key in state:
        want = checkpoint[clean_twin_key(key) if key in adv else key]
        assert torch.equal(state[key], want), key
    # and the adversarial route now computes what the clean route does
    x = torch.randn(2, 3, 64, 64)
    wrapper.eval()
    mask = torch.ones(2, 1, 2, 2, dtype=torch.bool)
    with torch.no_grad(), adapter_route(wrapper, 'clean'):
        clean = wrapper.mim.encode(x, mask)
    with torch.no_grad(), adapter_route(wrapper, 'adv'):
        assert_close(wrapper.mim.encode(x, mask), clean)


# ------------------------------------------------- one process, and the guard
def test_one_process_batch_norms_keep_tensors_and_results():
    from mmengine.model.utils import _BatchNormXd
    model = nn.Sequential(nn.SyncBatchNorm(C), SparseSyncBatchNorm2d(C),
                          _mmengine_sync_bn(), nn.BatchNorm2d(C))
    model.train()
    model[1].eval()         # the training flag is carried per layer
    reference = copy.deepcopy(model)
    tensors = [list(m.parameters()) + list(m.buffers()) for m in model]
    assert one_process_batch_norms(model) == 3
    assert [type(m) for m in model] == [
        _BatchNormXd, SparseBatchNorm2d, _BatchNormXd, nn.BatchNorm2d]
    assert [m.training for m in model] == [True, False, True, True]
    for m, before in zip(model, tensors):
        after = list(m.parameters()) + list(m.buffers())
        assert len(after) == len(before)
        assert all(a is b for a, b in zip(after, before))
    x = torch.randn(2, C, 4, 4)
    for new, old in zip(model, reference):
        layer_x = x
        if isinstance(old, SparseSyncBatchNorm2d):
            SparseHelper._cur_active = torch.ones(2, 1, 4, 4, dtype=torch.bool)
        assert_close(new(layer_x), old(layer_x))
        assert_close(new.running_mean, old.running_mean)


def test_one_process_batch_norms_refuse_a_process_group(monkeypatch):
    monkeypatch.setattr(torch.distributed, 'is_initialized', lambda: True)
    with pytest.raises(RuntimeError, match='a process group is initialised'):
        one_process_batch_norms(nn.Sequential(nn.SyncBatchNorm(C)))


def test_wrapper_refuses_lost_adapters_at_init():
    wrapper = build_wrapper(spark_cfg('resnet'), adapter='bn')
    bn1 = wrapper.algorithm.backbone.bn1
    assert is_split_norm(bn1)
    wrapper.algorithm.backbone.bn1 = nn.BatchNorm2d(bn1.num_features)
    with pytest.raises(RuntimeError,
                       match=r'adversarial adapter entries of '
                       r"AdversarialMIMWrapper are gone \(e\.g\. "
                       r"\['backbone\.bn1\.adv_weight'"):
        wrapper.init_weights()


@pytest.mark.parametrize('seed,ratio,world,sync,refused', [
    (7, 0.5, 2, True, True),
    (None, 0.5, 2, True, False),     # per-process draws: equal counts
    (7, 1.0, 2, True, False),
    (7, 0.0, 2, True, False),
    (7, 0.5, 1, True, False),
    (7, 0.5, 2, False, False),       # no SyncBatchNorm: nothing to stall
])
def test_unequal_adversarial_forwards_are_refused(monkeypatch, seed, ratio,
                                                  world, sync, refused):
    import torch.distributed as dist
    monkeypatch.setattr(dist, 'is_initialized', lambda: True)
    monkeypatch.setattr(dist, 'get_world_size', lambda *args: world)
    model = nn.Sequential(nn.SyncBatchNorm(C) if sync else nn.BatchNorm2d(C))
    if refused:
        with pytest.raises(RuntimeError,
                           match=r'adv_ratio=0\.5 with sample-keyed draws'):
            check_equal_adversarial_forwards(model, seed, ratio)
    else:
        check_equal_adversarial_forwards(model, seed, ratio)



# ------------------------------------------ a second adversarial route
def _three_route_bn() -> nn.BatchNorm2d:
    """A BatchNorm with 'adv' and 'adv_ce' twins, every tensor distinct."""
    bn = nn.BatchNorm2d(3)
    add_adversarial_twins(bn)
    add_adversarial_twins(bn, 'adv_ce')
    with torch.no_grad():
        for i, (name, tensor) in enumerate(sorted(
                list(bn.named_parameters()) + list(bn.named_buffers()))):
            if tensor.dtype.is_floating_point:
                tensor.copy_(torch.full_like(tensor, 1 + i))
    return bn


def test_every_route_normalises_with_its_own_tensors():
    from aemim_mm.models.split_norm import norm_routes, set_norm_route
    bn = _three_route_bn().eval()
    assert norm_routes(bn) == ('clean', 'adv', 'adv_ce')
    state = {k: v.clone() for k, v in bn.state_dict().items()}
    x = torch.randn(4, 3, 2, 2)
    for route in ('adv_ce', 'adv', 'clean', 'adv_ce', 'clean'):
        set_norm_route(bn, route)
        prefix = {'clean': '', 'adv': 'adv_', 'adv_ce': 'adv_ce_'}[route]
        want = torch.nn.functional.batch_norm(
            x, state[prefix + 'running_mean'], state[prefix + 'running_var'],
            state[prefix + 'weight'], state[prefix + 'bias'], False)
        torch.testing.assert_close(bn(x), want)
        set_norm_route(bn, 'clean')
        assert {k: v for k, v in bn.state_dict().items()}.keys() == \
            state.keys()
        for key, value in bn.state_dict().items():
            assert torch.equal(value, state[key]), (route, key)


def test_training_moves_only_the_active_routes_statistics():
    from aemim_mm.models.split_norm import set_norm_route
    bn = _three_route_bn().train()
    before = {k: v.clone() for k, v in bn.state_dict().items()}
    set_norm_route(bn, 'adv_ce')
    bn(torch.randn(4, 3, 2, 2))
    set_norm_route(bn, 'clean')
    moved = {k for k, v in bn.state_dict().items()
             if not torch.equal(v, before[k])}
    assert moved == {'adv_ce_running_mean', 'adv_ce_running_var',
                     'adv_ce_num_batches_tracked'}


def test_reset_copies_the_clean_tensors_into_every_route():
    from aemim_mm.models.split_norm import set_norm_route
    bn = _three_route_bn()
    set_norm_route(bn, 'adv')            # from any route
    reset_adversarial_twins(bn)
    set_norm_route(bn, 'clean')
    state = bn.state_dict()
    for name in ('weight', 'bias', 'running_mean', 'running_var'):
        for prefix in ('adv_', 'adv_ce_'):
            assert torch.equal(state[prefix + name], state[name])


def test_route_a_norm_lacks_is_refused_and_keys_map_to_clean_twins():
    from aemim_mm.models.split_norm import set_norm_route
    bn = nn.BatchNorm2d(3)
    add_adversarial_twins(bn)
    with pytest.raises(ValueError, match=r"has the routes \('clean', 'adv'\)"
                       r", not 'adv_ce'"):
        set_norm_route(bn, 'adv_ce')
    with pytest.raises(ValueError, match=r"already has the route 'adv'"):
        add_adversarial_twins(bn)
    assert clean_twin_key('a.bn.adv_ce_running_var') == 'a.bn.running_var'
    assert clean_twin_key('a.bn.adv_running_var') == 'a.bn.running_var'
    assert clean_twin_key('backbone.adv_cls_token') == 'backbone.cls_token'
