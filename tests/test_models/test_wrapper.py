"""AdversarialMIMWrapper: Algorithm 1, adapters' gradients, state dicts."""
import re

import pytest
import torch
from torch.testing import assert_close

from aemim_mm.models import AdversarialMIMWrapper
from mmpretrain.registry import MODELS
from tiny_models import (MAE_VIT, TIMM_VIT, build_wrapper, mae_cfg,
                         simmim_cfg, simmim_samples, valid_images)

ATTACK_OFF = dict(type='FeatureDistancePGD', eps=0, steps=0)


@pytest.mark.parametrize('backbone', [MAE_VIT, TIMM_VIT])
def test_attack_off_equals_plain_mae_loss(backbone):
    """eps=0, steps=0, adapter='none', loss_ratio=1: the loss is MAE's."""
    wrapper = build_wrapper(mae_cfg(backbone), attack=ATTACK_OFF,
                            adapter='none', loss_ratio=1.0)
    plain = MODELS.build(mae_cfg(backbone))
    plain.load_state_dict(wrapper.state_dict())     # same weights
    x = valid_images(4)
    torch.manual_seed(7)
    expected = plain.loss(x, None)['loss']
    torch.manual_seed(7)
    out = wrapper.loss(x, None)
    total, _ = wrapper.parse_losses(out)
    assert_close(total, expected)
    assert_close(out['loss_clean'], expected)
    assert_close(out['loss_adv'], torch.zeros(()))
    # the 'adversarial' pass saw the clean image with the same mask
    assert_close(out['rec_adv'], out['rec_clean'])


@pytest.mark.parametrize('loss_ratio', [0.0, 0.25, 0.5, 1.0])
def test_loss_ratio_weights_the_two_losses(loss_ratio):
    wrapper = build_wrapper(loss_ratio=loss_ratio)
    out = wrapper.loss(valid_images(4), None)
    assert_close(out['loss_clean'], loss_ratio * out['rec_clean'])
    assert_close(out['loss_adv'], (1 - loss_ratio) * out['rec_adv'])
    total, log_vars = wrapper.parse_losses(out)
    assert_close(total, out['loss_clean'] + out['loss_adv'])
    for key in ('rec_clean', 'rec_adv', 'adv_dist_init', 'adv_dist',
                'adv_linf'):
        assert key in log_vars


@pytest.mark.parametrize('adv_ratio,batch,expected', [
    (1.0, 8, 8), (0.25, 8, 2), (0.25, 6, 2), (0.5, 5, 3), (0.25, 1, 0),
    (0.0, 8, 0), (0.1, 16, 2)])
def test_adv_ratio_selects_rounded_count(adv_ratio, batch, expected):
    wrapper = build_wrapper(adv_ratio=adv_ratio)
    idx = wrapper.select_adversarial(batch, torch.device('cpu'))
    assert idx.numel() == expected
    assert idx.unique().numel() == expected
    assert all(0 <= i < batch for i in idx.tolist())


def test_adversarial_pass_uses_only_the_selected_samples(monkeypatch):
    wrapper = build_wrapper(adv_ratio=0.25)
    batches = []
    original = wrapper.mim.reconstruction_loss

    def spy(inputs, mask, target):
        batches.append(inputs.shape[0])
        return original(inputs, mask, target)

    monkeypatch.setattr(wrapper.mim, 'reconstruction_loss', spy)
    wrapper.loss(valid_images(8), None)
    assert batches == [8, 2]


def test_zero_selected_samples_gives_clean_loss_only():
    wrapper = build_wrapper(adv_ratio=0.25)
    out = wrapper.loss(valid_images(1), None)
    assert_close(out['loss_adv'], torch.zeros(()))
    assert_close(out['loss_clean'], 0.5 * out['rec_clean'])


