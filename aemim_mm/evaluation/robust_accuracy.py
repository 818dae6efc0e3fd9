"""Robust accuracy the way the adversarial pre-training literature reports
it: PGD-20 and AutoAttack's standard ensemble at the field's L-inf budgets,
in RobustBench's fields.

The attacks are ART's (``adversarial-robustness-toolbox``; FAB-T is the
AutoAttack authors' own), on pixels in
[0, 1] with the classifier's data preprocessor inside the attacked function
(:class:`~.adversarial.PixelSpaceClassifier`), so eps is a budget on real
pixels (0-255 units here, as everywhere in the package: 8 is 8/255):

* ``pgd20``: ``ProjectedGradientDescentPyTorch``, 20 steps of eps / 4
  (2/255 at 8/255), one uniform random start;
* ``autoattack``: AutoAttack's standard ensemble (Croce & Hein, 2020), run
  as its stages are: each stage attacks only the images every earlier stage
  left correctly classified, and an image counts as broken only if its
  adversarial example is misclassified and inside the ball (ART's
  ``run_attack``, which keeps the other images' last example):

  1. APGD-CE (``AutoProjectedGradientDescent``, cross-entropy, untargeted,
     ``iters`` iterations, initial step 2 eps, one start);
  2. APGD-T: the same with ART's difference-of-logits-ratio loss, targeted,
     towards each of the ``targets`` classes the clean logits rank highest
     after the true class, in that order (AutoAttack's choice of targets;
     the loss needs three classes: a 2-class problem skips this stage);
  3. FAB-T: the authors' targeted FAB (``FABAttack_PT`` of
     ``pyautoattack``, the PyPI package of Croce & Hein's ``auto-attack``:
     ART has no FAB), ``iters`` iterations towards each of the ``targets``
     classes ranked highest after the true class, one start;
  4. Square (``SquareAttack``, ``square_queries`` queries, p_init 0.8, one
     restart), untargeted, gradient-free: the check against gradient
     masking.

:func:`evaluate_robust_accuracy` runs both on a data set batch by batch,
checks every returned example against the ball and the pixel box, and can
resume: each finished batch is appended to a state file with the settings
that produced it, so an interrupted run recomputes nothing it finished.
"""
import hashlib
import json
import os
import os.path as osp
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from ..utils.checks import is_int, is_number
from .adversarial import PixelSpaceClassifier, frozen_parameters
from .inference import make_loader
from .progress import Progress

#: The literature's L-inf budgets (0-255 units) per data set.
THREAT_EPS = {'cifar10': 8.0, 'cifar100': 8.0, 'stl10': 8.0,
              'imagenet': 4.0}
#: The attack suites :func:`evaluate_robust_accuracy` runs.
ATTACKS = ('pgd20', 'autoattack')
#: AutoAttack's stages, in order.
AUTOATTACK_STAGES = ('apgd-ce', 'apgd-t', 'fab-t', 'square')
#: Slack of the ball check, relative to eps (ART's ``run_attack`` uses
#: the same) and absolute for the pixel box.
BALL_RTOL, BOX_ATOL = 1e-4, 1e-6


@dataclass(frozen=True)
class AutoAttackSettings:
    """AutoAttack's budgets (standard version: 100, 9, 5000).

    Attributes:
        iters: APGD and FAB iterations (APGD-CE, each APGD-T and FAB-T
            target).
        targets: APGD-T's and FAB-T's target classes per image (at most
            classes - 1 are used).
        square_queries: Square's queries.
        pgd_steps: PGD's steps (the ``pgd20`` suite: 20).
    """
    iters: int = 100
    targets: int = 9
    square_queries: int = 5000
    pgd_steps: int = 20

    def __post_init__(self) -> None:
        for name in ('iters', 'targets', 'square_queries', 'pgd_steps'):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                raise ValueError(f'AutoAttackSettings.{name} must be an '
                                 f'int >= 1, got {value!r}.')


