"""Every config in configs/*.py parses, builds its model without data, and has
the settings of the paper (docs/configs.md) -- asserted from EXPECTED below.

A new config is covered by the generic checks automatically (glob); give it a
row in EXPECTED so that its settings are checked too.
"""
import copy
import functools
import os
import os.path as osp
from pathlib import Path
from typing import List

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

from module_loader import load_tool

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / 'configs'
CONFIGS = sorted(CONFIG_DIR.glob('*.py'))
CONFIG_NAMES = [p.stem for p in CONFIGS]

WRAPPER = 'AdversarialMIMWrapper'
IMAGENET_MEAN = [123.675, 116.28, 103.53]
CIFAR10_MEAN = [125.307, 122.961, 113.8575]
MAE_LR = 1.5e-4 * 4096 / 256

# ------------------------------------------------------------------ table
# attack settings of the paper (Table 1, Sec. 4.7)
STANDARD = dict(eps=2, steps=2, distance='l2', adapter='ln', loss_ratio=0.5,
                adv_ratio=1.0)
FAST = dict(STANDARD, steps=1, adv_ratio=0.25)
SIMMIM = dict(STANDARD, steps=1, adv_ratio=1.0)

# schedules: lr, betas, weight decay, epochs, warm-up end, total batch
MAE_800E = dict(algo='MAE', lr=MAE_LR, betas=(0.9, 0.95), wd=0.05,
                max_epochs=800, warmup=40, batch=4096, per_gpu=512,
                mean=IMAGENET_MEAN, img_size=224, amp=True)
MAE_300E = dict(MAE_800E, max_epochs=300, warmup=15)
SIMMIM_100E = dict(algo='SimMIM', lr=2e-4 * 2048 / 512, betas=(0.9, 0.999),
                   wd=0.05, max_epochs=100, warmup=10, batch=2048,
                   per_gpu=256, mean=IMAGENET_MEAN, img_size=192, amp=True)
CIFAR_200E = dict(algo='MAE', lr=1.5e-4 * 512 / 256, betas=(0.9, 0.95),
                  wd=0.05, max_epochs=200, warmup=10, batch=512, per_gpu=512,
                  mean=CIFAR10_MEAN, img_size=32, amp=False)

# encoder shape: (embed dims, layers, heads, patch) and MAE decoder (depth,
# dims, heads, input width)
VIT_B = dict(encoder=(768, 12, 12, 16), decoder=(8, 512, 16, 768))
VIT_S = dict(encoder=(384, 12, 6, 16), decoder=(8, 512, 16, 384))
VIT_T4 = dict(encoder=(192, 12, 3, 4), decoder=(4, 128, 4, 192))
SWIN_B = dict(encoder=None, decoder=None)


def _row(schedule, model, aemim=None, **changes):
    attack = None if aemim is None else dict(aemim, **changes)
    return dict(schedule, **model, aemim=attack)


EXPECTED = {
    # baselines (no wrapper)
    'mae_vit-b_800e': _row(MAE_800E, VIT_B),
    'mae_vit-b_300e': _row(MAE_300E, VIT_B),
    'mae_vit-s_300e': _row(MAE_300E, VIT_S),
    'simmim_swin-b_100e': _row(SIMMIM_100E, SWIN_B),
    'mae_vit-t-p4_cifar10': _row(CIFAR_200E, VIT_T4),
    # AEMIM / Fast AEMIM
    'aemim_vit-b_800e': _row(MAE_800E, VIT_B, STANDARD),
    'aemim_vit-b_300e': _row(MAE_300E, VIT_B, STANDARD),
    'aemim_vit-s_300e': _row(MAE_300E, VIT_S, STANDARD),
    'fast_aemim_vit-b_800e': _row(MAE_800E, VIT_B, FAST),
    'fast_aemim_vit-b_300e': _row(MAE_300E, VIT_B, FAST),
    'fast_aemim_vit-s_300e': _row(MAE_300E, VIT_S, FAST),
    'aemim_simmim_swin-b_100e': _row(SIMMIM_100E, SWIN_B, SIMMIM),
    'aemim_vit-t-p4_cifar10': _row(CIFAR_200E, VIT_T4, STANDARD),
    'fast_aemim_vit-t-p4_cifar10': _row(CIFAR_200E, VIT_T4, FAST),
    # ablations (Table 8), each one change from aemim_vit-s_300e
    'aemim_vit-s_300e_dist-kl': _row(MAE_300E, VIT_S, STANDARD,
                                     distance='kl'),
    'aemim_vit-s_300e_dist-rec': _row(MAE_300E, VIT_S, STANDARD,
                                      distance='rec'),
    'aemim_vit-s_300e_adapter-cls-token': _row(MAE_300E, VIT_S, STANDARD,
                                               adapter='cls_token'),
    'aemim_vit-s_300e_adapter-none': _row(MAE_300E, VIT_S, STANDARD,
                                          adapter='none'),
    'aemim_vit-s_300e_eps-1': _row(MAE_300E, VIT_S, STANDARD, eps=1),
    'aemim_vit-s_300e_eps-4': _row(MAE_300E, VIT_S, STANDARD, eps=4),
    'aemim_vit-s_300e_steps-1': _row(MAE_300E, VIT_S, STANDARD, steps=1),
    'aemim_vit-s_300e_steps-3': _row(MAE_300E, VIT_S, STANDARD, steps=3),
}


