"""The stages of the mini-reproduction, each a function of the preset.

Every stage builds on the project's parts: the CIFAR-10 pre-training configs
through mmengine's ``Runner`` (with ``LossCurveHook`` and
:class:`~aemim_repro.hooks.EpochTimeHook` added as ``custom_hooks``),
:func:`aemim_mm.apis.export.export_encoder`, the CIFAR-10 fine-tuning and
linear-probe configs, and :mod:`aemim_mm.evaluation` (clean top-1,
CIFAR-10-C-like corruptions, FGSM / PGD with ART). The preset only changes
data size, depth, schedule length, batch size and workers.
"""
import itertools
import json
import os
import os.path as osp
import shutil
from typing import Any, Dict, List, Optional, Sequence

from aemim_mm.datasets import cifar10_archive
from aemim_mm.utils.config_fixes import enable_amp, strip_collate_scope

from .preset import FINETUNE_CONFIG, LINPROBE_CONFIG, METHOD_CONFIGS

_STAGE_IDS = itertools.count()  # see _common

REPO_ROOT = cifar10_archive.REPO_ROOT   # configs/ lives there too
CLASSIFIER_CONFIGS = {'finetune': FINETUNE_CONFIG,
                      'linprobe': LINPROBE_CONFIG}
#: ViT-T/4 width (DeiT-tiny): used with a reduced depth.
VIT_T = dict(embed_dims=192, num_heads=3, feedforward_channels=768)


# ---------------------------------------------------------------- data
def default_data_root() -> str:
    """``$CIFAR10_ROOT`` or ``<repo>/data/cifar10``, where
    :func:`~aemim_mm.datasets.cifar10_archive.prepare_cifar10` extracts."""
    return os.environ.get('CIFAR10_ROOT') or cifar10_archive.DEFAULT_OUT


def check_data_source(root: str, is_default: bool) -> None:
    """Fail early when the CIFAR-10 folders (or, by default, the archive)
    are missing.

    Raises:
        FileNotFoundError: Naming the path and how to provide it.
    """
    if all(osp.isdir(osp.join(root, s)) for s in ('train', 'test')):
        return
    if is_default and osp.isfile(cifar10_archive.DEFAULT_SRC):
        return  # extracted by the data stage
    raise FileNotFoundError(
        f'CIFAR-10 not found: {root} needs train/<class>/ and test/<class>/ '
        f'folders. Run `python tools/prepare_cifar10.py` (archive '
        f'{cifar10_archive.DEFAULT_SRC}), or pass --data-root / set '
        f'CIFAR10_ROOT.')


def _copy_split(src: str, dst: str, per_class: Optional[int]) -> int:
    """Copy the first ``per_class`` images of each class (symlink all)."""
    from aemim_mm.evaluation.corruption import list_class_images
    if osp.islink(dst) or osp.isfile(dst):
        os.remove(dst)  # left by a killed run
    elif osp.isdir(dst):
        shutil.rmtree(dst)
    if per_class is None:
        os.makedirs(osp.dirname(dst), exist_ok=True)
        os.symlink(osp.abspath(src), dst)
        return len(list_class_images(dst))
    items = list_class_images(src, per_class)
    for cls, path in items:
        os.makedirs(osp.join(dst, cls), exist_ok=True)
        shutil.copyfile(path, osp.join(dst, cls, osp.basename(path)))
    return len(items)


def make_data(folder: str, source: str, is_default: bool,
              train_per_class: Optional[int],
              test_per_class: Optional[int]) -> Dict[str, Any]:
    """``folder/{train,test}/<class>/``: the preset's subset of CIFAR-10."""
    if not all(osp.isdir(osp.join(source, s)) for s in ('train', 'test')):
        if not is_default:
            raise FileNotFoundError(f'CIFAR-10 not found in {source}')
        cifar10_archive.prepare_cifar10(out=source)
    counts = {
        'train': _copy_split(osp.join(source, 'train'),
                             osp.join(folder, 'train'), train_per_class),
        'test': _copy_split(osp.join(source, 'test'),
                            osp.join(folder, 'test'), test_per_class)
    }
    return dict(root=folder, source=osp.abspath(source), images=counts)


def make_corruptions(folder: str, test_dir: str,
                     corruption: Dict[str, Any]) -> Dict[str, Any]:
    """The CIFAR-10-C-like set of the test subset (imagecorruptions)."""
    from aemim_mm.evaluation.corruption import make_corrupted_set
    meta = make_corrupted_set(
        test_dir, folder, corruptions=corruption['corruptions'],
        severities=corruption['severities'],
        max_per_class=corruption['per_class'], seed=0)
    return dict(root=folder, images=meta['images'],
                corruptions=meta['corruptions'],
                severities=meta['severities'], generator=meta['generator'])


