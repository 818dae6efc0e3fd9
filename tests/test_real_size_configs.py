"""Every shipped pre-training config trains one iteration at its shipped size.

For each config under ``configs/``, ``configs/algorithms/`` and
``configs/survey/`` whose model is a pre-training model (AEMIM, Fast AEMIM,
the plain MAE / SimMIM baselines, every wrapped mmpretrain algorithm, the
survey's methods), mmengine's Runner builds the model as
the file ships it and trains ONE iteration on two real photos (scikit-image's,
written as JPEGs) at batch 2 on the CPU, through the config's own pipeline,
data preprocessor, optimizer constructor, schedulers and hooks.

What differs from a user's run, and why:

* the dataset is a folder of the two photos (``CustomDataset``), with the
  config's pipeline (the demo's ``SkimagePhotos`` keeps its type and gets the
  two photos by name); batch 2, no loader workers, one epoch (one
  iteration);
* teacher and tokenizer weights that the config downloads (CLIP for MILAN,
  EVA and iTPN-CLIP; DALL-E for BEiT v1 and CAE; VQKD for BEiT v2) are random
  ones of the same shape, written to a local file that the config's own
  loading code reads (CLIP's unused text tower is small: the generator only
  encodes images);
* ``AmpOptimWrapper`` becomes ``OptimWrapper`` (AMP needs a GPU), no
  checkpoint is saved, ``resume`` is off;
* AdvCL's ``PseudoLabelHook`` gets a random encoder of the configured shape
  (a local file) and, as two images cannot be split into up to 500 k-means
  clusters, random labels in place of the clustering (its cache, key and
  hand-over to the model run as configured).

Slow (14 minutes on this project's two-core machine, shared with another
job: ``pytest tests/test_real_size_configs.py --durations=50``).
"""
import copy
import gc
import math
import os
from pathlib import Path
from typing import Dict, List

import pytest
import torch
from mmengine.config import Config

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIRS = (REPO_ROOT / 'configs', REPO_ROOT / 'configs' / 'algorithms',
               REPO_ROOT / 'configs' / 'survey')
PHOTOS = ('astronaut', 'chelsea')
pytestmark = pytest.mark.slow


def _is_pretraining(cfg: Config) -> bool:
    """Whether ``cfg`` builds a self-supervised pre-training model."""
    import aemim_mm  # noqa: F401  (registers the wrapper)
    from aemim_mm.models.adversarial_ssl import AdversarialSSLWrapper
    from mmpretrain.models.selfsup import BaseSelfSupervisor
    from mmpretrain.registry import MODELS
    model = cfg.get('model')
    if not isinstance(model, dict) or 'type' not in model:
        return False
    if model['type'] == 'AdversarialMIMWrapper':
        return True
    cls = MODELS.get(model['type'])
    return isinstance(cls, type) and issubclass(
        cls, (BaseSelfSupervisor, AdversarialSSLWrapper))


def pretraining_configs() -> List[Path]:
    """The shipped pre-training configs (parsed once, at collection)."""
    found = []
    for folder in CONFIG_DIRS:
        for path in sorted(folder.glob('*.py')):
            if _is_pretraining(Config.fromfile(str(path))):
                found.append(path)
    return found


CONFIGS = pretraining_configs()
#: mmpretrain 1.2.0's own masked-image-modeling configs (plain, unwrapped),
#: collected only with AEMIM_UPSTREAM_CONFIGS=1: the check of
#: docs/algorithms.md ("Upstream config defects")
UPSTREAM_ALGORITHMS = ('mae', 'simmim', 'beit', 'beitv2', 'cae', 'eva',
                       'itpn', 'maskfeat', 'mff', 'milan', 'mixmim', 'spark')


def upstream_configs() -> List[Path]:
    """mmpretrain's MIM pre-training configs (with AEMIM_UPSTREAM_CONFIGS)."""
    if not os.environ.get('AEMIM_UPSTREAM_CONFIGS'):
        return []
    import mmpretrain
    root = Path(mmpretrain.__file__).parent / '.mim' / 'configs'
    return [p for algo in UPSTREAM_ALGORITHMS
            for p in sorted((root / algo).glob('*.py'))
            if _is_pretraining(Config.fromfile(str(p)))]