# ------------------------------------------------------------------ helpers
@functools.lru_cache(maxsize=None)
def load(name: str) -> Config:
    return Config.fromfile(str(CONFIG_DIR / f'{name}.py'))


def cfg_of(name: str) -> Config:
    return copy.deepcopy(load(name))


def runner_model_cfg(cfg: Config) -> dict:
    """The model dict as mmengine's Runner builds it (Runner.__init__ gives
    a top-level `data_preprocessor` to the top-level model)."""
    model = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        model.setdefault('data_preprocessor', cfg.data_preprocessor)
    return model


def build_model(cfg: Config):
    import aemim_mm  # noqa: F401  (registers the wrapper and the attack)
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope',
                                                      'mmpretrain')):
        return MODELS.build(runner_model_cfg(cfg))


def build_optimizer(cfg: Config, model):
    """The config's optimiser, fp32 (AmpOptimWrapper needs a GPU)."""
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    optim_cfg['type'] = 'OptimWrapper'
    optim_cfg.pop('loss_scale', None)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope',
                                                      'mmpretrain')):
        return build_optim_wrapper(model, optim_cfg)


def weight_decays(model, optim_wrapper) -> dict:
    """Parameter name -> weight decay of its param group."""
    wd_of = {}
    for group in optim_wrapper.optimizer.param_groups:
        for p in group['params']:
            wd_of[id(p)] = group['weight_decay']
    return {n: wd_of[id(p)] for n, p in model.named_parameters()
            if p.requires_grad}


def schedulers(cfg):
    scheds = cfg.param_scheduler
    return scheds if isinstance(scheds, (list, tuple)) else [scheds]


# ------------------------------------------------------------------ tests
def test_configs_found():
    assert CONFIGS, f'no config found in {CONFIG_DIR}'


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_config_in_table_exists(name):
    assert (CONFIG_DIR / f'{name}.py').is_file(), name


@pytest.mark.parametrize('name', CONFIG_NAMES)
def test_config_parses(name):
    cfg = load(name)
    assert 'model' in cfg and 'train_dataloader' in cfg
    if cfg.model.get('type') == WRAPPER:
        # the wrapper has no `data_preprocessor` argument: the Runner must
        # not hand it one (the algorithm carries its own)
        assert cfg.get('data_preprocessor') is None, (
            'an AEMIM config must set the top-level data_preprocessor to None')
        assert 'data_preprocessor' in cfg.model.algorithm
        imports = cfg.get('custom_imports', {}).get('imports', [])
        assert 'aemim_mm' in imports


ALGORITHM_CONFIGS = sorted((CONFIG_DIR / 'algorithms').glob('*.py'))


@pytest.mark.parametrize(
    'path', CONFIGS + ALGORITHM_CONFIGS,
    ids=[str(p.relative_to(CONFIG_DIR)) for p in CONFIGS + ALGORITHM_CONFIGS])
def test_aemim_wrapper_is_no_key_of_the_merged_config(path):
    """``model = dict(_base_.pop('aemim_wrapper'), ...)`` takes the settings
    out of the merged base. Reading ``_base_.x`` in a Python config is
    documented mmengine; that ``pop`` on it removes the key from the merged
    result is not (mmengine 0.10.7 runs the file with ``_base_`` bound to the
    very dict it merges into): this pins it (docs/design.md, "Configs")."""
    cfg = Config.fromfile(str(path))
    assert 'aemim_wrapper' not in cfg
    if '_base_.pop(' in path.read_text():
        assert cfg.model.type == WRAPPER