def _grads(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward(retain_graph=True)
    return {n: (None if p.grad is None else p.grad.abs().sum().item())
            for n, p in model.named_parameters()}


@pytest.mark.parametrize('adapter', ['ln', 'cls_token'])
def test_adapter_gradients_are_separated(adapter):
    wrapper = build_wrapper(adapter=adapter)
    out = wrapper.loss(valid_images(4), None)
    from_clean = _grads(wrapper, out['loss_clean'])
    from_adv = _grads(wrapper, out['loss_adv'])
    adv = [n for n in from_clean if n.rsplit('.', 1)[-1].startswith('adv_')]
    clean = [n.replace('adv_', '') for n in adv]
    assert adv
    for a, c in zip(adv, clean):
        assert not from_clean[a], a          # adversarial gets nothing clean
        assert from_adv[a], a
        assert not from_adv[c], c            # clean gets nothing adversarial
        assert from_clean[c], c
    shared = 'algorithm.backbone.layers.0.attn.qkv.weight'
    assert from_clean[shared] and from_adv[shared]


def test_state_dict_clean_path_equals_plain_mae_and_round_trips():
    wrapper = build_wrapper()
    state = wrapper.state_dict()
    plain = MODELS.build(mae_cfg()).state_dict()
    clean = [k for k in state if not k.rsplit('.', 1)[-1].startswith('adv_')]
    assert clean == list(plain)
    other = build_wrapper()
    other.load_state_dict(state)                 # strict round trip
    for key, value in other.state_dict().items():
        assert_close(value, state[key])


def test_loading_plain_mae_seeds_adversarial_adapters():
    plain = MODELS.build(mae_cfg())
    plain.init_weights()
    with torch.no_grad():
        plain.backbone.ln1.weight.fill_(0.3)
    wrapper = build_wrapper()
    wrapper.load_state_dict(plain.state_dict())  # strict: adv_* filled
    assert_close(wrapper.algorithm.backbone.ln1.adv_weight,
                 torch.full((64, ), 0.3))


def test_init_weights_starts_both_routes_equal():
    wrapper = build_wrapper(adapter='cls_token')
    backbone = wrapper.algorithm.backbone
    assert backbone.cls_token.abs().sum() > 0
    assert_close(backbone.adv_cls_token, backbone.cls_token)


def test_simmim_swin():
    wrapper = build_wrapper(simmim_cfg(), attack=dict(
        type='FeatureDistancePGD', eps=4, steps=2))
    x = valid_images(2)
    out = wrapper.loss(x, simmim_samples(2))
    assert torch.isfinite(out['loss_clean'] + out['loss_adv'])
    assert out['adv_dist'] > out['adv_dist_init']
    images = wrapper.visualize(x, simmim_samples(2))
    assert images['reconstruction'].shape == (2, 3, 32, 32)


@pytest.mark.parametrize('distance', ['kl', 'cos', 'rec'])
def test_other_distances_train(distance):
    wrapper = build_wrapper(attack=dict(type='FeatureDistancePGD', eps=2,
                                        steps=1, distance=distance))
    out = wrapper.loss(valid_images(2), None)
    total, _ = wrapper.parse_losses(out)
    total.backward()
    assert torch.isfinite(total)


def test_visualize_contract():
    wrapper = build_wrapper()
    x = valid_images(3)
    images = wrapper.visualize(x, None)
    assert set(images) == {'clean', 'adversarial', 'perturbation',
                           'reconstruction'}
    for img in images.values():
        assert img.shape == (3, 3, 32, 32)
        assert 0 <= img.min() and img.max() <= 1
    assert_close(images['clean'] * 255,
                 (x * torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
                  + torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)),
                 atol=1e-3, rtol=0)
    # eps=2 of 255: adversarial differs from clean by at most 2/255
    assert (images['adversarial'] - images['clean']).abs().max() <= 2 / 255 + 1e-5


def test_unknown_algorithm_names_supported_and_interface():
    from aemim_mm.models import supported_algorithms
    names = supported_algorithms()
    assert {'MAE', 'SimMIM', 'BEiT', 'CAE', 'MixMIM'} <= set(names)
    listed = re.escape(repr(names))
    with pytest.raises(TypeError, match=f"supported: {listed}.*"
                       r"subclass aemim_mm.models.MIMInterface"):
        AdversarialMIMWrapper(algorithm=torch.nn.Linear(2, 2))