def test_the_pretraining_configs_are_found():
    """The glob finds the configs this test is about (not silently none)."""
    names = {p.stem for p in CONFIGS}
    assert {'aemim_vit-b_800e', 'mae_vit-b_800e', 'simmim_swin-b_100e',
            'aemim_milan_vit-base-p16_16xb256-amp-coslr-400e_in1k',
            'aemim_spark_sparse-resnet50_8xb512-amp-coslr-800e_in1k'} <= names
    # every survey config pre-trains but RUSH's fine-tuning (*_ft.py)
    assert len(CONFIGS) == len(list((REPO_ROOT / 'configs' / 'algorithms')
                                    .glob('*.py'))) + len([
        p for p in (REPO_ROOT / 'configs' / 'survey').glob('*.py')
        if not p.stem.endswith('_ft')]) + len([
        p for p in (REPO_ROOT / 'configs').glob('*.py')
        if p.stem.startswith(('aemim_', 'fast_aemim_', 'mae_', 'simmim_'))])


@pytest.fixture(scope='module')
def photo_folder(tmp_path_factory) -> Path:
    """Two real photos as JPEG files in a folder."""
    from PIL import Image

    from aemim_mm.datasets.skimage_photos import load_skimage_photo
    root = tmp_path_factory.mktemp('photos')
    for name in PHOTOS:
        Image.fromarray(load_skimage_photo(name)).save(root / f'{name}.jpg')
    return root


@pytest.fixture(scope='module')
def teacher_cache(tmp_path_factory) -> Dict[str, str]:
    """Random same-shape teacher / tokenizer checkpoints, written once per
    generator config (key: its repr)."""
    return dict(dir=str(tmp_path_factory.mktemp('teachers')))


def _random_clip_checkpoint(path: str, generator: dict) -> str:
    """A random CLIP ViT-B/16 (the vision tower of the checkpoint the
    configs download; 512 output features) with a small text tower."""
    from mmpretrain.models.utils.clip_generator_helper import CLIP
    torch.manual_seed(0)
    clip = CLIP(embed_dim=512, image_resolution=224, vision_layers=12,
                vision_width=768, vision_patch_size=16, context_length=4,
                vocab_size=8, transformer_width=64, transformer_heads=1,
                transformer_layers=1)
    torch.save(clip.state_dict(), path)
    return path


def _random_tokenizer_checkpoint(path: str, generator: dict) -> str:
    """The config's tokenizer (DALL-E, VQKD) built as configured, random."""
    from mmpretrain.registry import MODELS
    torch.manual_seed(0)
    tokenizer = MODELS.build(dict(generator, init_cfg=None))
    torch.save({k: torch.randn_like(v.float()).to(v.dtype)
                for k, v in tokenizer.state_dict().items()}, path)
    return path


def _local_teacher(algorithm: dict, cache: Dict[str, str]) -> None:
    """Point the algorithm's downloaded teacher / tokenizer at a local random
    checkpoint of the same shape."""
    generator = algorithm.get('target_generator')
    if generator is None:
        return
    key = repr(sorted(generator.items()))
    if 'tokenizer_path' in generator:                       # CLIPGenerator
        assert generator['tokenizer_path'].startswith('https://')
        if key not in cache:
            cache[key] = _random_clip_checkpoint(
                f"{cache['dir']}/clip_{len(cache)}.pth", generator)
        generator['tokenizer_path'] = cache[key]
    elif (generator.get('init_cfg') or {}).get('type') == 'Pretrained':
        assert generator['init_cfg']['checkpoint'].startswith('https://')
        if key not in cache:
            cache[key] = _random_tokenizer_checkpoint(
                f"{cache['dir']}/tokenizer_{len(cache)}.pth", generator)
        generator['init_cfg'] = dict(generator['init_cfg'],
                                     checkpoint=cache[key])


def _local_pseudo_label_encoder(cfg: Config, cache: Dict[str, str],
                                work_dir: Path) -> None:
    """AdvCL's PseudoLabelHook: a random encoder of the configured shape in
    place of the downloaded one, the cache in the work dir."""
    from mmpretrain.registry import MODELS
    for hook in cfg.get('custom_hooks', []):
        if hook.get('type') != 'PseudoLabelHook':
            continue
        key = repr(sorted(hook['backbone'].items()))
        if key not in cache:
            torch.manual_seed(0)
            encoder = MODELS.build(dict(hook['backbone']))
            cache[key] = f"{cache['dir']}/encoder_{len(cache)}.pth"
            torch.save(dict(state_dict={'backbone.' + k: v for k, v in
                                        encoder.state_dict().items()}),
                       cache[key])
        hook['checkpoint'] = cache[key]
        hook['cache'] = str(work_dir / 'pseudo_labels.pth')