def check_attack_options(eps: float, attacks: Sequence[str]) -> None:
    """Refuse a bad budget or attack name before any work.

    Raises:
        ValueError: If ``eps`` is not a number in (0, 255] or an attack is
            not one of :data:`ATTACKS` (the message names them).
    """
    if not is_number(eps) or not 0 < eps <= 255:
        raise ValueError(f'eps must be a number in (0, 255] (0-255 pixel '
                         f'units: 8 is 8/255), got {eps!r}.')
    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown or not attacks:
        raise ValueError(f'unknown attacks {unknown or list(attacks)}; '
                         f'choose from {list(ATTACKS)}.')


def art_classifier(model: nn.Module, num_classes: int, image_shape:
                   Tuple[int, int, int], device: str):
    """ART's ``PyTorchClassifier`` over a pixel-space model ([0, 1])."""
    from art.estimators.classification import PyTorchClassifier
    return PyTorchClassifier(
        model=model, loss=nn.CrossEntropyLoss(), input_shape=image_shape,
        nb_classes=num_classes, clip_values=(0.0, 1.0),
        device_type='gpu' if device.startswith('cuda') else 'cpu')


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(N,) class indices -> (N, num_classes) float32."""
    return np.eye(num_classes, dtype=np.float32)[labels]


def pgd20(estimator, x: np.ndarray, y: np.ndarray, eps: float,
          steps: int = 20, batch_size: int = 128) -> np.ndarray:
    """PGD of ``steps`` steps of ``eps / 4`` from a random start (``eps``
    in [0, 1] units); the adversarial examples."""
    from art.attacks.evasion import ProjectedGradientDescentPyTorch
    attack = ProjectedGradientDescentPyTorch(
        estimator, norm=np.inf, eps=eps, eps_step=eps / 4, max_iter=steps,
        num_random_init=1, batch_size=batch_size, verbose=False)
    return attack.generate(x, y=one_hot(y, estimator.nb_classes))


def autoattack(estimator, x: np.ndarray, y: np.ndarray, eps: float,
               settings: AutoAttackSettings = AutoAttackSettings(),
               batch_size: int = 128
               ) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
    """AutoAttack's standard stages (see the module) on one batch.

    Args:
        estimator: ART classifier (pixels in [0, 1], logits out).
        x: (N, C, H, W) float32 images in [0, 1].
        y: (N,) labels.
        eps: L-inf budget in [0, 1] units.
        settings: Iterations, targets and queries.
        batch_size: ART's batch size.

    Returns:
        The adversarial examples (an image no stage broke keeps its last
        example) and, per stage (``'clean'`` first), which images are still
        correctly classified after it.
    """
    from art.attacks.evasion import (AutoProjectedGradientDescent,
                                     SquareAttack)
    from art.attacks.evasion.auto_attack import run_attack

    classes = estimator.nb_classes
    logits = estimator.predict(x, batch_size=batch_size)
    robust = logits.argmax(1) == y
    after = {'clean': robust.copy()}
    x_adv = x.copy()
    labels = one_hot(y, classes)

    def apgd(loss_type: str, targeted: bool):
        return AutoProjectedGradientDescent(
            estimator, norm=np.inf, eps=eps, eps_step=2 * eps,
            max_iter=settings.iters, targeted=targeted, nb_random_init=1,
            batch_size=batch_size, loss_type=loss_type, verbose=False)

    if robust.any():        # ART's attacks fail on an empty batch
        x_adv, robust = run_attack(x_adv, labels, robust,
                                   apgd('cross_entropy', False), estimator,
                                   np.inf, eps)
    after['apgd-ce'] = robust.copy()
    # targets: the classes ranked 2nd, 3rd, ... by the clean logits (the
    # true class excluded), as AutoAttack picks them
    ranked = np.argsort(-logits, axis=1)
    ranked = np.stack([r[r != t] for r, t in zip(ranked, y)])
    targeted = apgd('difference_logits_ratio', True)
    # the DLR loss needs a third-ranked logit: no APGD-T for 2 classes
    for k in range(min(settings.targets, classes - 1) if classes > 2 else 0):
        if not robust.any():
            break
        x_adv, robust = run_attack(x_adv, one_hot(ranked[:, k], classes),
                                   robust, targeted, estimator, np.inf, eps)
    after['apgd-t'] = robust.copy()
    x_adv, robust = fab_t(estimator.model, x, y, x_adv, robust, eps,
                          settings, classes)
    after['fab-t'] = robust.copy()
    if robust.any():
        square = SquareAttack(estimator, norm=np.inf, eps=eps,
                              max_iter=settings.square_queries, p_init=0.8,
                              nb_restarts=1, batch_size=batch_size,
                              verbose=False)
        x_adv, robust = run_attack(x_adv, labels, robust, square, estimator,
                                   np.inf, eps)
    after['square'] = robust.copy()
    return x_adv, after


def fab_t(model: nn.Module, x: np.ndarray, y: np.ndarray,
          x_adv: np.ndarray, robust: np.ndarray, eps: float,
          settings: AutoAttackSettings, classes: int
          ) -> Tuple[np.ndarray, np.ndarray]:
    """AutoAttack's FAB-T stage on the images still ``robust``.

    The authors' ``FABAttack_PT`` (targeted, one start, ``settings.iters``
    iterations, targets ranked 2nd to ``settings.targets + 1``th by the
    logits); like every stage, an image counts as broken only if its
    example is misclassified and inside the ball, and only then is its
    example replaced. FAB seeds torch's generator itself: it runs on a
    forked generator so that the caller's stream is left as it was.

    Args:
        model: The pixel-space classifier ([0, 1] in, logits out).
        x: (N, C, H, W) clean images in [0, 1].
        y: (N,) labels.
        x_adv: The examples so far (returned updated).
        robust: (N,) bool, the images every earlier stage left correct.
        eps: L-inf budget in [0, 1] units.
        settings: Iterations and targets.
        classes: Number of classes.

    Returns:
        The updated examples and robustness flags.
    """
    from pyautoattack.fab_pt import FABAttack_PT

    if not robust.any():
        return x_adv, robust
    device = next(model.parameters(), torch.empty(0)).device
    attack = FABAttack_PT(model, norm='Linf', n_restarts=1,
                          n_iter=settings.iters, eps=eps, seed=0,
                          targeted=True, device=device,
                          n_target_classes=min(settings.targets,
                                               classes - 1))
    idx = np.flatnonzero(robust)
    xs = torch.from_numpy(x[idx]).to(device)
    ys = torch.from_numpy(y[idx]).long().to(device)
    with torch.random.fork_rng(devices=[device] if device.type == 'cuda'
                               else []):
        adv = attack.perturb(xs, ys)
    with torch.no_grad():
        wrong = model(adv).argmax(1) != ys
    inside = (adv - xs).abs().flatten(1).amax(1) <= eps * (1 + BALL_RTOL)
    broken = (wrong & inside).cpu().numpy()
    x_adv, robust = x_adv.copy(), robust.copy()
    x_adv[idx[broken]] = adv.cpu().numpy()[broken]
    robust[idx[broken]] = False
    return x_adv, robust


def check_examples(x: np.ndarray, x_adv: np.ndarray, eps: float) -> float:
    """The largest L-inf distance of ``x_adv`` from ``x`` ([0, 1] units).

    Raises:
        RuntimeError: If an example leaves the ball or the pixel box or is
            not finite (an attack library defect: the result would be
            meaningless).
    """
    if not x.size:
        return 0.0
    linf = float(np.abs(x_adv - x).max())
    if not np.isfinite(x_adv).all() or linf > eps * (1 + BALL_RTOL) or \
            x_adv.min() < -BOX_ATOL or x_adv.max() > 1 + BOX_ATOL:
        raise RuntimeError(
            f'an adversarial example left the budget: L-inf {linf:.6f} > '
            f'eps {eps:.6f}, or pixels outside [0, 1] '
            f'({x_adv.min():.6f}, {x_adv.max():.6f}).')
    return linf


def settings_key(eps: float, attacks: Sequence[str],
                 settings: AutoAttackSettings, indices: Sequence[int],
                 seed: int, checkpoint: Optional[str]) -> str:
    """What a state file's batches were computed with (hash)."""
    text = json.dumps(dict(eps=eps, attacks=list(attacks),
                           stages=list(AUTOATTACK_STAGES),
                           settings=asdict(settings), indices=list(indices),
                           seed=seed, checkpoint=checkpoint), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class StateFile:
    """Finished batches of one evaluation, one JSON line each, so that a
    stopped run resumes where it stopped.

    Args:
        path: The file (``None``: nothing kept).
        key: :func:`settings_key` of the run; a file written with another
            key is refused.

    Raises:
        ValueError: If ``path`` holds batches of other settings.
    """

    def __init__(self, path: Optional[str], key: str) -> None:
        self.path, self.key = path, key
        self.done: Dict[int, dict] = {}
        if path is None or not osp.isfile(path):
            return
        with open(path) as f:
            for line in f:
                if not line.strip():
                    continue
                record = json.loads(line)
                if record['key'] != key:
                    raise ValueError(
                        f'{path} holds results of other settings (key '
                        f'{record["key"]}, this run {key}): remove it or '
                        'give another --out-dir.')
                self.done[record['batch']] = record

    def add(self, record: dict) -> None:
        """Keep one finished batch (appended and flushed at once)."""
        record = dict(record, key=self.key)
        self.done[record['batch']] = record
        if self.path is None:
            return
        os.makedirs(osp.dirname(osp.abspath(self.path)), exist_ok=True)
        with open(self.path, 'a') as f:
            f.write(json.dumps(record) + '\n')
            f.flush()
            os.fsync(f.fileno())


def evaluate_robust_accuracy(classifier: nn.Module, dataset,
                             eps: float = 8.0,
                             attacks: Sequence[str] = ATTACKS,
                             settings: AutoAttackSettings = (
                                 AutoAttackSettings()),
                             batch_size: int = 128, num_workers: int = 2,
                             device: Optional[str] = None, seed: int = 0,
                             state_file: Optional[str] = None,
                             checkpoint: Optional[str] = None,
                             dataset_name: str = 'cifar10',
                             log_interval_s: float = 10.0) -> dict:
    """Clean accuracy, PGD-20's and AutoAttack's robust accuracy (%).

    Args:
        classifier: An mmpretrain classifier (eval mode is enforced).
        dataset: A built data set with the test pipeline (uint8 images,
            ``gt_label``); attacked in order, ``batch_size`` at a time.
        eps: L-inf budget in 0-255 units (:data:`THREAT_EPS`).
        attacks: Suites of :data:`ATTACKS` to run.
        settings: AutoAttack's iterations, targets and queries.
        batch_size: Images per batch.
        num_workers: Data loading processes.
        device: ``'cpu'`` / ``'cuda'``; default: where the model is.
        seed: Seed of the random starts (torch and numpy), reset per batch
            so that a resumed run draws what an uninterrupted one does.
        state_file: JSON-lines file of finished batches (resume); ``None``:
            none kept.
        checkpoint: The checkpoint's path, part of the resume key.
        dataset_name: Reported as RobustBench's ``dataset``.
        log_interval_s: Least seconds between two progress lines.

    Returns:
        RobustBench's fields (``dataset``, ``threat_model`` ``'Linf'``,
        ``eps`` as ``'8/255'``, ``clean_acc``, ``autoattack_acc``,
        ``n_examples``) with ``pgd20_acc``, ``eps_255``,
        ``autoattack_stages`` (robust accuracy after each stage),
        ``max_linf_255`` (the largest distance of any returned example),
        ``attack_library`` and ``settings``.

    Raises:
        ValueError: On a bad eps or attack name (before any work), or a
            state file of other settings.
    """
    import art
    import pyautoattack

    check_attack_options(eps, attacks)
    device = device or next(classifier.parameters()).device.type
    classifier.eval()
    model = PixelSpaceClassifier(classifier, 1.0).to(device).eval()
    unit_eps = eps / 255.0
    indices = list(range(len(dataset)))
    state = StateFile(state_file, settings_key(eps, attacks, settings,
                                               indices, seed, checkpoint))
    loader = make_loader(dataset, batch_size, num_workers)
    progress = Progress(len(dataset), 'robust accuracy (images)',
                        log_interval_s)
    estimator = None
    with frozen_parameters(model):
        for batch_index, batch in enumerate(loader):
            n = len(batch['inputs'])
            if batch_index in state.done:
                progress.step(n)
                continue
            x = (torch.stack([img.float() for img in batch['inputs']]) /
                 255.0).numpy().astype(np.float32)
            y = np.array([int(s.gt_label[0]) for s in batch['data_samples']])
            if estimator is None:
                with torch.no_grad():
                    classes = int(model(torch.from_numpy(x[:1]).to(
                        device)).shape[1])
                estimator = art_classifier(model, classes, tuple(x.shape[1:]),
                                           device)
            torch.manual_seed(seed + batch_index)
            np.random.seed(seed + batch_index)
            record = dict(batch=batch_index, n=n, max_linf=0.0)
            pred = estimator.predict(x, batch_size=batch_size).argmax(1)
            record['clean'] = int((pred == y).sum())
            if 'pgd20' in attacks:
                x_adv = pgd20(estimator, x, y, unit_eps, settings.pgd_steps,
                              batch_size)
                record['max_linf'] = check_examples(x, x_adv, unit_eps)
                pred = estimator.predict(x_adv, batch_size=batch_size)
                record['pgd20'] = int((pred.argmax(1) == y).sum())
            if 'autoattack' in attacks:
                x_adv, after = autoattack(estimator, x, y, unit_eps,
                                          settings, batch_size)
                record['max_linf'] = max(record['max_linf'],
                                         check_examples(x, x_adv, unit_eps))
                record['autoattack'] = {k: int(v.sum())
                                        for k, v in after.items()}
            state.add(record)
            progress.step(n)
    return robust_accuracy_result(list(state.done.values()), eps, attacks,
                                  settings, dataset_name,
                                  f'ART {art.__version__}, pyautoattack '
                                  f'{pyautoattack.__version__} (FAB-T)')


def robust_accuracy_result(records: List[dict], eps: float,
                           attacks: Sequence[str],
                           settings: AutoAttackSettings, dataset_name: str,
                           library: str) -> dict:
    """The per-batch ``records`` summed into RobustBench's fields (see
    :func:`evaluate_robust_accuracy`)."""
    total = sum(r['n'] for r in records)

    def pct(count: int) -> float:
        return 100.0 * count / max(total, 1)

    result = dict(
        dataset=dataset_name, threat_model='Linf',
        eps=f'{eps:g}/255', eps_255=float(eps), n_examples=total,
        clean_acc=pct(sum(r['clean'] for r in records)),
        max_linf_255=255.0 * max((r['max_linf'] for r in records),
                                 default=0.0),
        attack_library=library, settings=asdict(settings))
    if 'pgd20' in attacks:
        result['pgd20_acc'] = pct(sum(r['pgd20'] for r in records))
    if 'autoattack' in attacks:
        stages = {k: pct(sum(r['autoattack'][k] for r in records))
                  for k in ('clean', ) + AUTOATTACK_STAGES}
        result['autoattack_acc'] = stages['square']
        result['autoattack_stages'] = stages
    return result
