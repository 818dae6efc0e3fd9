"""The README's plug-in config is a working config.

The block between ``<!-- plugin-config -->`` markers in README.md is what a
user copies into an existing mmpretrain setup; this test reads it from the
README, builds the model and trains it for one iteration on a few images.
"""
import re
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

README = Path(__file__).resolve().parents[1] / 'README.md'


def plugin_config_text() -> str:
    match = re.search(
        r'<!-- plugin-config -->\s*```python\n(.*?)```\s*'
        r'<!-- /plugin-config -->', README.read_text(), re.S)
    assert match, 'README.md lost its <!-- plugin-config --> block'
    return match.group(1)


def test_plugin_config_is_short():
    lines = [ln for ln in plugin_config_text().splitlines()
             if ln.strip() and not ln.lstrip().startswith('#')]
    # the base line plus at most ten lines a user adds
    assert len(lines) <= 11, lines


@pytest.fixture
def plugin_config(tmp_path: Path) -> Config:
    path = tmp_path / 'aemim_from_readme.py'
    path.write_text(plugin_config_text())
    return Config.fromfile(str(path))


def test_plugin_config_builds_the_wrapped_mae(plugin_config: Config):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    import aemim_mm  # noqa: F401
    init_default_scope('mmpretrain')
    # as mmengine's Runner does: the top-level data_preprocessor goes along
    model = MODELS.build(dict(plugin_config.model,
                              data_preprocessor=plugin_config.data_preprocessor))
    assert type(model).__name__ == 'AdversarialMIMWrapper'
    assert type(model.algorithm).__name__ == 'MAE'
    assert (model.attack.eps, model.attack.steps) == (2, 2)
    # the top-level mmpretrain data preprocessor reached the algorithm
    assert model.data_preprocessor.std.flatten().tolist() == pytest.approx(
        [58.395, 57.12, 57.375])
    assert '_scope_' not in plugin_config.train_dataloader.collate_fn
    # any launcher's Runner wraps the model in AEMIM's DDP (found in the
    # root registry, where mmengine's Runner looks model wrappers up)
    from mmengine.registry import MODEL_WRAPPERS
    assert plugin_config.model_wrapper_cfg == dict(
        type='AEMIMDistributedDataParallel', broadcast_buffers=False)
    assert MODEL_WRAPPERS.get('AEMIMDistributedDataParallel') is not None


def test_plugin_config_trains_one_iteration(plugin_config: Config,
                                            tmp_path: Path):
    from mmengine.runner import Runner
    images = tmp_path / 'images'
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
                        ).save(images / f'{i}.png')
    cfg = plugin_config
    cfg.work_dir = str(tmp_path / 'work')
    cfg.train_dataloader.batch_size = 1
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    cfg.train_dataloader.dataset = dict(
        type='CustomDataset', data_root=str(images), with_label=False,
        pipeline=cfg.train_dataloader.dataset.pipeline)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=1)
    cfg.param_scheduler = []
    cfg.optim_wrapper.type = 'OptimWrapper'       # AMP needs a GPU
    cfg.optim_wrapper.pop('loss_scale', None)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1,
                                        by_epoch=False)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.log_processor = dict(by_epoch=False)
    cfg.resume = False
    runner = Runner.from_cfg(cfg)
    runner.train()
    scalars = runner.message_hub.log_scalars
    for key in ('train/loss', 'train/rec_clean', 'train/rec_adv',
                'train/adv_dist'):
        assert np.isfinite(scalars[key].current()), key
    assert (tmp_path / 'work' / 'iter_1.pth').is_file()
    assert runner.model.data_preprocessor.std.flatten().tolist() == \
        pytest.approx([58.395, 57.12, 57.375])
