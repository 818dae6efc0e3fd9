"""Presets of the mini-reproduction (``configs/mini_repro/*.py``).

A preset is a python file read with mmengine's ``Config.fromfile``; its
top-level variables are checked here, before any work starts, and every bad
value raises a ``ValueError`` that names the key and what is allowed.
"""
import math
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence

#: The pre-training methods and their configs (relative to the repo root).
METHOD_CONFIGS = {
    'mae': 'configs/mae_vit-t-p4_cifar10.py',
    'fast_aemim': 'configs/fast_aemim_vit-t-p4_cifar10.py',
    'aemim': 'configs/aemim_vit-t-p4_cifar10.py',
}
#: Readable names in the table and the plots.
METHOD_LABELS = {'mae': 'MAE', 'fast_aemim': 'Fast AEMIM', 'aemim': 'AEMIM'}
FINETUNE_CONFIG = 'configs/finetune/vit-t-p4_cifar10_ft.py'
LINPROBE_CONFIG = 'configs/linear_probe/vit-t-p4_cifar10_lp.py'
PRESET_DIR = 'configs/mini_repro'

_TOP_KEYS = ('preset_name', 'smoke', 'methods', 'seeds', 'data', 'model',
             'pretrain', 'equal_time', 'finetune', 'linprobe', 'evaluate')
_TRAIN_KEYS = ('epochs', 'warmup_epochs', 'batch_size', 'num_workers',
               'log_interval')
_SUBKEYS = {
    'data': ('root', 'train_per_class', 'test_per_class'),
    'model': ('encoder_layers', 'decoder_depth'),
    'pretrain': _TRAIN_KEYS + ('checkpoint_interval', 'amp'),
    'equal_time': ('targets', ),
    'finetune': _TRAIN_KEYS,
    'linprobe': _TRAIN_KEYS,
    'evaluate': ('batch_size', 'num_workers', 'robustness_on', 'corruption',
                 'adversarial'),
}
_CORRUPTION_KEYS = ('per_class', 'corruptions', 'severities')
_ADV_KEYS = ('num_samples', 'fgsm_eps', 'pgd_eps', 'pgd_steps', 'batch_size')


