"""Tests of the attack-schedule / grid hook and the loss-curve hook."""
import json
import os.path as osp
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.model import BaseDataPreprocessor

from aemim_mm.engine.hooks.attack_schedule_hook import FeatureDistancePGDHook
from aemim_mm.engine.hooks.image_grid_hook import VIS_KEYS
from aemim_mm.engine.hooks.loss_curve_hook import LossCurveHook
from mmpretrain.registry import HOOKS


# ---------------------------------------------------------------- fakes
class FakeVisualizer:

    def __init__(self):
        self.images = []

    def add_image(self, name, image, step=0):
        self.images.append((name, image, step))


class FakeModel:
    """What the hook needs of an AdversarialMIMWrapper."""

    def __init__(self):
        self.attack = SimpleNamespace(eps=2.0, steps=2, step_size=None)
        self.adv_ratio = 1.0
        self.data_preprocessor = BaseDataPreprocessor()
        self.visualize_calls = []

    def visualize(self, inputs, data_samples):
        self.visualize_calls.append((inputs.shape, data_samples))
        torch.rand(10)  # consumes RNG: the hook must isolate it
        x = inputs.float() / 255
        return dict(clean=x, adversarial=x, perturbation=torch.rand_like(x),
                    reconstruction=1 - x)


def fake_runner(tmp_path=None, it=0, max_iters=100, model=None):
    return SimpleNamespace(
        model=model if model is not None else FakeModel(),
        iter=it,
        max_iters=max_iters,
        message_hub=MessageHub.get_instance('test_hooks'),
        visualizer=FakeVisualizer(),
        work_dir=str(tmp_path) if tmp_path is not None else '.')


# ---------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    'kwargs, match',
    [
        (dict(eps_schedule='2'), 'eps_schedule'),
        (dict(eps_schedule=dict(type='cosine')), 'eps_schedule.*type'),
        (dict(eps_schedule=dict(type='linear', start=0, end=2)),
         'eps_schedule.*warmup_iters'),
        (dict(eps_schedule=dict(type='linear', start=0, end=2,
                                warmup_iters=0)), 'eps_schedule.*warmup'),
        (dict(eps_schedule=dict(type='linear', start=0, end=2,
                                warmup_iters=5, foo=1)), 'eps_schedule.*foo'),
        (dict(eps_schedule=-1), 'eps_schedule'),
        (dict(eps_schedule=300), 'eps_schedule'),
        (dict(eps_schedule=float('nan')), 'eps_schedule'),
        (dict(steps_schedule=1.5), 'steps_schedule.*integer'),
        (dict(steps_schedule=dict(type='milestones', milestones=[5],
                                  values=[1])), 'steps_schedule.*one more'),
        (dict(steps_schedule=dict(type='milestones', milestones=[5, 5],
                                  values=[1, 2, 3])),
         'steps_schedule.*increasing'),
        (dict(adv_ratio_schedule=1.5), 'adv_ratio_schedule'),
        (dict(adv_ratio_schedule=dict(type='linear', start=0, end=2,
                                      warmup_iters=3)), 'adv_ratio_schedule'),
        (dict(vis_interval=-1), 'vis_interval'),
        (dict(vis_num_samples=0), 'vis_num_samples'),
    ])
def test_invalid_hook_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        FeatureDistancePGDHook(**kwargs)


# ---------------------------------------------------------------- attack hook
def test_registered():
    assert HOOKS.get('FeatureDistancePGDHook') is FeatureDistancePGDHook
    assert HOOKS.get('LossCurveHook') is LossCurveHook


def test_former_import_path():
    from aemim_mm.engine.hooks import attack_hook
    from aemim_mm.engine.hooks.schedules import ParamSchedule
    assert attack_hook.FeatureDistancePGDHook is FeatureDistancePGDHook
    assert attack_hook.VIS_KEYS is VIS_KEYS
    assert attack_hook.ParamSchedule is ParamSchedule


@pytest.mark.parametrize('it, eps, steps, ratio', [(0, 0.0, 1, 0.25),
                                                   (50, 1.0, 1, 0.25),
                                                   (100, 2.0, 2, 0.25),
                                                   (150, 2.0, 2, 1.0)])