def _local_chain(path: Path) -> List[Path]:
    """``path`` and the repository config files it inherits (``./``,
    ``../`` bases; ``mmpretrain::`` / ``mmdet::`` ones are upstream)."""
    import ast
    chain = [path]
    for node in ast.parse(path.read_text()).body:
        target = node.targets[0] if isinstance(node, ast.Assign) else None
        if isinstance(target, ast.Name) and target.id == '_base_':
            bases = ast.literal_eval(node.value)
            for base in [bases] if isinstance(bases, str) else bases:
                if '::' not in base:       # not a package's config
                    chain += _local_chain((path.parent / base).resolve())
    return chain


ALL_CONFIGS = sorted(p for p in CONFIG_DIR.rglob('*.py')
                     if '_base_' not in p.parts)
RESUME_NOTE = 'Automatic resume, as in the upstream config'


@pytest.mark.parametrize('path', ALL_CONFIGS,
                         ids=[str(p.relative_to(CONFIG_DIR))
                              for p in ALL_CONFIGS])
def test_automatic_resume_is_stated_where_it_is_set(path):
    """mmpretrain's MAE-style configs set ``resume=True``: a second run in
    the same work directory trains nothing. Every config of ours whose
    merged value is True states it (with the note), in itself or in a
    repository file it inherits."""
    cfg = Config.fromfile(str(path))
    stated = [p for p in _local_chain(path)
              if 'resume = True' in p.read_text()]
    if cfg.get('resume') is True:
        assert stated, f'{path.name} resumes automatically without a word'
        assert all(RESUME_NOTE in p.read_text() for p in stated)
    else:
        assert not stated


@pytest.mark.parametrize('name', CONFIG_NAMES)
def test_aemim_configs_select_the_clean_first_ddp(name):
    """Every launcher gets AEMIM's DDP step: the config itself selects it."""
    cfg = load(name)
    wrapper_cfg = cfg.get('model_wrapper_cfg')
    if cfg.model.get('type') == WRAPPER:
        assert wrapper_cfg == dict(type='AEMIMDistributedDataParallel',
                                   broadcast_buffers=False), wrapper_cfg
    else:
        assert wrapper_cfg is None, wrapper_cfg


@pytest.mark.parametrize('name', CONFIG_NAMES)
def test_collate_fn_has_no_scope(name):
    """mmengine passes every key of `collate_fn` to the function."""
    collate = load(name).train_dataloader.get('collate_fn',
                                              dict(type='pseudo_collate'))
    assert '_scope_' not in collate, collate
    from mmengine.registry import FUNCTIONS
    fn = FUNCTIONS.get(collate['type'])
    assert fn is not None
    kwargs = {k: v for k, v in collate.items() if k != 'type'}
    batch = [dict(inputs=torch.zeros(3, 4, 4))] * 2
    functools.partial(fn, **kwargs)(batch)


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_config_settings(name):
    """Optimiser, schedule, data and attack settings against the table."""
    exp, cfg = EXPECTED[name], load(name)

    opt = cfg.optim_wrapper.optimizer
    assert opt.type == 'AdamW'
    assert opt.lr == pytest.approx(exp['lr'])
    assert tuple(opt.betas) == exp['betas']
    assert opt.weight_decay == exp['wd']
    assert (cfg.optim_wrapper.type == 'AmpOptimWrapper') == exp['amp']
    assert cfg.auto_scale_lr.base_batch_size == exp['batch']
    assert cfg.train_dataloader.batch_size == exp['per_gpu']

    assert cfg.train_cfg.max_epochs == exp['max_epochs']
    warm, cos = schedulers(cfg)
    assert warm.type == 'LinearLR' and warm.begin == 0
    assert warm.end == exp['warmup']
    assert cos.type == 'CosineAnnealingLR'
    assert cos.begin == exp['warmup'] and cos.end == exp['max_epochs']
    assert cos.T_max == exp['max_epochs'] - exp['warmup']

    pipeline = cfg.train_dataloader.dataset.pipeline
    types = [t['type'] for t in pipeline]
    assert 'RandomResizedCrop' in types and 'RandomFlip' in types
    crop = pipeline[types.index('RandomResizedCrop')]
    assert crop.scale == exp['img_size']

    model = cfg.model
    aemim = exp['aemim']
    if aemim is None:
        assert model.type == exp['algo']
        algo = model
    else:
        assert model.type == WRAPPER
        algo = model.algorithm
        assert algo.type == exp['algo']
        attack = model.attack
        assert attack.type == 'FeatureDistancePGD'
        assert attack.eps == aemim['eps']
        assert attack.steps == aemim['steps']
        assert attack.get('step_size') is None
        assert attack.distance == aemim['distance']
        assert model.adapter == aemim['adapter']
        assert model.loss_ratio == aemim['loss_ratio']
        assert model.adv_ratio == aemim['adv_ratio']
    assert list(algo.data_preprocessor.mean) == exp['mean']
    if exp['algo'] == 'MAE':
        assert algo.backbone.mask_ratio == 0.75
        assert algo.backbone.get('img_size', 224) == exp['img_size']


