"""Every pre-training method of the package on CIFAR-10, evaluated the way
the adversarial pre-training literature does, in one table
(``tools/compare_methods.py``).

For each method of :data:`METHODS` (whose config exists) the stages are:

1. **pre-train** from its shipped CIFAR-10 config (mmengine's ``Runner``);
2. **export** the clean encoder (:func:`~aemim_mm.apis.export_encoder`);
3. per protocol of :data:`PROTOCOLS` (``configs/eval/``), **fine-tune**
   (SLF, ALF, AFF) from the export;
4. **evaluate** each classifier: clean accuracy, PGD-20 and AutoAttack
   (:func:`~.robust_accuracy.evaluate_robust_accuracy`).

Every stage writes its result where the next looks for it, so a rerun
after an interruption skips finished stages (and an interrupted
evaluation resumes by batch). A preset sizes the run: ``smoke`` (one
iteration per training stage, channel widths / 8, a few images, a tiny
AutoAttack: the plumbing, not the numbers; for CI) and ``full`` (the
configs' schedules as shipped, AutoAttack's standard budgets on 1000 test
images: for GPUs). The table (Markdown and JSON) has one row per method
and protocol; one PNG per protocol draws it.
"""
import copy
import json
import os
import os.path as osp
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch
from mmengine.config import Config

from .robust_accuracy import AutoAttackSettings

#: The package's configs.
CONFIG_ROOT = Path(__file__).resolve().parents[2] / 'configs'
#: The fine-tuning protocols (``configs/eval/<protocol>_<encoder>_cifar10``).
PROTOCOLS = ('slf', 'alf', 'aff-trades', 'aff-pgd-at')
#: What a classifier is evaluated on.
RESULT_KEYS = ('clean_acc', 'pgd20_acc', 'autoattack_acc')


@dataclass(frozen=True)
class Method:
    """One pre-training method of the comparison.

    Attributes:
        name: The table's name.
        config: Its CIFAR-10 pre-training config, relative to ``configs/``.
        family: ``'baseline'`` (no adversary), ``'aemim'`` or ``'survey'``.
        encoder: The protocol configs' encoder: ``'resnet18'`` (mmpretrain's
            ``ResNet_CIFAR``) or ``'vit-t-p4'``.
    """
    name: str
    config: str
    family: str
    encoder: str


#: Every method, in table order; :func:`available_methods` keeps those whose
#: config exists.
METHODS = (
    Method('mae', 'mae_vit-t-p4_cifar10.py', 'baseline', 'vit-t-p4'),
    Method('aemim', 'aemim_vit-t-p4_cifar10.py', 'aemim', 'vit-t-p4'),
    Method('fast_aemim', 'fast_aemim_vit-t-p4_cifar10.py', 'aemim',
           'vit-t-p4'),
    Method('mae_plus', 'survey/mae-plus_vit-t-p4_cifar10.py', 'baseline',
           'vit-t-p4'),
    Method('adpe_coord', 'survey/adpe_mae-plus_vit-t-p4_cifar10_coord.py',
           'survey', 'vit-t-p4'),
    Method('adpe_embed', 'survey/adpe_mae-plus_vit-t-p4_cifar10_embed.py',
           'survey', 'vit-t-p4'),
    Method('aemim_adpe', 'survey/adpe_aemim_mae-plus_vit-t-p4_cifar10.py',
           'aemim', 'vit-t-p4'),
    Method('simclr', 'survey/rush_simclr_resnet18_cifar10.py', 'baseline',
           'resnet18'),
    Method('moco_v2', 'survey/mocov2_resnet18_cifar10.py', 'baseline',
           'resnet18'),
    *(Method(name, f'survey/{config}_resnet18_cifar10.py', 'survey',
             'resnet18')
      for name, config in (
          ('rocl', 'rocl_simclr'), ('clae', 'clae_simclr'),
          ('acl', 'acl_simclr'), ('advcl', 'advcl_simclr'),
          ('arocl', 'arocl_simclr'), ('aadvcl', 'aadvcl_simclr'),
          ('byorl', 'byorl_byol'), ('byorl_simsiam', 'byorl_simsiam'),
          ('adco', 'adco_moco'), ('caco', 'caco_mocov3'),
          ('ifm', 'ifm_moco'), ('mochi', 'mochi_moco'),
          ('hcl', 'hcl_simclr'), ('adios_simclr', 'adios_simclr'),
          ('adios_byol', 'adios_byol'), ('adios_simsiam', 'adios_simsiam'))),
)