def test_hook_sets_model_attributes_and_logs(it, eps, steps, ratio):
    hook = FeatureDistancePGDHook(
        eps_schedule=dict(type='linear', start=0, end=2, warmup_iters=100),
        steps_schedule=dict(type='milestones', milestones=[100],
                            values=[1, 2]),
        adv_ratio_schedule=dict(type='milestones', milestones=[150],
                                values=[0.25, 1.0]))
    runner = fake_runner(it=it)
    hook.before_train(runner)
    hook.before_train_iter(runner, batch_idx=it)
    model = runner.model
    assert model.attack.eps == pytest.approx(eps)
    assert model.attack.steps == steps and isinstance(model.attack.steps, int)
    assert model.adv_ratio == pytest.approx(ratio)
    hub = runner.message_hub
    assert hub.get_scalar('train/eps').current() == pytest.approx(eps)
    assert hub.get_scalar('train/steps').current() == steps
    assert hub.get_scalar('train/adv_ratio').current() == pytest.approx(ratio)


def test_hook_unwraps_model_wrapper():
    from mmengine.model import MMDistributedDataParallel
    model = FakeModel()
    wrapped = MMDistributedDataParallel.__new__(MMDistributedDataParallel)
    torch.nn.Module.__init__(wrapped)
    object.__setattr__(wrapped, 'module', model)  # no process group needed
    hook = FeatureDistancePGDHook(eps_schedule=4)
    hook.before_train_iter(fake_runner(model=wrapped), batch_idx=0)
    assert model.attack.eps == 4.0


def test_unscheduled_fields_are_left_alone():
    runner = fake_runner(it=3)
    runner.model.attack.steps = 5
    FeatureDistancePGDHook(eps_schedule=1).before_train_iter(runner, 3)
    assert runner.model.attack.steps == 5 and runner.model.adv_ratio == 1.0
    assert runner.message_hub.get_scalar('train/steps').current() == 5


def test_hook_rejects_non_aemim_model():
    runner = fake_runner(model=torch.nn.Linear(2, 2))
    with pytest.raises(AttributeError, match='AdversarialMIMWrapper'):
        FeatureDistancePGDHook(eps_schedule=1).before_train(runner)


def _batch(n=6, size=16):
    g = torch.Generator().manual_seed(0)
    return dict(
        inputs=torch.randint(0, 256, (n, 3, size, size), generator=g,
                             dtype=torch.uint8),
        data_samples=[SimpleNamespace(i=i) for i in range(n)])


@pytest.mark.parametrize('it, drawn', [(0, False), (9, True), (10, False),
                                       (19, True), (24, True)])
def test_grid_written_every_interval_and_at_end(it, drawn):
    hook = FeatureDistancePGDHook(vis_interval=10, vis_num_samples=3,
                                  min_cell_size=32)
    runner = fake_runner(it=it, max_iters=25)
    hook.after_train_iter(runner, 0, data_batch=_batch(), outputs={})
    images = runner.visualizer.images
    assert len(images) == int(drawn)
    if drawn:
        name, grid, step = images[0]
        assert name == 'aemim_grid' and step == it + 1
        assert grid.dtype == np.uint8 and grid.ndim == 3 and \
            grid.shape[2] == 3
        # 4 columns of 32 px cells (16 px doubled), 3 rows
        assert grid.shape[1] >= 4 * 32 and grid.shape[0] >= 3 * 32
        shape, samples = runner.model.visualize_calls[0]
        assert tuple(shape) == (3, 3, 16, 16) and len(samples) == 3


def test_grid_does_not_touch_training_rng():
    hook = FeatureDistancePGDHook(vis_interval=1, min_cell_size=16)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    hook.after_train_iter(fake_runner(), 0, data_batch=_batch())
    assert torch.equal(torch.rand(3), expected)


def test_grid_missing_visualize_key():
    model = FakeModel()
    model.visualize = lambda x, s: dict(clean=x.float())
    hook = FeatureDistancePGDHook(vis_interval=1)
    with pytest.raises(KeyError, match='adversarial'):
        hook.make_grid(model, _batch())


def test_grid_with_real_wrapper():
    """The grid from a real (tiny) AdversarialMIMWrapper."""
    from mmengine.registry import init_default_scope

    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample
    init_default_scope('mmpretrain')
    backbone = dict(type='MAEViT', arch=dict(embed_dims=32, num_layers=1,
                                             num_heads=2,
                                             feedforward_channels=64),
                    img_size=16, patch_size=4, mask_ratio=0.75)
    model = MODELS.build(
        dict(
            type='AdversarialMIMWrapper',
            algorithm=dict(
                type='MAE',
                backbone=backbone,
                neck=dict(type='MAEPretrainDecoder', num_patches=16,
                          patch_size=4, embed_dim=32, decoder_embed_dim=16,
                          decoder_depth=1, decoder_num_heads=2),
                head=dict(type='MAEPretrainHead', norm_pix=True,
                          patch_size=4,
                          loss=dict(type='PixelReconstructionLoss',
                                    criterion='L2')),
                data_preprocessor=dict(
                    type='SelfSupDataPreprocessor',
                    mean=[123.675, 116.28, 103.53],
                    std=[58.395, 57.12, 57.375], to_rgb=True)),
            attack=dict(type='FeatureDistancePGD', eps=2, steps=1)))
    batch = _batch(n=2)
    batch['data_samples'] = [DataSample() for _ in range(2)]
    grid = FeatureDistancePGDHook(min_cell_size=16).make_grid(model, batch)
    assert grid.shape[1] == 4 * (16 + 4) + 4 and grid.dtype == np.uint8
    assert set(VIS_KEYS) == {
        'clean', 'adversarial', 'perturbation', 'reconstruction'
    }