# ---------------------------------------------------------------- configs
def set_schedule(cfg, epochs: int, warmup: int) -> None:
    """Shorten the configs' LinearLR warm-up + cosine schedule to ``epochs``.

    Raises:
        ValueError: If the config's schedulers are not that pair.
    """
    types = [s['type'] for s in cfg.param_scheduler]
    if types != ['LinearLR', 'CosineAnnealingLR']:
        raise ValueError(f'expected param_scheduler [LinearLR, '
                         f'CosineAnnealingLR], got {types}')
    warm, cos = cfg.param_scheduler
    cos.update(begin=warmup, T_max=epochs - warmup, end=epochs)
    if warmup > 0:
        warm.update(begin=0, end=warmup)
        cfg.param_scheduler = [warm, cos]
    else:
        cfg.param_scheduler = [cos]
    cfg.train_cfg.max_epochs = epochs


def _set_loader(loader, data_root: str, batch_size: int,
                num_workers: int) -> None:
    loader.dataset.data_root = data_root
    loader.batch_size = batch_size
    loader.num_workers = num_workers
    loader.persistent_workers = num_workers > 0
    loader.pin_memory = False


def _encoder_arch(layers: int) -> dict:
    return dict(VIT_T, num_layers=layers)


def _common(cfg, work_dir: str, seed: int, log_interval: int,
            tag: str) -> None:
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=seed, diff_rank_seed=True)
    cfg.default_hooks.logger.interval = log_interval
    cfg.auto_scale_lr = dict(base_batch_size=cfg.auto_scale_lr.base_batch_size,
                             enable=True)  # lr = base lr x batch / base batch
    cfg.resume, cfg.load_from = True, None  # continue a killed stage
    # mmengine keys the logger, message hub and visualizer by this name (plus
    # a 1-second timestamp it appends): unique per stage of this process, so
    # two stages started in the same second never share a log file
    cfg.experiment_name = f'{tag}_seed{seed}_{next(_STAGE_IDS)}'
    strip_collate_scope(cfg)


def pretrain_config(method: str, work_dir: str, seed: int, data_root: str,
                    preset: Dict[str, Any], epochs: int, warmup: int):
    """The method's CIFAR-10 config with the preset's overrides."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO_ROOT, METHOD_CONFIGS[method]))
    mim = (cfg.model.algorithm
           if cfg.model.type == 'AdversarialMIMWrapper' else cfg.model)
    if preset['model']['encoder_layers'] is not None:
        mim.backbone.arch = _encoder_arch(preset['model']['encoder_layers'])
    if preset['model']['decoder_depth'] is not None:
        mim.neck.decoder_depth = preset['model']['decoder_depth']
    p = preset['pretrain']
    _set_loader(cfg.train_dataloader, data_root, p['batch_size'],
                p['num_workers'])
    set_schedule(cfg, epochs, warmup)
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=p['checkpoint_interval'],
        max_keep_ckpts=2)
    keys = ('loss', ) if method == 'mae' else ('rec_clean', 'rec_adv')
    cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [
        dict(type='LossCurveHook', keys=('rec_clean', 'rec_adv', 'loss'),
             plot_keys=keys, interval=0, smooth=max(1, p['log_interval'])),
        dict(type='EpochTimeHook'),
    ]
    _common(cfg, work_dir, seed, p['log_interval'], f'pretrain_{method}')
    if p['amp']:
        enable_amp(cfg)
    return cfg


def classifier_config(kind: str, encoder: str, work_dir: str, seed: int,
                      data_root: str, preset: Dict[str, Any]):
    """The CIFAR-10 fine-tuning / linear-probe config for ``encoder``."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO_ROOT, CLASSIFIER_CONFIGS[kind]))
    cfg.model.backbone.init_cfg.checkpoint = encoder
    layers = preset['model']['encoder_layers']
    if layers is not None:
        cfg.model.backbone.arch = _encoder_arch(layers)
        if kind == 'linprobe':
            cfg.model.backbone.frozen_stages = layers
    p = preset[kind]
    _set_loader(cfg.train_dataloader, data_root, p['batch_size'],
                p['num_workers'])
    _set_loader(cfg.test_dataloader, data_root, preset['evaluate'][
        'batch_size'], preset['evaluate']['num_workers'])
    # no validation on the test split during training (no model selection on
    # it): the last epoch's weights are evaluated
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    set_schedule(cfg, p['epochs'], p['warmup_epochs'])
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=p['epochs'], max_keep_ckpts=1)
    _common(cfg, work_dir, seed, p['log_interval'], kind)
    return cfg


def train(cfg) -> None:
    """Train a config with mmengine's Runner (in this process)."""
    from mmengine.runner import Runner
    import aemim_mm  # noqa: F401  (registration, checkpoint allow-list)
    from . import hooks  # noqa: F401  (EpochTimeHook)
    Runner.from_cfg(cfg).train()


def read_epoch_times(work_dir: str) -> Dict[str, List[float]]:
    """The :class:`EpochTimeHook` file of a run."""
    with open(osp.join(work_dir, 'epoch_times.json')) as f:
        return json.load(f)


