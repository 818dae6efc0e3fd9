"""Run the mini-reproduction: every stage, resumable, with progress + ETA.

Layout of ``out_dir``::

    data/cifar10/{train,test}/<class>/      the preset's CIFAR-10 subset
    data/cifar10_c/                         CIFAR-10-C-like set (test subset)
    runs/seed<S>/<encoder>/pretrain/        mmengine work dir (checkpoints,
                                            logs, loss_curves.json,
                                            epoch_times.json)
    runs/seed<S>/<encoder>/export/          encoder_mmpretrain.pth
    runs/seed<S>/<encoder>/{finetune,linprobe}/
    runs/seed<S>/<encoder>/eval_{finetune,linprobe}/
    results.md, results.json, loss_curves.png, accuracy_vs_eps.png
    mini_repro.log                          the stage-level progress lines

``<encoder>`` is a method (``mae``, ``fast_aemim``, ``aemim``) or
``mae_eqtime_<target>``: MAE pre-trained for the epochs whose wall time
equals the target's pre-training. A stage whose folder holds ``done.json``
is skipped (a killed run continues where it stopped; a killed training
stage resumes from its last checkpoint); ``force=True`` redoes every stage.
"""
import json
import os
import os.path as osp
import shutil
import time
from typing import Any, Callable, Dict, List, Optional

from aemim_mm.evaluation.progress import format_seconds

from . import stages

#: Rough cost of an image-epoch of each pre-training method relative to MAE
#: (for the ETA only: 1 clean pass + T attack steps on a fraction alpha).
_COST = {'mae': 1.0, 'fast_aemim': 1.5, 'aemim': 3.0}


def encoders(preset: Dict[str, Any]) -> List[str]:
    """The pre-trained encoders of one seed, in the order they are made."""
    return list(preset['methods']) + [
        f'mae_eqtime_{t}' for t in preset['equal_time']['targets']
    ]


class StageRunner:
    """Runs or skips stages, and logs ``done/total, elapsed, ETA`` lines.

    Args:
        out_dir: The pipeline's output folder (``mini_repro.log`` goes here).
        total_weight: Estimated cost of all stages (arbitrary units).
        num_stages: Number of stages.
        force: Redo stages that are already done.
    """

    def __init__(self, out_dir: str, total_weight: float, num_stages: int,
                 force: bool = False) -> None:
        self.out_dir, self.force = out_dir, force
        self.total_weight, self.num_stages = total_weight, num_stages
        self.done_weight = self.run_weight = 0.0
        self.run_seconds = 0.0
        self.count = 0
        self.start = time.monotonic()

    def log(self, message: str) -> None:
        """Print a line and append it to ``mini_repro.log``."""
        line = f'[mini_repro {time.strftime("%H:%M:%S")}] {message}'
        print(line, flush=True)
        os.makedirs(self.out_dir, exist_ok=True)
        with open(osp.join(self.out_dir, 'mini_repro.log'), 'a') as f:
            f.write(line + '\n')

    def _eta(self) -> str:
        if self.run_weight <= 0:
            return 'unknown'
        rate = self.run_seconds / self.run_weight
        return format_seconds(rate * max(self.total_weight -
                                         self.done_weight, 0))

    def run(self, name: str, folder: str, fn: Callable[[str], dict],
            weight: float) -> Dict[str, Any]:
        """Run ``fn(folder)`` unless ``folder/done.json`` exists.

        Returns:
            What ``fn`` returned plus ``wall_s`` (read back when skipped).
        """
        self.count += 1
        head = f'stage {self.count}/{self.num_stages} {name}'
        done = osp.join(folder, 'done.json')
        if osp.isfile(done) and not self.force:
            self.done_weight += weight
            with open(done) as f:
                result = json.load(f)
            self.log(f'{head}: done before, skipped (--force redoes it)')
            return result
        if self.force and osp.isdir(folder) and not osp.islink(folder):
            shutil.rmtree(folder)
        os.makedirs(folder, exist_ok=True)
        self.log(f'{head}: start | elapsed '
                 f'{format_seconds(time.monotonic() - self.start)}, ETA '
                 f'{self._eta()}')
        t0 = time.monotonic()
        result = fn(folder)
        wall = time.monotonic() - t0
        result = dict(result, wall_s=wall)
        tmp = done + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(result, f, indent=1)
        os.replace(tmp, done)
        self.done_weight += weight
        self.run_weight += weight
        self.run_seconds += wall
        self.log(f'{head}: finished in {format_seconds(wall)} | elapsed '
                 f'{format_seconds(time.monotonic() - self.start)}, ETA '
                 f'{self._eta()}')
        return result