@dataclass(frozen=True)
class Preset:
    """How large a comparison run is.

    Attributes:
        iters: Training iterations of every pre-training and fine-tuning
            stage; ``None``: the configs' schedules as shipped.
        batch: Batch size of every stage; ``None``: the configs'.
        width_divisor: Channel widths of the ResNet encoders (and their
            projectors) divided by it (1: as shipped).
        attack_steps: The fine-tuning attacks' steps; ``None``: the
            configs'.
        num_samples: Test images each classifier is evaluated on.
        autoattack: PGD-20's steps and AutoAttack's budgets.
        pseudo_label_ks: AdvCL's cluster counts; ``None``: the config's
            (its PseudoLabelHook then downloads its encoder).
        description: What the preset is for.
    """
    iters: Optional[int]
    batch: Optional[int]
    width_divisor: int
    attack_steps: Optional[int]
    num_samples: int
    autoattack: AutoAttackSettings
    pseudo_label_ks: Optional[Sequence[int]]
    description: str


PRESETS = {
    'smoke': Preset(
        iters=1, batch=4, width_divisor=8, attack_steps=1, num_samples=4,
        autoattack=AutoAttackSettings(iters=2, targets=1, square_queries=5,
                                      pgd_steps=2),
        pseudo_label_ks=(2, ),
        description='one iteration per training stage, widths / 8, 4 test '
        'images, a tiny AutoAttack: checks the plumbing, not the numbers'),
    'full': Preset(
        iters=None, batch=None, width_divisor=1, attack_steps=None,
        num_samples=1000, autoattack=AutoAttackSettings(),
        pseudo_label_ks=None,
        description='the configs as shipped, AutoAttack\'s standard '
        'budgets on a seeded 1000 of the 10 000 test images (GPUs)'),
}


def available_methods(names: Optional[Sequence[str]] = None
                      ) -> List[Method]:
    """The methods whose config exists, in table order (``names``: only
    those).

    Raises:
        ValueError: For a name that is not a method (the message lists
            them).
    """
    present = [m for m in METHODS if (CONFIG_ROOT / m.config).is_file()]
    if names is None:
        return present
    known = [m.name for m in present]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f'unknown methods {unknown}; choose from {known}')
    return [m for m in present if m.name in names]


def check_protocols(protocols: Sequence[str]) -> None:
    """Raises ValueError naming an unknown protocol and the choices."""
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown or not protocols:
        raise ValueError(f'unknown protocols {unknown or list(protocols)}; '
                         f'choose from {list(PROTOCOLS)}')


# ------------------------------------------------------------- the configs
def _shrink_resnet(model: dict, divisor: int) -> None:
    """Divide a ResNet algorithm's widths (backbone, neck, predictor, MoCo's
    queue) by ``divisor``, in place."""
    from ..benchmark.survey import shrink_widths
    algorithm = model.get('algorithm', model)
    if 'ResNet' not in algorithm.get('backbone', {}).get('type', ''):
        return
    shrink_widths(algorithm, divisor)
    if algorithm is not model and model.get('feat_dim'):     # a wrapper's
        model['feat_dim'] = model['feat_dim'] // divisor


def _shrink_classifier(model: dict, divisor: int) -> None:
    """Divide a ResNet classifier's widths by ``divisor``, in place."""
    if divisor == 1 or 'ResNet' not in model['backbone']['type']:
        return
    for key in ('stem_channels', 'base_channels'):
        model['backbone'][key] = model['backbone'].get(key, 64) // divisor
    model['head']['in_channels'] //= divisor


def _short_run(cfg: Config, preset: Preset, data_root: str, work_dir: str,
               name: str) -> None:
    """``cfg`` trained as the preset says, on ``data_root``'s folders,
    into ``work_dir`` (in place)."""
    cfg.work_dir = work_dir
    cfg.experiment_name = f'{name}_{time.time_ns()}'
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if loader is None:
            continue
        loader.dataset.data_root = data_root
        if preset.batch is not None:
            loader.update(batch_size=preset.batch, num_workers=0,
                          persistent_workers=False, pin_memory=False)
    if preset.iters is not None:
        cfg.train_cfg = dict(type='IterBasedTrainLoop',
                             max_iters=preset.iters,
                             val_interval=preset.iters + 1)
        cfg.param_scheduler = []
        cfg.default_hooks.checkpoint = dict(
            type='CheckpointHook', interval=preset.iters, by_epoch=False)
        cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
        cfg.log_processor = dict(by_epoch=False)
    cfg.resume = False
    cfg.load_from = None