def _one_iteration_on_photos(cfg: Config, photos: Path, work_dir: Path,
                             cache: Dict[str, str]) -> None:
    """Change ``cfg`` as the module docstring says, nothing else."""
    algorithm = cfg.model.get('algorithm', cfg.model)
    _local_teacher(algorithm, cache)
    _local_pseudo_label_encoder(cfg, cache, work_dir)
    loader = cfg.train_dataloader
    loader.update(batch_size=2, num_workers=0, persistent_workers=False,
                  pin_memory=False)
    loader.sampler = dict(type='DefaultSampler', shuffle=False)
    if loader.dataset.type == 'SkimagePhotos':    # the demo's photos
        loader.dataset.update(names=list(PHOTOS), repeat=1)
    else:
        loader.dataset = dict(type='CustomDataset', data_root=str(photos),
                              data_prefix='', with_label=False,
                              pipeline=loader.dataset.pipeline)
    if cfg.optim_wrapper.get('type') == 'AmpOptimWrapper':
        cfg.optim_wrapper.type = 'OptimWrapper'
    for key in ('loss_scale', 'dtype'):
        cfg.optim_wrapper.pop(key, None)
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1)
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.env_cfg = dict(cudnn_benchmark=False,
                       dist_cfg=dict(backend='gloo'))
    cfg.resume = False
    cfg.load_from = None
    cfg.work_dir = str(work_dir)


def _random_clusters(paths, spec, device=None) -> torch.Tensor:
    """k-means needs more images than clusters: random labels for two."""
    gen = torch.Generator().manual_seed(0)
    return torch.stack([torch.randint(0, k, (len(paths), ), generator=gen)
                        for k in spec.ks], dim=1)


@pytest.mark.parametrize('path', CONFIGS + upstream_configs(),
                         ids=lambda p: p.stem if p in CONFIGS
                         else f'upstream-{p.stem}')
def test_config_trains_one_real_size_iteration(path, photo_folder,
                                               teacher_cache, tmp_path,
                                               monkeypatch):
    from mmengine.runner import Runner

    from aemim_mm.datasets import pseudo_labels
    monkeypatch.setattr(pseudo_labels, 'compute_pseudo_labels',
                        _random_clusters)
    cfg = Config.fromfile(str(path))
    shipped = copy.deepcopy(cfg.model)
    _one_iteration_on_photos(cfg, photo_folder, tmp_path / 'work',
                             teacher_cache)
    runner = Runner.from_cfg(cfg)
    model = runner.model
    before = {n: p.detach().clone() for n, p in model.named_parameters()
              if p.requires_grad}
    runner.train()

    assert runner.iter == 1
    hub = runner.message_hub
    loss = hub.get_scalar('train/loss').current()
    assert math.isfinite(loss), loss
    if shipped.type == 'AdversarialMIMWrapper':
        for key in ('loss_clean', 'loss_adv', 'adv_dist'):
            assert math.isfinite(hub.get_scalar(f'train/{key}').current())
    if getattr(model, 'attack', None) is not None:   # a pixel attack
        assert hub.get_scalar('train/adv_nonfinite').current() == 0
        # the eps in use at this iteration (a warm-up hook may put it at 0,
        # as the demo's does): the realised L-inf is positive exactly when
        # the budget is, and never above it (0-255 units)
        eps = float(model.attack.eps)
        linf = hub.get_scalar('train/adv_linf').current()
        assert linf <= eps + 1e-3, (linf, eps)
        assert (linf > 0) == (eps > 0), (linf, eps)
    changed = [n for n, p in model.named_parameters()
               if p.requires_grad and not torch.equal(p, before[n])]
    assert changed, 'the iteration updated no parameter'
    # the encoder trained at its shipped size: its weights moved
    assert any(n.startswith(('backbone.', 'algorithm.backbone.'))
               for n in changed)
    del runner, model, before
    gc.collect()