def equal_time_epochs(target_seconds: float,
                      mae_epoch_seconds: Sequence[float]) -> int:
    """MAE epochs whose wall time is closest to ``target_seconds``.

    Args:
        target_seconds: Total pre-training epoch time of the method MAE is
            compared with.
        mae_epoch_seconds: MAE's measured seconds per epoch (same data, same
            machine, same batch).

    Returns:
        ``max(1, round(target / mean MAE epoch))``.

    Raises:
        ValueError: On non-positive times or no MAE epochs.
    """
    if not mae_epoch_seconds or any(s <= 0 for s in mae_epoch_seconds):
        raise ValueError(f'mae_epoch_seconds must be positive times, got '
                         f'{list(mae_epoch_seconds)!r}')
    if target_seconds <= 0:
        raise ValueError(f'target_seconds must be > 0, got {target_seconds}')
    per_epoch = sum(mae_epoch_seconds) / len(mae_epoch_seconds)
    return max(1, int(round(target_seconds / per_epoch)))


# ---------------------------------------------------------------- evaluate
def evaluate_classifier(cfg, checkpoint: str, test_dir: str,
                        corruption_root: Optional[str],
                        preset: Dict[str, Any], seed: int,
                        adversarial: Optional[bool] = None) -> Dict[str, Any]:
    """Clean top-1; with ``corruption_root`` also the corruptions; with
    ``adversarial`` (default: when ``corruption_root`` is given) FGSM / PGD
    (:func:`attack_accuracies`)."""
    import torch

    from aemim_mm.evaluation.inference import (build_dataset, evaluate,
                                               load_classifier, test_pipeline)
    from aemim_mm.evaluation.ood import (evaluate_corruption_grid,
                                         find_corruptions)
    ev = preset['evaluate']
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if cfg.get('data_preprocessor') is not None:
        # as mmengine's Runner does (load_classifier builds cfg.model only)
        cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
    model, cfg = load_classifier(cfg, checkpoint, device)
    pipeline = test_pipeline(cfg)
    dataset = build_dataset(dict(type='CustomDataset', data_root=test_dir),
                            pipeline)
    result = dict(num_test=len(dataset), clean_top1=float(evaluate(
        model, dataset, [dict(type='Accuracy', topk=(1, ))], 'clean test',
        ev['batch_size'], ev['num_workers'])['accuracy/top1']))
    if adversarial is None:
        adversarial = corruption_root is not None
    if adversarial:
        result.update(attack_accuracies(model, dataset, ev['adversarial'],
                                        ev['num_workers'], device, seed))
    if corruption_root is None:
        return result
    # evaluate_cifar10_c reads all five severities; the preset may use fewer
    top1 = evaluate_corruption_grid(
        model, pipeline, corruption_root,
        ev['corruption']['corruptions'] or find_corruptions(corruption_root),
        severities=ev['corruption']['severities'],
        dataset_type='CustomDataset', batch_size=ev['batch_size'],
        num_workers=ev['num_workers'])
    values = [a for by_s in top1.values() for a in by_s.values()]
    result['corruption_mean'] = float(sum(values) / len(values))
    result['corruption'] = {c: {str(s): float(a) for s, a in by_s.items()}
                            for c, by_s in top1.items()}
    return result


def attack_accuracies(model, dataset, adv: Dict[str, Any], num_workers: int,
                      device: str, seed: int) -> Dict[str, Any]:
    """FGSM / PGD top-1 (%) on a fixed subset of ``dataset``.

    Args:
        model: The classifier.
        dataset: The test set, built with the test pipeline.
        adv: ``num_samples``, ``fgsm_eps``, ``pgd_eps``, ``pgd_steps``,
            ``batch_size`` (a preset's ``evaluate.adversarial``).
        num_workers: Data loading processes.
        device: Where the attacks run.
        seed: Seed of PGD's random start (the subset is fixed).

    Returns:
        ``adv_clean``, ``adv_num_samples``, ``fgsm`` and ``pgd``
        (``{eps: top-1}``, eps as ``'%g'`` strings).
    """
    from torch.utils.data import Subset

    from aemim_mm.evaluation.adversarial import (evaluate_attacks,
                                                 subset_indices)
    subset = Subset(dataset, subset_indices(len(dataset),
                                            adv['num_samples'], seed=0))
    attacks = evaluate_attacks(
        model, subset, fgsm_eps=adv['fgsm_eps'], pgd_eps=adv['pgd_eps'],
        pgd_steps=adv['pgd_steps'], batch_size=adv['batch_size'],
        num_workers=num_workers, device=device, seed=seed)
    return dict(
        adv_clean=float(attacks['clean']),
        adv_num_samples=int(attacks['num_samples']),
        fgsm={_eps_key(e): float(a) for e, a in attacks['fgsm'].items()},
        pgd={_eps_key(e): float(a) for e, a in attacks['pgd'].items()})


def _eps_key(eps: float) -> str:
    return f'{float(eps):g}'