def _local_pseudo_label_encoder(cfg: Config, preset: Preset,
                                work_dir: str) -> None:
    """AdvCL under a preset with its own cluster counts: a random encoder of
    the data's size in place of the downloaded one (a smoke run checks the
    plumbing), the counts on the hook and the model alike."""
    from mmpretrain.registry import MODELS
    for hook in cfg.get('custom_hooks', []):
        if hook.get('type') != 'PseudoLabelHook':
            continue
        backbone = dict(type='ResNet_CIFAR', depth=18,
                        base_channels=64 // preset.width_divisor,
                        stem_channels=64 // preset.width_divisor)
        os.makedirs(work_dir, exist_ok=True)
        path = osp.join(work_dir, 'pseudo_label_encoder.pth')
        torch.manual_seed(0)
        state = MODELS.build(dict(backbone)).state_dict()
        torch.save(dict(state_dict={'backbone.' + k: v
                                    for k, v in state.items()}), path)
        hook.update(checkpoint=path, backbone=backbone, image_size=32,
                    ks=tuple(preset.pseudo_label_ks))
        cfg.model.ks = tuple(preset.pseudo_label_ks)


def pretrain_config(method: Method, preset: Preset, data_root: str,
                    work_dir: str) -> Config:
    """The method's pre-training config, sized by the preset."""
    cfg = Config.fromfile(str(CONFIG_ROOT / method.config))
    _short_run(cfg, preset, data_root, work_dir, f'{method.name}_pretrain')
    if preset.width_divisor != 1:
        _shrink_resnet(cfg.model, preset.width_divisor)
    if preset.pseudo_label_ks is not None:
        _local_pseudo_label_encoder(cfg, preset, work_dir)
    return cfg


def protocol_config(method: Method, protocol: str, preset: Preset,
                    data_root: str, encoder: str, work_dir: str) -> Config:
    """The protocol's config for the method's encoder, sized by the
    preset, initialised from the export ``encoder``."""
    path = CONFIG_ROOT / 'eval' / f'{protocol}_{method.encoder}_cifar10.py'
    cfg = Config.fromfile(str(path))
    _short_run(cfg, preset, data_root, work_dir,
               f'{method.name}_{protocol}')
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=encoder,
                                       prefix='backbone.')
    _shrink_classifier(cfg.model, preset.width_divisor)
    if preset.attack_steps is not None and 'attack' in cfg.model:
        cfg.model.attack.steps = preset.attack_steps
    return cfg


# --------------------------------------------------------------- the stages
def train(cfg: Config) -> str:
    """Train ``cfg`` with mmengine's Runner; the final checkpoint's path
    (``final.pth`` in the work dir, written after the last iteration)."""
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    runner.train()
    runner.save_checkpoint(cfg.work_dir, 'final.pth', save_optimizer=False,
                           save_param_scheduler=False)
    return osp.join(cfg.work_dir, 'final.pth')


@dataclass
class Stages:
    """Counts finished stages and logs progress with an ETA.

    Attributes:
        total: The run's stages.
        log: Where lines go.
    """
    total: int
    log: Callable[[str], None] = print
    done: int = 0
    start: float = field(default_factory=time.monotonic)

    def step(self, what: str, skipped: bool = False) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        self.log(f'[{self.done}/{self.total}] {what}'
                 f'{" (done before: skipped)" if skipped else ""}, elapsed '
                 f'{elapsed:.0f} s, ETA {eta:.0f} s')


