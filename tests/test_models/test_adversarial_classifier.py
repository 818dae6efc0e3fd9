"""AdversarialImageClassifier (ALF / AFF: PGD-AT and TRADES) and the
protocol configs of configs/eval/ (SLF / ALF / AFF), on tiny CIFAR
ResNets (CPU)."""
import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from PIL import Image
from torch.testing import assert_close

from aemim_mm.models import AdversarialImageClassifier
from aemim_mm.models.adversarial_classifier import TRADES_START_STD

REPO = Path(__file__).resolve().parents[2]
EVAL_CONFIGS = sorted((REPO / 'configs' / 'eval').glob('*.py'))
MEAN, STD = [125.3, 123.0, 113.9], [63.0, 62.1, 66.7]


def tiny(objective='pgd_at', frozen=False, **kwargs) -> dict:
    return dict(
        type='AdversarialImageClassifier', objective=objective,
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=3,
                               mean=MEAN, std=STD, to_rgb=True),
        backbone=dict(type='ResNet_CIFAR', depth=18, base_channels=4,
                      stem_channels=4, frozen_stages=4 if frozen else -1),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=3, in_channels=32,
                  loss=dict(type='CrossEntropyLoss')),
        **kwargs)


def build(cfg: dict, dtype=torch.float64) -> AdversarialImageClassifier:
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model.to(dtype).train()


def batch(n: int = 4, size: int = 16, dtype=torch.float64):
    """Normalised images and their samples (labels 0, 1, 2, 0, ...)."""
    gen = torch.Generator().manual_seed(1)
    pixels = torch.randint(0, 256, (n, 3, size, size), generator=gen)
    mean = torch.tensor(MEAN).reshape(1, 3, 1, 1)
    std = torch.tensor(STD).reshape(1, 3, 1, 1)
    x = ((pixels.float() - mean) / std).to(dtype)
    samples = [DataSample().set_gt_label(i % 3) for i in range(n)]
    return x, samples


def grads(model, losses) -> dict:
    model.zero_grad()
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()
            if p.grad is not None}


@pytest.mark.parametrize('objective', ['pgd_at', 'trades'])
def test_eps_zero_equals_the_plain_classifier(objective):
    """No budget: the examples are the images, TRADES' KL is 0, and loss
    and every gradient are the plain ImageClassifier's (float64)."""
    model = build(tiny(objective, attack=dict(eps=0, steps=3)))
    plain_cfg = {k: v for k, v in tiny().items()
                 if k not in ('objective', )}
    plain = build(dict(plain_cfg, type='ImageClassifier'))
    plain.load_state_dict(model.state_dict())
    x, samples = batch()
    got = model.loss(x, samples)
    want = plain.loss(x, samples)
    assert_close(got['loss'], want['loss'])
    if objective == 'trades':
        assert_close(got['loss_trades'], torch.zeros((), dtype=x.dtype))
    g_got, g_want = grads(model, got), grads(plain, want)
    assert g_got.keys() == g_want.keys()
    for name in g_want:
        assert_close(g_got[name], g_want[name], msg=name)


def test_pgd_at_trains_on_the_examples_inside_the_budget():
    model = build(tiny('pgd_at', attack=dict(eps=8, steps=5, step_size=2)))
    x, samples = batch()
    labels = torch.tensor([0, 1, 2, 0])
    running = model.backbone.bn1.running_mean.clone()
    crafted = {}
    craft = model.craft

    def spy(inputs, objective, **kwargs):
        crafted['x'] = craft(inputs, objective, **kwargs)
        return crafted['x']

    model.craft = spy
    losses = model.loss(x, samples)
    x_adv = crafted['x']
    # the preprocessor's float32 mean and std (as the model has them)
    prep = model.data_preprocessor
    std, mean = prep.std.reshape(1, 3, 1, 1), prep.mean.reshape(1, 3, 1, 1)
    assert ((x_adv - x) * std).abs().max() <= 8 + 1e-9
    pixels = x_adv * std + mean
    assert pixels.min() >= -1e-9 and pixels.max() <= 255 + 1e-9
    # the attack raised the loss it maximised, with running statistics
    # untouched (BatchNorms in eval mode while crafting)
    with torch.no_grad():
        model.eval()
        clean = F.cross_entropy(model.logits(x), labels)
        adv = F.cross_entropy(model.logits(x_adv), labels)
        model.train()
    assert adv > clean
    # the loss is the head's on the examples (train-mode BatchNorms)
    model.craft = lambda *a, **k: x_adv
    assert_close(losses['loss'], model.head.loss(
        model.extract_feat(x_adv), samples)['loss'])
    model.backbone.bn1.running_mean.copy_(running)
    with torch.no_grad():
        model.craft = craft
        model.craft(x, lambda z: model.logits(z).sum(1))
    assert_close(model.backbone.bn1.running_mean, running)


