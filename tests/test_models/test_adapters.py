"""AdapterLayerNorm, convert_adapters and adapter_route."""
import pytest
import torch
from torch import nn
from torch.testing import assert_close

from aemim_mm.models.adapters import (AdapterLayerNorm, adapter_route,
                                      adversarial_state_dict_keys,
                                      convert_adapters,
                                      reset_adversarial_adapters)
from mmpretrain.registry import MODELS
from tiny_models import mae_cfg


@pytest.mark.parametrize('bias', [True, False])
def test_from_layer_norm_copies_and_routes(bias):
    norm = nn.LayerNorm(8, eps=1e-6, bias=bias)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        if bias:
            norm.bias.uniform_(-1, 1)
    layer = AdapterLayerNorm.from_layer_norm(norm)
    x = torch.randn(3, 5, 8)
    assert_close(layer(x), norm(x))
    assert_close(layer.adv_weight, norm.weight)
    with torch.no_grad():
        layer.adv_weight.mul_(2)
    assert_close(layer(x), norm(x))                  # clean route by default
    with adapter_route(layer, 'adv'):
        expected = nn.functional.layer_norm(x, (8, ), layer.adv_weight,
                                            layer.adv_bias, 1e-6)
        assert_close(layer(x), expected)
    assert layer.route == 'clean'                    # restored on exit


def test_route_is_restored_after_error_and_nested():
    layer = AdapterLayerNorm(4)
    with pytest.raises(RuntimeError):
        with adapter_route(layer, 'adv'):
            raise RuntimeError('boom')
    assert layer.route == 'clean'
    with adapter_route(layer, 'adv'):
        with adapter_route(layer, 'clean'):
            assert layer.route == 'clean'
        assert layer.route == 'adv'


def test_route_rejects_unknown():
    with pytest.raises(ValueError, match="route must be one of"):
        with adapter_route(AdapterLayerNorm(4), 'dirty'):
            pass


def test_no_affine_layer_norm_is_refused():
    with pytest.raises(ValueError, match='elementwise_affine'):
        AdapterLayerNorm.from_layer_norm(
            nn.LayerNorm(4, elementwise_affine=False))


@pytest.mark.parametrize('scope,expect_neck', [(('backbone', ), False),
                                               (('backbone', 'neck'), True)])
def test_convert_ln_scope_and_names(scope, expect_neck):
    model = MODELS.build(mae_cfg())
    converted = convert_adapters(model, 'ln', scope)
    norms = {n for n, m in model.named_modules()
             if isinstance(m, AdapterLayerNorm)}
    assert norms == set(converted)
    assert 'backbone.ln1' in norms and 'backbone.layers.0.ln1' in norms
    assert ('neck.ln1' in norms) == expect_neck
    keys = model.state_dict().keys()
    adv = adversarial_state_dict_keys(model.state_dict())
    # clean keys keep their original names; dropping adv_* gives plain MAE
    assert sorted(k for k in keys if k not in adv) == sorted(
        MODELS.build(mae_cfg()).state_dict())
    assert all(k.rsplit('.', 1)[-1] in ('adv_weight', 'adv_bias')
               for k in adv)


def test_convert_cls_token_and_route_swaps_token():
    model = MODELS.build(mae_cfg())
    assert convert_adapters(model, 'cls_token') == ['backbone.cls_token']
    backbone = model.backbone
    clean = backbone.cls_token
    with torch.no_grad():
        backbone.adv_cls_token.fill_(3.0)
    with adapter_route(model, 'adv'):
        assert backbone.cls_token is backbone.adv_cls_token
        with adapter_route(model, 'clean'):
            assert backbone.cls_token is clean
    assert backbone.cls_token is clean
    reset_adversarial_adapters(model)
    assert_close(backbone.adv_cls_token, clean)


@pytest.mark.parametrize('adapter,scope,match', [
    ('batchnorm', ('backbone', ), 'adapter must be one of'),
    ('bn', ('backbone', ), 'found no BatchNorm layers'),
    ('ln', ('decoder', ), "adapter_scope entry 'decoder'"),
    ('cls_token', ('neck', ), 'found no a `cls_token`'),
])
def test_convert_errors(adapter, scope, match):
    with pytest.raises(ValueError, match=match):
        convert_adapters(MODELS.build(mae_cfg()), adapter, scope)


def test_convert_none_changes_nothing():
    model = MODELS.build(mae_cfg())
    before = list(model.state_dict())
    assert convert_adapters(model, 'none') == []
    assert list(model.state_dict()) == before


def test_optimizer_rules_match_adapter_names():
    """No weight decay on adversarial norms and tokens (mmpretrain rules)."""
    from mmengine.optim import build_optim_wrapper
    model = MODELS.build(mae_cfg())
    convert_adapters(model, 'ln')
    convert_adapters(model, 'cls_token', ('backbone', ))
    optim = build_optim_wrapper(model, dict(
        optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
        paramwise_cfg=dict(custom_keys={
            'ln': dict(decay_mult=0.0), 'bias': dict(decay_mult=0.0),
            'pos_embed': dict(decay_mult=0.), 'mask_token':
            dict(decay_mult=0.), 'cls_token': dict(decay_mult=0.)})))
    decay = {id(p): g['weight_decay']
             for g in optim.optimizer.param_groups for p in g['params']}
    names = {n: p for n, p in model.named_parameters()}
    adv = [n for n in names if n.rsplit('.', 1)[-1].startswith('adv_')]
    assert adv and all(decay[id(names[n])] == 0 for n in adv)
    assert decay[id(names['backbone.layers.0.attn.qkv.weight'])] == 0.05


@pytest.mark.parametrize('key,twin', [
    ('backbone.layers.0.ln1.adv_weight', 'backbone.layers.0.ln1.weight'),
    ('backbone.adv_cls_token', 'backbone.cls_token'),
    ('adv_head.adv_bias', 'adv_head.bias'),       # only the leaf changes
])
def test_clean_twin_key(key, twin):
    from aemim_mm.models.adapters import clean_twin_key
    assert clean_twin_key(key) == twin


def test_clean_twin_key_rejects_clean_keys():
    from aemim_mm.models.adapters import clean_twin_key
    with pytest.raises(ValueError, match='not an adversarial adapter key'):
        clean_twin_key('backbone.adv_block.weight')