def test_ablations_change_one_thing():
    """Each Table 8 ablation differs from aemim_vit-s_300e in one setting."""
    ref = load('aemim_vit-s_300e')
    for name in EXPECTED:
        if not name.startswith('aemim_vit-s_300e_'):
            continue
        cfg = load(name)
        assert cfg.model.algorithm == ref.model.algorithm, name
        assert cfg.optim_wrapper == ref.optim_wrapper, name
        assert cfg.param_scheduler == ref.param_scheduler, name
        diff = {k for k in ('adapter', 'loss_ratio', 'adv_ratio')
                if cfg.model[k] != ref.model[k]}
        diff |= {f'attack.{k}' for k in ref.model.attack
                 if cfg.model.attack[k] != ref.model.attack[k]}
        assert len(diff) == 1, (name, diff)


def test_cifar10_data_settings():
    for name in ('mae_vit-t-p4_cifar10', 'aemim_vit-t-p4_cifar10',
                 'fast_aemim_vit-t-p4_cifar10'):
        cfg = load(name)
        ds = cfg.train_dataloader.dataset
        assert ds.type == 'CustomDataset'
        assert ds.with_label is False and ds.data_prefix == 'train'
        assert ds.data_root == cfg.data_root
        if 'CIFAR10_ROOT' not in os.environ:
            assert cfg.data_root == 'data/cifar10'
        algo = cfg.model.get('algorithm', cfg.model)
        assert algo.data_preprocessor.std == [51.5865, 50.847, 51.255]
        assert algo.data_preprocessor.to_rgb is True  # JPEGs load as BGR


@pytest.mark.parametrize('name', CONFIG_NAMES)
def test_model_builds(name):
    """The model builds without data; the encoder shape, the adapters and the
    weight decay of every adapter parameter are right."""
    cfg = cfg_of(name)
    model = build_model(cfg)
    is_wrapper = cfg.model.get('type') == WRAPPER
    algo = model.algorithm if is_wrapper else model
    assert type(algo).__name__ == (cfg.model.algorithm.type if is_wrapper
                                   else cfg.model.type)

    # the data preprocessor is the config's (not a default one)
    mean = (cfg.model.algorithm if is_wrapper else
            runner_model_cfg(cfg)).data_preprocessor.mean
    torch.testing.assert_close(model.data_preprocessor.mean.flatten(),
                               torch.tensor(mean, dtype=torch.float32))

    exp = EXPECTED.get(name)
    if exp is not None and exp['encoder'] is not None:
        dims, layers, heads, patch = exp['encoder']
        backbone = algo.backbone
        assert backbone.embed_dims == dims
        assert backbone.num_layers == layers
        assert backbone.layers[0].attn.num_heads == heads
        assert backbone.patch_embed.projection.kernel_size == (patch, patch)
        depth, ddims, dheads, width = exp['decoder']
        neck = algo.neck
        assert len(neck.decoder_blocks) == depth
        assert neck.decoder_embed.in_features == width
        assert neck.decoder_embed.out_features == ddims
        assert neck.decoder_blocks[0].attn.num_heads == dheads

    names = [n for n, _ in model.named_parameters()]
    adv = [n for n in names if n.rsplit('.', 1)[-1].startswith('adv_')]
    if is_wrapper:
        adapter = cfg.model.get('adapter', 'ln')
        if adapter == 'none':
            assert not adv
        elif adapter == 'cls_token':
            assert adv and all(n.endswith('adv_cls_token') for n in adv)
        else:
            assert adv and not any('cls_token' in n for n in adv)
    else:
        assert not adv

    # weight decay through the wrapper: mmengine's custom_keys are substring
    # matches, so `ln` / `norm` / `cls_token` also catch the adv_ copies
    wd = weight_decays(model, build_optimizer(cfg, model))
    for n in adv:
        leaf = n.rsplit('.', 1)[-1]
        clean = n[:-len(leaf)] + leaf[len('adv_'):]
        assert wd[n] == 0, f'{n} gets weight decay {wd[n]}'
        assert wd[n] == wd[clean], (n, wd[n], clean, wd[clean])
    del model