def _int(value: Any, key: str, low: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        extra = ' or None' if allow_none else ''
        raise ValueError(f'preset: {key} must be an int >= {low}{extra}, '
                         f'got {value!r}')


def _keys(section: Dict, allowed: Sequence[str], key: str) -> None:
    if not isinstance(section, dict):
        raise ValueError(f'preset: {key} must be a dict with keys '
                         f'{list(allowed)}, got {section!r}')
    unknown = sorted(set(section) - set(allowed))
    missing = sorted(set(allowed) - set(section))
    if unknown or missing:
        raise ValueError(f'preset: {key} has unknown keys {unknown} / misses '
                         f'{missing}; allowed keys: {list(allowed)}')


def _numbers(values: Any, key: str, positive: bool) -> None:
    if (not isinstance(values, (list, tuple)) or not values or any(
            isinstance(v, bool) or not isinstance(v, (int, float))
            or not math.isfinite(v) or v < 0 or (positive and v == 0)
            for v in values)):
        what = '> 0' if positive else '>= 0'
        raise ValueError(f'preset: {key} must be a non-empty list of finite '
                         f'numbers {what}, got {values!r}')


def validate_preset(preset: Dict[str, Any]) -> Dict[str, Any]:
    """Check a preset dict (the top-level variables of a preset file).

    Args:
        preset: ``{'preset_name': ..., 'methods': [...], ...}``.

    Returns:
        The same dict (plain python types).

    Raises:
        ValueError: Naming the first bad key and what is allowed.
    """
    _keys(preset, _TOP_KEYS, 'the preset')
    if not isinstance(preset['preset_name'], str) or not \
            preset['preset_name']:
        raise ValueError('preset: preset_name must be a non-empty str, got '
                         f'{preset["preset_name"]!r}')
    if not isinstance(preset['smoke'], bool):
        raise ValueError(f'preset: smoke must be True or False, got '
                         f'{preset["smoke"]!r}')
    methods = preset['methods']
    if (not isinstance(methods, (list, tuple)) or not methods
            or any(m not in METHOD_CONFIGS for m in methods)
            or len(set(methods)) != len(methods)):
        raise ValueError(f'preset: methods must be a non-empty list of '
                         f'distinct names from {list(METHOD_CONFIGS)}, got '
                         f'{methods!r}')
    seeds = preset['seeds']
    if (not isinstance(seeds, (list, tuple)) or not seeds
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 0
                   for s in seeds) or len(set(seeds)) != len(seeds)):
        raise ValueError(f'preset: seeds must be a non-empty list of '
                         f'distinct ints >= 0, got {seeds!r}')
    for name, allowed in _SUBKEYS.items():
        _keys(preset[name], allowed, name)

    data = preset['data']
    if data['root'] is not None and not isinstance(data['root'], str):
        raise ValueError(f'preset: data.root must be a path or None, got '
                         f'{data["root"]!r}')
    _int(data['train_per_class'], 'data.train_per_class', 1, True)
    _int(data['test_per_class'], 'data.test_per_class', 1, True)
    _int(preset['model']['encoder_layers'], 'model.encoder_layers', 1, True)
    _int(preset['model']['decoder_depth'], 'model.decoder_depth', 1, True)

    for stage in ('pretrain', 'finetune', 'linprobe'):
        cfg = preset[stage]
        _int(cfg['epochs'], f'{stage}.epochs', 1)
        _int(cfg['warmup_epochs'], f'{stage}.warmup_epochs', 0)
        if cfg['warmup_epochs'] >= cfg['epochs']:
            raise ValueError(f'preset: {stage}.warmup_epochs must be < '
                             f'{stage}.epochs ({cfg["epochs"]}), got '
                             f'{cfg["warmup_epochs"]!r}')
        _int(cfg['batch_size'], f'{stage}.batch_size', 1)
        _int(cfg['num_workers'], f'{stage}.num_workers', 0)
        _int(cfg['log_interval'], f'{stage}.log_interval', 1)
    _int(preset['pretrain']['checkpoint_interval'],
         'pretrain.checkpoint_interval', 1)
    if not isinstance(preset['pretrain']['amp'], bool):
        raise ValueError(f'preset: pretrain.amp must be True or False, got '
                         f'{preset["pretrain"]["amp"]!r}')

    targets = preset['equal_time']['targets']
    allowed = [m for m in methods if m != 'mae']
    if (not isinstance(targets, (list, tuple))
            or any(t not in allowed for t in targets)
            or len(set(targets)) != len(targets)
            or (targets and 'mae' not in methods)):
        raise ValueError(f'preset: equal_time.targets must be a list of '
                         f'distinct methods from {allowed} (and needs '
                         f"'mae' in methods), got {targets!r}")

    ev = preset['evaluate']
    _int(ev['batch_size'], 'evaluate.batch_size', 1)
    _int(ev['num_workers'], 'evaluate.num_workers', 0)
    on = ev['robustness_on']
    if (not isinstance(on, (list, tuple))
            or any(o not in ('finetune', 'linprobe') for o in on)):
        raise ValueError(f"preset: evaluate.robustness_on must be a list "
                         f"from ['finetune', 'linprobe'], got {on!r}")
    _keys(ev['corruption'], _CORRUPTION_KEYS, 'evaluate.corruption')
    corr = ev['corruption']
    _int(corr['per_class'], 'evaluate.corruption.per_class', 1, True)
    if corr['corruptions'] is not None:
        from aemim_mm.evaluation.corruption import corruption_names
        names = corruption_names('all')
        if (not isinstance(corr['corruptions'], (list, tuple))
                or not corr['corruptions']
                or any(c not in names for c in corr['corruptions'])):
            raise ValueError(f'preset: evaluate.corruption.corruptions must '
                             f'be None (all) or a non-empty list from '
                             f'{names}, got {corr["corruptions"]!r}')
    sev = corr['severities']
    if (not isinstance(sev, (list, tuple)) or not sev
            or any(s not in (1, 2, 3, 4, 5) for s in sev)):
        raise ValueError(f'preset: evaluate.corruption.severities must be a '
                         f'non-empty list from 1..5, got {sev!r}')
    _keys(ev['adversarial'], _ADV_KEYS, 'evaluate.adversarial')
    adv = ev['adversarial']
    _int(adv['num_samples'], 'evaluate.adversarial.num_samples', 1, True)
    _numbers(adv['fgsm_eps'], 'evaluate.adversarial.fgsm_eps', True)
    _numbers(adv['pgd_eps'], 'evaluate.adversarial.pgd_eps', True)
    _int(adv['pgd_steps'], 'evaluate.adversarial.pgd_steps', 1)
    _int(adv['batch_size'], 'evaluate.adversarial.batch_size', 1)
    return preset


def preset_path(name_or_path: str, repo_root: str) -> str:
    """``configs/mini_repro/<name>.py`` for a name, else the path itself.

    Raises:
        FileNotFoundError: Listing the presets that exist.
    """
    if name_or_path.endswith('.py') or osp.sep in name_or_path:
        path = name_or_path
    else:
        path = osp.join(repo_root, PRESET_DIR, f'{name_or_path}.py')
    if not osp.isfile(path):
        folder = osp.join(repo_root, PRESET_DIR)
        names = sorted(f[:-3] for f in __import__('os').listdir(folder)
                       if f.endswith('.py')) if osp.isdir(folder) else []
        raise FileNotFoundError(f'--preset: {name_or_path!r} is neither a '
                                f'preset name {names} nor a preset file')
    return path


def load_preset(name_or_path: str, repo_root: str,
                seeds: Optional[List[int]] = None) -> Dict[str, Any]:
    """Read and check a preset file (``--seeds`` may replace its seeds)."""
    from mmengine.config import Config
    cfg = Config.fromfile(preset_path(name_or_path, repo_root))
    preset = {k: v for k, v in cfg.to_dict().items()}
    if seeds is not None:
        preset['seeds'] = list(seeds)
    return validate_preset(preset)