@pytest.mark.parametrize('kwargs,match', [
    (dict(loss_ratio=1.5), 'loss_ratio must be a number in'),
    (dict(loss_ratio='0.5'), 'loss_ratio must be a number in'),
    (dict(adv_ratio=-0.1), 'adv_ratio must be a number in'),
    (dict(adv_ratio=True), 'adv_ratio must be a number in'),
    (dict(adapter='batchnorm'), 'adapter must be one of'),
    (dict(adapter_scope='backbone'), 'adapter_scope must be a list'),
    (dict(adapter_scope=['decoder']), "adapter_scope entry 'decoder'"),
    (dict(attack=3), 'attack must be a config dict'),
    (dict(attack=dict(type='FeatureDistancePGD', eps=-2)), 'eps must be'),
])
def test_bad_options_raise_at_build(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(dict(type='AdversarialMIMWrapper', algorithm=mae_cfg(),
                          **kwargs))


def test_top_level_data_preprocessor_goes_to_the_algorithm():
    """mmengine's Runner passes a config's top-level data_preprocessor."""
    cfg = mae_cfg()
    preprocessor = cfg.pop('data_preprocessor')
    wrapper = MODELS.build(dict(type='AdversarialMIMWrapper', algorithm=cfg,
                                data_preprocessor=preprocessor))
    assert wrapper.data_preprocessor is wrapper.algorithm.data_preprocessor
    assert_close(wrapper.data_preprocessor.std.flatten(),
                 torch.tensor([58.395, 57.12, 57.375]))
    # the algorithm's own preprocessor wins over the top-level one
    wrapper = MODELS.build(dict(
        type='AdversarialMIMWrapper', algorithm=mae_cfg(),
        data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[0] * 3,
                               std=[1] * 3)))
    assert_close(wrapper.data_preprocessor.std.flatten(),
                 torch.tensor([58.395, 57.12, 57.375]))
    with pytest.raises(ValueError, match='data_preprocessor is given'):
        AdversarialMIMWrapper(algorithm=MODELS.build(mae_cfg()),
                              data_preprocessor=preprocessor)


def test_nonfinite_attack_gradient_falls_back_to_random_start(monkeypatch):
    """An inf in the attack (fp16 overflow, say) never reaches the weights."""
    wrapper = build_wrapper(attack=dict(type='FeatureDistancePGD', eps=2,
                                        steps=2))
    wrapper.sample_seed = 0
    original = wrapper.mim.encode

    def poisoned(inputs, mask):
        feat = original(inputs, mask)
        return torch.cat([feat[:1] * float('inf'), feat[1:]])

    monkeypatch.setattr(wrapper.mim, 'encode', poisoned)
    x = valid_images(3)
    out = wrapper.loss(x, None)
    assert out['adv_nonfinite'].item() == 1
    total, _ = wrapper.parse_losses(out)
    total.backward()
    for name, p in wrapper.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name
    assert torch.isfinite(out['adv_dist_init'])


def test_nonfinite_adversarial_loss_is_dropped_and_counted(monkeypatch):
    wrapper = build_wrapper()
    original = wrapper.mim.reconstruction_loss
    calls = []

    def second_call_nan(inputs, mask, target):
        loss, feat, pred = original(inputs, mask, target)
        calls.append(1)
        return (loss * float('nan') if len(calls) == 2 else loss), feat, pred

    monkeypatch.setattr(wrapper.mim, 'reconstruction_loss', second_call_nan)
    out = wrapper.loss(valid_images(4), None)
    assert out['adv_nonfinite'].item() == 4
    total, _ = wrapper.parse_losses(out)
    assert_close(total, out['loss_clean'])
    total.backward()
    for name, p in wrapper.named_parameters():
        if not p.requires_grad:                   # the fixed pos_embed
            continue
        assert p.grad is not None, name           # DDP: every param used
        assert torch.isfinite(p.grad).all(), name
        if name.rsplit('.', 1)[-1].startswith('adv_'):
            assert not p.grad.any(), name


def test_every_parameter_gets_a_grad_without_adversarial_samples():
    """A process whose share of the adversarial subset is empty (DDP)."""
    wrapper = build_wrapper(adv_ratio=0.25)
    out = wrapper.loss(valid_images(1), None)
    total, _ = wrapper.parse_losses(out)
    total.backward()
    missing = [n for n, p in wrapper.named_parameters()
               if p.requires_grad and p.grad is None and 'pos_embed' not in n]
    assert not missing