def test_trades_objective_is_the_formula():
    """CE(f(x), y) + beta * KL(f(x) || f(x')) (batch mean), the gradient
    flowing through both f(x) terms, as TRADES' code."""
    model = build(tiny('trades', beta=6.0,
                       attack=dict(eps=8, steps=2, step_size=2)))
    x, samples = batch()
    labels = torch.tensor([0, 1, 2, 0])
    gen = torch.Generator().manual_seed(3)
    x_adv = x + 0.05 * torch.randn(x.shape, generator=gen, dtype=x.dtype)
    model.craft = lambda *a, **k: x_adv
    losses = model.loss(x, samples)
    logits, logits_adv = model.logits(x), model.logits(x_adv)
    p = F.softmax(logits, 1)
    kl = (p * (p.log() - F.log_softmax(logits_adv, 1))).sum(1).mean()
    assert_close(losses['loss'], F.cross_entropy(logits, labels))
    assert_close(losses['loss_trades'], 6.0 * kl)
    got = grads(model, losses)
    want = grads(model, dict(loss=F.cross_entropy(model.logits(x), labels)
                             + 6.0 * (F.softmax(model.logits(x), 1) * (
                                 F.log_softmax(model.logits(x), 1) -
                                 F.log_softmax(model.logits(x_adv), 1))
                                      ).sum(1).mean()))
    for name in want:
        assert_close(got[name], want[name], msg=name)


def test_trades_starts_from_a_small_gaussian():
    """Zero steps: the example is TRADES' start, x + N(0, 0.001^2) in [0, 1]
    pixel units (0.255 on 0-255 pixels)."""
    model = build(tiny('trades', attack=dict(eps=8, steps=0)))
    x, _ = batch(n=8, size=32)
    torch.manual_seed(0)
    start = model.craft(x, lambda z: model.logits(z).sum(1),
                        start_std=TRADES_START_STD)
    std = model.data_preprocessor.std.reshape(1, 3, 1, 1)
    moved = ((start - x) * std).flatten()
    assert moved.std() == pytest.approx(0.255, rel=0.05)
    assert moved.abs().max() <= 8


def test_alf_freezes_the_encoder_aff_trains_it():
    for frozen in (True, False):
        model = build(tiny('pgd_at', frozen=frozen,
                           attack=dict(eps=8, steps=1)), torch.float32)
        from mmengine.optim import OptimWrapper
        optim = OptimWrapper(torch.optim.SGD(
            [p for p in model.parameters() if p.requires_grad], lr=0.1))
        before = copy.deepcopy(model.state_dict())
        pixels = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
        model.train_step(dict(inputs=list(pixels), data_samples=[
            DataSample().set_gt_label(i % 3) for i in range(4)]), optim)
        after = model.state_dict()
        moved = lambda k: not torch.equal(before[k], after[k])  # noqa: E731
        assert moved('head.fc.weight')
        assert moved('backbone.conv1.weight') is not frozen
        # a frozen encoder's BatchNorms keep their statistics (eval mode)
        assert moved('backbone.bn1.running_mean') is not frozen