def _weights(preset: Dict[str, Any], n_train: int, n_test: int) -> dict:
    """Estimated relative cost of each kind of stage (for the ETA)."""
    p, ev = preset['pretrain'], preset['evaluate']
    adv = ev['adversarial']
    n_adv = min(adv['num_samples'] or n_test, n_test)
    n_corr = min(ev['corruption']['per_class'] or n_test, n_test // 10) * 10
    n_sets = len(ev['corruption']['corruptions'] or range(19)) * len(
        ev['corruption']['severities'])
    attack = n_adv * (len(adv['fgsm_eps']) * 2 +
                      len(adv['pgd_eps']) * adv['pgd_steps'] * 2)
    w = dict(
        data=0.01 * n_train, corruptions=0.5 * n_corr * n_sets,
        export=0.0, eval_plain=n_test, eval_robust=n_test + n_corr * n_sets
        + attack,
        finetune=2.0 * preset['finetune']['epochs'] * n_train,
        linprobe=0.7 * preset['linprobe']['epochs'] * n_train)
    for m, cost in _COST.items():
        w[f'pretrain_{m}'] = cost * p['epochs'] * n_train
        w[f'pretrain_mae_eqtime_{m}'] = w[f'pretrain_{m}']  # by design
    return w


def _count(per_class: Optional[int], full: int) -> int:
    return full if per_class is None else min(per_class * 10, full)


def run_pipeline(preset: Dict[str, Any], out_dir: str,
                 data_root: Optional[str] = None, force: bool = False,
                 command: str = '') -> Dict[str, Any]:
    """Run (or continue) the whole mini-reproduction, then write the report.

    Args:
        preset: A checked preset (:func:`~aemim_repro.preset.load_preset`).
        out_dir: Output folder (see the module doc).
        data_root: Prepared CIFAR-10 (``train/``, ``test/``); default: the
            preset's ``data.root``, ``$CIFAR10_ROOT`` or ``data/cifar10``
            (extracted from ``../shared/data`` when missing).
        force: Redo stages that are done.
        command: The command line, written into the report.

    Returns:
        The results dict (also in ``out_dir/results.json``).

    Raises:
        FileNotFoundError: If the data cannot be found (before any work).
    """
    from .report import write_report
    source = data_root or preset['data']['root']
    is_default = source is None
    source = source or stages.default_data_root()
    stages.check_data_source(source, is_default)

    ev = preset['evaluate']
    n_train = _count(preset['data']['train_per_class'], 50000)
    n_test = _count(preset['data']['test_per_class'], 10000)
    w = _weights(preset, n_train, n_test)
    encs = encoders(preset)
    per_encoder = 6  # pretrain, export, finetune, linprobe, 2 evaluations
    total_stages = 2 + len(preset['seeds']) * len(encs) * per_encoder
    total_w = w['data'] + w['corruptions']
    for _ in preset['seeds']:
        for enc in encs:
            total_w += w[f'pretrain_{enc}'] + w['finetune'] + w['linprobe']
            for kind in ('finetune', 'linprobe'):
                total_w += w['eval_robust' if kind in ev['robustness_on']
                             else 'eval_plain']
    runner = StageRunner(out_dir, total_w, total_stages, force)
    runner.log(f'preset {preset["preset_name"]}'
               f'{" (SMOKE)" if preset["smoke"] else ""}: seeds '
               f'{preset["seeds"]}, encoders {encs}, {total_stages} stages, '
               f'out {out_dir}')

    data_dir = osp.join(out_dir, 'data', 'cifar10')
    data = runner.run(
        'data (CIFAR-10 subset)', data_dir, lambda folder: stages.make_data(
            folder, source, is_default, preset['data']['train_per_class'],
            preset['data']['test_per_class']), w['data'])
    test_dir = osp.join(data_dir, 'test')
    corr_dir = osp.join(out_dir, 'data', 'cifar10_c')
    corr = runner.run(
        'corruptions (CIFAR-10-C-like)', corr_dir,
        lambda folder: stages.make_corruptions(folder, test_dir,
                                               ev['corruption']),
        w['corruptions'])

    results: Dict[str, Any] = {}
    for seed in preset['seeds']:
        seed_dir = osp.join(out_dir, 'runs', f'seed{seed}')
        pre: Dict[str, Dict[str, Any]] = {}
        for enc in encs:
            pre[enc] = _pretrain(runner, preset, enc, seed, seed_dir,
                                 data_dir, pre, w)
        for enc in encs:
            results.setdefault(enc, {})[seed] = _downstream(
                runner, preset, enc, seed, seed_dir, data_dir, test_dir,
                corr_dir, pre[enc], w)
    report = write_report(preset, out_dir, results, data, corr, command)
    runner.log(f'all stages done in '
               f'{format_seconds(time.monotonic() - runner.start)}: '
               f'{osp.join(out_dir, "results.md")}')
    return report


def _pretrain(runner: StageRunner, preset: Dict[str, Any], enc: str,
              seed: int, seed_dir: str, data_dir: str,
              done: Dict[str, Dict[str, Any]], w: dict) -> Dict[str, Any]:
    p = preset['pretrain']
    folder = osp.join(seed_dir, enc, 'pretrain')
    if enc.startswith('mae_eqtime_'):
        target = enc[len('mae_eqtime_'):]
        target_s = sum(done[target]['epoch_seconds'])
        mae_s = done['mae']['epoch_seconds']
        epochs = stages.equal_time_epochs(target_s, mae_s)
        warmup = int(round(p['warmup_epochs'] * epochs / p['epochs']))
        warmup = min(warmup, epochs - 1)
        method = 'mae'
        extra = dict(equal_time_target=target, target_seconds=target_s,
                     mae_seconds_per_epoch=sum(mae_s) / len(mae_s))
    else:
        epochs, warmup, method, extra = p['epochs'], p['warmup_epochs'], \
            enc, {}

    def fn(work_dir: str) -> dict:
        cfg = stages.pretrain_config(method, work_dir, seed, data_dir,
                                     preset, epochs, warmup)
        stages.train(cfg)
        times = stages.read_epoch_times(work_dir)
        ckpt = osp.join(work_dir, f'epoch_{epochs}.pth')
        if not osp.isfile(ckpt):
            raise RuntimeError(f'pre-training did not write {ckpt}')
        return dict(extra, method=method, epochs=epochs,
                    warmup_epochs=warmup, checkpoint=ckpt,
                    epoch_seconds=times['seconds'],
                    loss_curves=osp.join(work_dir, 'loss_curves.json'))

    return runner.run(f'pretrain {enc} seed {seed} ({epochs} epochs)',
                      folder, fn, w[f'pretrain_{enc}'])


def _downstream(runner: StageRunner, preset: Dict[str, Any], enc: str,
                seed: int, seed_dir: str, data_dir: str, test_dir: str,
                corr_dir: str, pre: Dict[str, Any],
                w: dict) -> Dict[str, Any]:
    from aemim_mm.apis.export import export_encoder

    def export(folder: str) -> dict:
        path = osp.join(folder, 'encoder_mmpretrain.pth')
        export_encoder(pre['checkpoint'], formats=['mmpretrain'],
                       paths={'mmpretrain': path})
        return dict(encoder=path)

    exp = runner.run(f'export {enc} seed {seed}',
                     osp.join(seed_dir, enc, 'export'), export, w['export'])
    out = dict(pretrain=pre, export=exp)
    for kind in ('finetune', 'linprobe'):
        def train(folder: str, kind=kind) -> dict:
            cfg = stages.classifier_config(kind, exp['encoder'], folder, seed,
                                           data_dir, preset)
            stages.train(cfg)
            ckpt = osp.join(folder, f'epoch_{preset[kind]["epochs"]}.pth')
            if not osp.isfile(ckpt):
                raise RuntimeError(f'{kind} did not write {ckpt}')
            return dict(checkpoint=ckpt)

        trained = runner.run(f'{kind} {enc} seed {seed}',
                             osp.join(seed_dir, enc, kind), train, w[kind])
        robust = kind in preset['evaluate']['robustness_on']

        def evaluate(folder: str, kind=kind, trained=trained,
                     robust=robust) -> dict:
            cfg = stages.classifier_config(kind, exp['encoder'], folder, seed,
                                           data_dir, preset)
            return stages.evaluate_classifier(
                cfg, trained['checkpoint'], test_dir,
                corr_dir if robust else None, preset, seed)

        evaluated = runner.run(
            f'evaluate {kind} {enc} seed {seed}'
            f'{" (clean, corruptions, FGSM/PGD)" if robust else " (clean)"}',
            osp.join(seed_dir, enc, f'eval_{kind}'), evaluate,
            w['eval_robust' if robust else 'eval_plain'])
        out[kind] = dict(train=trained, eval=evaluated)
    return out