@pytest.mark.parametrize('adv_ratio', [1.0, 0.5, 0.25])
def test_clean_first_train_step_gives_the_gradients_of_loss(adv_ratio):
    """train_step backpropagates L_c before building the adversarial graph;
    the update must equal one backward of the whole loss()."""
    import copy

    from mmengine.optim import OptimWrapper
    wrapper = build_wrapper(adv_ratio=adv_ratio)
    wrapper.sample_seed = 3                # same draws in both models
    twin = copy.deepcopy(wrapper)
    uint8 = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(0))
    data = dict(inputs=uint8, data_samples=[None] * 4)

    # reference: one backward of loss()
    inputs = twin.data_preprocessor(dict(data), True)['inputs']
    total, ref_vars = twin.parse_losses(twin.loss(inputs, None))
    total.backward()
    expected = {n: p.grad for n, p in twin.named_parameters()
                if p.grad is not None}

    # train_step with SGD(lr=1): new = old - grad
    before = {n: p.detach().clone() for n, p in wrapper.named_parameters()}
    optim = OptimWrapper(torch.optim.SGD(wrapper.parameters(), lr=1.0))
    log_vars = wrapper.train_step(dict(data), optim)
    for name, p in wrapper.named_parameters():
        grad = before[name] - p.detach()
        assert_close(grad, expected.get(name, torch.zeros_like(grad)),
                     rtol=1e-4, atol=1e-6, msg=name)
    for key in ('loss', 'loss_clean', 'loss_adv', 'rec_clean', 'rec_adv'):
        assert_close(log_vars[key], ref_vars[key], msg=key)


@pytest.mark.parametrize('adapter', ['ln', 'none'])
def test_clean_first_train_step_without_adversarial_samples(adapter):
    """adv_ratio 0 on one process: the zero adversarial loss reaches only the
    parameters that the clean backward left without a gradient ('none': no
    parameter at all), and AdamW (weight decay, moments) updates exactly as
    after one backward of loss(), which gives every parameter a gradient."""
    import copy

    from mmengine.optim import OptimWrapper
    wrapper = build_wrapper(adv_ratio=0.0, adapter=adapter)
    wrapper.sample_seed = 3                # same draws in both models
    twin = copy.deepcopy(wrapper)
    uint8 = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(0))
    data = dict(inputs=uint8, data_samples=[None] * 4)

    def adamw(model):
        return torch.optim.AdamW(model.parameters(), lr=1e-2,
                                 weight_decay=0.5)

    reference = adamw(twin)
    optim = OptimWrapper(adamw(wrapper))
    for _ in range(2):
        inputs = twin.data_preprocessor(dict(data), True)['inputs']
        total, _ = twin.parse_losses(twin.loss(inputs, None))
        total.backward()
        reference.step()
        reference.zero_grad()
        wrapper.train_step(dict(data), optim)
    for (name, p), q in zip(wrapper.named_parameters(), twin.parameters()):
        assert_close(p, q, msg=name)
    trainable = [n for n, p in wrapper.named_parameters() if p.requires_grad]
    stepped = {n for n, p in wrapper.named_parameters()
               if p in optim.optimizer.state}
    assert stepped == set(trainable)
    assert any(n.rsplit('.', 1)[-1].startswith('adv_')
               for n in trainable) == (adapter == 'ln')


@pytest.mark.parametrize('adapter,expected', [
    ('ln', {'algorithm.backbone.ln1.weight', 'algorithm.neck.ln1.bias'}),
    ('cls_token', {'algorithm.backbone.cls_token'}), ('none', set())])
def test_clean_adapter_parameters(adapter, expected):
    wrapper = build_wrapper(adapter=adapter)
    names = {n for n, p in wrapper.named_parameters()
             if any(p is q for q in wrapper.clean_adapter_parameters())}
    assert expected <= names
    assert not any(n.rsplit('.', 1)[-1].startswith('adv_') for n in names)
    if adapter == 'none':
        assert not names