@pytest.mark.parametrize('kwargs,match', [
    (dict(objective='fgsm'), r"objective must be one of \('pgd_at', "
     r"'trades'\)"),
    (dict(beta=-1.0), 'beta must be a number >= 0'),
    (dict(attack=dict(eps=-8)), 'eps must'),
    (dict(attack=dict(steps=-1)), 'steps must be an int >= 0'),
    (dict(objective='trades', attack=dict(random_start=False)),
     'attack.random_start must stay True'),
])
def test_bad_options_are_refused(kwargs, match):
    cfg = tiny()
    cfg.update(kwargs)
    init_default_scope('mmpretrain')
    with pytest.raises(ValueError, match=match):
        MODELS.build(cfg)


# ------------------------------------------------------ the protocol configs


def _protocol_expectations(cfg: Config) -> dict:
    return dict(frozen=cfg.model.backbone.get('frozen_stages', -1) > 0,
                adversarial=cfg.model.type == 'AdversarialImageClassifier')


@pytest.mark.parametrize('path', [
    pytest.param(p, marks=pytest.mark.slow) if p.stem.endswith('_in1k')
    else p for p in EVAL_CONFIGS], ids=lambda p: p.stem)
def test_protocol_config_trains_one_iteration(path, tmp_path):
    """Each protocol as shipped (the encoder's weights random in place of
    an export), two 32 px images through the config's pipeline, one
    iteration: the encoder moves exactly when the protocol fine-tunes it
    (AFF), the head always; the name says the protocol; the budget is the
    data set's (8/255 CIFAR-10, 4/255 ImageNet)."""
    from mmengine.runner import Runner
    cfg = Config.fromfile(str(path))
    protocol = path.stem.split('_')[0]
    expect = _protocol_expectations(cfg)
    assert expect['frozen'] is (protocol in ('slf', 'alf'))
    assert expect['adversarial'] is (protocol != 'slf')
    if expect['adversarial']:
        assert cfg.model.attack.eps == (4 if path.stem.endswith('_in1k')
                                        else 8)
    if protocol.startswith('aff'):
        assert cfg.model.objective == protocol.split('-', 1)[1].replace(
            '-', '_')
    data = tmp_path / 'data'
    for split in ('train', 'test'):
        for label, name in enumerate(('airplane', 'cat')):
            folder = data / split / name
            folder.mkdir(parents=True)
            Image.fromarray(np.full((32, 32, 3), 60 + 120 * label,
                                    np.uint8)).save(folder / '0.png')
    cfg.model.backbone.pop('init_cfg', None)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].update(batch_size=2, num_workers=0,
                           persistent_workers=False, pin_memory=False)
        # class folders in place of CIFAR-10's or ImageNet's, the config's
        # pipeline kept
        cfg[loader].dataset = dict(
            type='CustomDataset', data_root=str(data),
            data_prefix='train' if loader == 'train_dataloader' else 'test',
            pipeline=cfg[loader].dataset.pipeline)
    if path.stem.endswith('_in1k'):
        # 224 px on a CPU: one attack step (the CIFAR configs run theirs
        # in full), and AMP (mmpretrain's ViT-B linear probe) needs a GPU
        if expect['adversarial']:
            cfg.model.attack.steps = 1
        if cfg.optim_wrapper.get('type') == 'AmpOptimWrapper':
            cfg.optim_wrapper.type = 'OptimWrapper'
            cfg.optim_wrapper.pop('loss_scale', None)
            cfg.optim_wrapper.pop('dtype', None)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=1,
                         val_interval=10)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.log_processor = dict(by_epoch=False)
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    runner.model.init_weights()    # runner.train() will not redo it
    before = copy.deepcopy(runner.model.state_dict())
    runner.train()
    after = runner.model.state_dict()
    head = [k for k in after if k.startswith('head.') and 'weight' in k]
    assert any(not torch.equal(before[k], after[k]) for k in head)
    encoder = [k for k in after if k.startswith('backbone.') and
               after[k].is_floating_point() and 'running' not in k]
    moved = any(not torch.equal(before[k], after[k]) for k in encoder)
    assert moved is not expect['frozen'], path.stem