# ---------------------------------------------------------------- loss curves
def _run_loss_hook(hook, runner, values):
    for i, (c, a) in enumerate(values):
        runner.iter = i
        outputs = dict(rec_clean=torch.tensor(c), rec_adv=torch.tensor(a),
                       loss=torch.tensor(0.5 * (c + a)), other=1.0)
        hook.after_train_iter(runner, i, data_batch=None, outputs=outputs)


def test_loss_curve_hook_writes_png_and_json(tmp_path):
    from PIL import Image
    hook = LossCurveHook(interval=2, smooth=2)
    runner = fake_runner(tmp_path, max_iters=5)
    hook.before_train(runner)
    values = [(1.0, 1.2), (0.8, 1.0), (0.6, 0.9), (0.5, 0.7), (0.4, 0.6)]
    _run_loss_hook(hook, runner, values[:2])
    assert osp.isfile(tmp_path / 'loss_curves.png')  # written at interval 2
    first = json.loads((tmp_path / 'loss_curves.json').read_text())
    assert first['records']['rec_clean']['iter'] == [1, 2]
    for i, (c, a) in enumerate(values[2:], start=2):
        runner.iter = i
        hook.after_train_iter(
            runner, i, outputs=dict(rec_clean=c, rec_adv=a,
                                    loss=0.5 * (c + a), other=1.0))
    hook.after_train(runner)
    data = json.loads((tmp_path / 'loss_curves.json').read_text())
    rec = data['records']
    assert rec['rec_clean']['iter'] == [1, 2, 3, 4, 5]
    assert rec['rec_clean']['value'] == pytest.approx([c for c, _ in values])
    assert rec['rec_adv']['value'] == pytest.approx([a for _, a in values])
    assert rec['loss']['value'] == pytest.approx(
        [0.5 * (c + a) for c, a in values])
    assert 'other' not in rec
    with Image.open(tmp_path / 'loss_curves.png') as im:
        assert im.format == 'PNG' and im.size[0] >= 400 and im.size[1] >= 300


def test_loss_curve_hook_skips_missing_and_nonfinite(tmp_path):
    hook = LossCurveHook(interval=0)
    runner = fake_runner(tmp_path)
    hook.after_train_iter(runner, 0, outputs=dict(rec_clean=1.0))
    runner.iter = 1
    hook.after_train_iter(runner, 1,
                          outputs=dict(rec_clean=float('nan'), rec_adv=2.0))
    assert hook.records['rec_clean'] == dict(iter=[1], value=[1.0])
    assert hook.records['rec_adv'] == dict(iter=[2], value=[2.0])
    assert not osp.exists(tmp_path / 'loss_curves.json')  # interval=0
    hook.after_train(runner)
    assert osp.isfile(tmp_path / 'loss_curves.json')


def test_loss_curve_hook_resume_reads_json(tmp_path):
    first = LossCurveHook(interval=0)
    runner = fake_runner(tmp_path)
    _run_loss_hook(first, runner, [(1.0, 1.1)] * 8)
    first.write(runner)
    resumed = LossCurveHook(interval=0)
    runner.iter = 5  # resumed from the checkpoint of iteration 5
    resumed.before_train(runner)
    assert resumed.records['rec_adv']['iter'] == [1, 2, 3, 4, 5]
    fresh = LossCurveHook(interval=0)
    runner.iter = 0  # a new run in the same work_dir starts empty
    fresh.before_train(runner)
    assert fresh.records['rec_adv']['iter'] == []


@pytest.mark.parametrize('kwargs, match',
                         [(dict(keys=()), 'keys'),
                          (dict(plot_keys=('foo', )), 'plot_keys'),
                          (dict(interval=-1), 'interval'),
                          (dict(out_prefix='a/b'), 'out_prefix')])
def test_loss_curve_hook_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LossCurveHook(**kwargs)