def run_method(method: Method, preset: Preset, protocols: Sequence[str],
               data_root: str, out_dir: str, stages: Stages,
               seed: int = 0) -> Dict[str, dict]:
    """Every stage of one method (finished ones skipped); per protocol, the
    evaluation's result."""
    from ..apis import export_encoder
    from .inference import build_dataset, load_classifier, test_pipeline
    from .adversarial import subset_indices
    from .robust_accuracy import THREAT_EPS, evaluate_robust_accuracy
    from torch.utils.data import Subset

    root = osp.join(out_dir, method.name)
    ckpt = osp.join(root, 'pretrain', 'final.pth')
    skipped = osp.isfile(ckpt)
    if not skipped:
        ckpt = train(pretrain_config(method, preset, data_root,
                                     osp.join(root, 'pretrain')))
    stages.step(f'{method.name}: pre-train', skipped)
    export = osp.join(root, 'export', 'final_mmpretrain.pth')
    skipped = osp.isfile(export)
    if not skipped:
        export = str(export_encoder(ckpt, osp.join(root, 'export'),
                                    formats=['mmpretrain']).paths[
                                        'mmpretrain'])
    stages.step(f'{method.name}: export', skipped)
    results = {}
    for protocol in protocols:
        work = osp.join(root, protocol)
        cfg = protocol_config(method, protocol, preset, data_root, export,
                              work)
        classifier = osp.join(work, 'final.pth')
        skipped = osp.isfile(classifier)
        if not skipped:
            classifier = train(copy.deepcopy(cfg))
        stages.step(f'{method.name}: {protocol} fine-tuning', skipped)
        out = osp.join(work, 'robust_accuracy.json')
        skipped = osp.isfile(out)
        if skipped:
            with open(out) as f:
                results[protocol] = json.load(f)
        else:
            model, _ = load_classifier(cfg, classifier)
            dataset = build_dataset(dict(cfg.test_dataloader.dataset),
                                    test_pipeline(cfg))
            dataset = Subset(dataset, subset_indices(
                len(dataset), preset.num_samples, seed))
            result = evaluate_robust_accuracy(
                model, dataset, THREAT_EPS['cifar10'],
                settings=preset.autoattack, batch_size=64, num_workers=0,
                seed=seed, state_file=osp.join(work, 'robust_state.jsonl'),
                checkpoint=osp.abspath(classifier))
            with open(out, 'w') as f:
                json.dump(result, f, indent=2)
            results[protocol] = result
        stages.step(f'{method.name}: {protocol} evaluation', skipped)
    return results


def stage_count(methods: Sequence[Method], protocols: Sequence[str]) -> int:
    """Stages of a run: pre-train and export, then per protocol fine-tune
    and evaluate."""
    return len(methods) * (2 + 2 * len(protocols))


# ----------------------------------------------------------------- the table
def format_table(rows: List[dict]) -> str:
    """The comparison as Markdown: one row per method and protocol."""
    lines = ['| method | family | protocol | clean | PGD-20 | AutoAttack |',
             '|---|---|---|---|---|---|']
    for row in rows:
        lines.append(
            f'| {row["method"]} | {row["family"]} | {row["protocol"]} | '
            + ' | '.join(f'{row[k]:.2f}' for k in RESULT_KEYS) + ' |')
    return '\n'.join(lines)


def table_rows(methods: Sequence[Method],
               results: Dict[str, Dict[str, dict]]) -> List[dict]:
    """The rows of :func:`format_table`, in table order."""
    return [dict(method=m.name, family=m.family, protocol=p,
                 **{k: r[k] for k in RESULT_KEYS},
                 n_examples=r['n_examples'], eps=r['eps'])
            for m in methods for p, r in results[m.name].items()]


def write_report(out_dir: str, preset_name: str, command: str,
                 methods: Sequence[Method], protocols: Sequence[str],
                 results: Dict[str, Dict[str, dict]]) -> dict:
    """``comparison.json``, ``comparison.md`` and one
    ``comparison_<protocol>.png`` per protocol in ``out_dir``."""
    from ..visualization import plot_robust_accuracy
    rows = table_rows(methods, results)
    preset = PRESETS[preset_name]
    report = dict(command=command, preset=preset_name,
                  preset_settings=dict(asdict(preset)),
                  protocols=list(protocols),
                  methods=[asdict(m) for m in methods], rows=rows,
                  table=format_table(rows))
    with open(osp.join(out_dir, 'comparison.json'), 'w') as f:
        json.dump(report, f, indent=2)
    with open(osp.join(out_dir, 'comparison.md'), 'w') as f:
        f.write(f'# Comparison on CIFAR-10 (preset {preset_name})\n\n'
                f'`{command}`\n\n{preset.description}.\n\n'
                f'{report["table"]}\n')
    for protocol in protocols:
        plot_robust_accuracy(
            {m.name: results[m.name][protocol] for m in methods
             if protocol in results[m.name]},
            osp.join(out_dir, f'comparison_{protocol}.png'))
    return report