def _fake_image_folder(root: Path, n: int, size: int):
    from PIL import Image
    folder = root / 'train' / 'class0'
    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    for i in range(n):
        arr = torch.randint(0, 256, (size, size, 3), generator=g,
                            dtype=torch.uint8).numpy()
        Image.fromarray(arr).save(folder / f'{i:04d}.jpg')


def _tiny_run(cfg: Config, tmp_path: Path, size: int, batch: int = 4):
    """Two training iterations through mmengine's Runner, on fake images."""
    from mmengine.runner import Runner
    data = tmp_path / 'data'
    _fake_image_folder(data, 2 * batch, size)
    dl = cfg.train_dataloader
    dl.batch_size = batch
    dl.num_workers = 0
    dl.persistent_workers = False
    dl.pin_memory = False
    dl.dataset = dict(type='CustomDataset', data_root=str(data),
                      data_prefix='train', with_label=False,
                      pipeline=dl.dataset.pipeline)
    cfg.optim_wrapper.type = 'OptimWrapper'
    cfg.optim_wrapper.pop('loss_scale', None)
    cfg.train_cfg.max_epochs = 1
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.env_cfg = dict(dist_cfg=dict(backend='gloo'))
    cfg.resume = False
    cfg.work_dir = str(tmp_path / 'work')
    import aemim_mm  # noqa: F401
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


@pytest.mark.parametrize('name', ['aemim_vit-t-p4_cifar10',
                                  'mae_vit-t-p4_cifar10'])
def test_cifar10_config_trains(name, tmp_path):
    """The CIFAR-10 configs run through the Runner as they are (collate_fn,
    data preprocessor, optimiser, schedulers, hooks)."""
    runner = _tiny_run(cfg_of(name), tmp_path, size=32)
    assert runner.iter == 2
    assert osp.isfile(osp.join(runner.work_dir, 'epoch_1.pth'))


def test_imagenet_aemim_config_trains(tmp_path):
    """An ImageNet AEMIM config inherited from `mmpretrain::` runs through the
    Runner (the `_scope_` keys, the collate_fn fix, the data preprocessor);
    ViT-S at 224 px, fp32, on fake images."""
    runner = _tiny_run(cfg_of('fast_aemim_vit-s_300e'), tmp_path, size=64,
                       batch=2)
    assert runner.iter == 2


# ------------------------------------------------------------------ data tool
def _tiny_tarball(tmp_path: Path) -> Path:
    import tarfile
    src = tmp_path / 'src'
    _fake_image_folder(src, 3, 8)
    tar_path = tmp_path / 'tiny.tar.gz'
    with tarfile.open(tar_path, 'w:gz') as tar:
        tar.add(src / 'train', arcname='train')
    return tar_path


def test_prepare_cifar10(tmp_path, capsys):
    """Extracts (here a tiny stand-in archive, --no-verify), is idempotent,
    names a missing archive, refuses an archive with the wrong sha256."""
    tool = load_tool('prepare_cifar10')
    assert osp.normpath(tool.DEFAULT_OUT) == str(REPO_ROOT / 'data/cifar10')
    tar_path, out = _tiny_tarball(tmp_path), tmp_path / 'out'

    missing = tmp_path / 'nope.tar.gz'
    assert tool.main(['--src', str(missing), '--out', str(out)]) == 1
    assert str(missing) in capsys.readouterr().err

    assert tool.main(['--src', str(tar_path), '--out', str(out)]) == 1
    assert 'sha256 mismatch' in capsys.readouterr().err
    assert not (out / 'train').exists()

    assert tool.main(['--src', str(tar_path), '--out', str(out),
                      '--no-verify']) == 0
    assert len(list((out / 'train' / 'class0').glob('*.jpg'))) == 3
    assert 'Extracting' in capsys.readouterr().out

    # an incomplete copy (not the 50,000 / 10,000 images) is not "prepared";
    # a complete one is recognised by its marker and left alone
    (out / tool.DONE_MARKER).write_text('done\n')
    assert tool.main(['--src', str(missing), '--out', str(out)]) == 0
    assert 'nothing to do' in capsys.readouterr().out
