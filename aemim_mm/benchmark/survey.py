"""The survey's adversaries in the benchmark: each method against its plain
mmpretrain algorithm, both built from the method's shipped CIFAR-10 config,
next to the method's FLOP floor.

* :data:`SURVEY_PAIRS`: which method is timed against which baseline, and
  from which config (``configs/survey/``);
* :data:`SURVEY_PRESETS`: ``survey_cpu`` (the configs' models as shipped:
  ResNet_CIFAR-18 at 32 px, each method's projector and attack) and
  ``survey_smoke`` (the same models with every width divided by 8, for the
  tests);
* :func:`build_survey_runners`: the models, each with its config's data
  preprocessor and optimizer, as :class:`~.timing.Runner` s that the
  interleaved rounds of :func:`~.timing.time_variants` time side by side;
* :func:`count_flops` and :func:`survey_rows`: FLOPs per operator, the
  method's time ratio to its baseline, its FLOP ratio (the floor) and the
  per-repetition spread;
* :func:`profile_survey_ops`: where the time over the floor goes (profiled
  iterations split into the operators FLOPs are counted for and the rest).

The baseline of a method is the plain algorithm of the method's config
(``model.algorithm``: the same backbone, projector, predictor and head) with
the config's data preprocessor, so that the ratio measures the adversary and
nothing else. As mmengine's ``Runner`` does in one process, its
SyncBatchNorms compute as BatchNorms (the wrapper makes the same replacement
when it is built). The methods get a fixed ``sample_seed``, as
``SampleSeedHook`` (in every survey config) sets one each iteration.
"""
import copy
import logging
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.config import Config
from mmengine.logging import MessageHub, MMLogger
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmpretrain.registry import MODELS
import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, flop_registry

from ..models.adversarial_ssl.base import SSL_ATTACK
from ..models.adversarial_ssl.memory_bank import MemoryBank
from ..models.profiling import OPTIMIZER_PREFIXES
from ..models.sync_batch_norm import one_process_batch_norms
from ..utils.cli import init_weights_quietly
from .phases import profiled_rounds
from .timing import Runner

#: The shipped survey configs.
SURVEY_CONFIG_DIR = Path(__file__).resolve().parents[2] / 'configs' / 'survey'
#: A time ratio within this fraction over the FLOP ratio meets the floor.
FLOOR_TOLERANCE = 0.05
#: A timed iteration is quiet when the machine's other processes used less
#: CPU than this during it, in cores (see :class:`SurveyRunner`).
QUIET_CORES = 0.1
#: The views of a plain algorithm's sample (SimCLR, MoCo, BYOL, ...).
PLAIN_VIEWS = 2
#: The MIM algorithms of the pairs whose method lives in the algorithm's
#: encoder (AdPE), timed on one-tensor batches.
MIM_ALGORITHMS = frozenset({'MAE', 'SimMIM', 'AdversarialMaskSimMIM'})
#: What BYOL's cosine EMA reads from the message hub (mmengine's Runner
#: sets it; the momentum's schedule does not change the cost).
MAX_ITERS = 1000


@dataclass(frozen=True)
class SurveyPair:
    """One method and its plain algorithm, both from one config.

    Attributes:
        method: The method's variant name.
        baseline: The plain algorithm's variant name.
        config: The config's name in :data:`SURVEY_CONFIG_DIR` (no
            ``.py``).
        baseline_config: For a method that changes the algorithm's own
            modules (AdPE's encoder) rather than wrapping it: the plain
            algorithm's config, whose ``model`` is the baseline; ``None``:
            the baseline is ``config``'s ``model.algorithm``.
    """
    method: str
    baseline: str
    config: str
    baseline_config: Optional[str] = None


#: Each method against its plain algorithm, in table order: the
#: instance-wise (pixel) adversaries, then the memory-based and feature-level
#: ones (no attack: their floor is the bank's or the logits' extra work).
SURVEY_PAIRS: Tuple[SurveyPair, ...] = (
    SurveyPair('rocl', 'simclr_rocl', 'rocl_simclr_resnet18_cifar10'),
    SurveyPair('clae', 'simclr_clae', 'clae_simclr_resnet18_cifar10'),
    SurveyPair('acl', 'simclr_acl', 'acl_simclr_resnet18_cifar10'),
    SurveyPair('advcl', 'simclr_advcl', 'advcl_simclr_resnet18_cifar10'),
    SurveyPair('arocl', 'simclr_arocl', 'arocl_simclr_resnet18_cifar10'),
    SurveyPair('aadvcl', 'simclr_aadvcl',
               'aadvcl_simclr_resnet18_cifar10'),
    SurveyPair('byorl', 'byol', 'byorl_byol_resnet18_cifar10'),
    SurveyPair('byorl_simsiam', 'simsiam',
               'byorl_simsiam_resnet18_cifar10'),
    SurveyPair('adco', 'moco_adco', 'adco_moco_resnet18_cifar10'),
    SurveyPair('caco', 'mocov3_caco', 'caco_mocov3_resnet18_cifar10'),
    SurveyPair('ifm', 'moco_ifm', 'ifm_moco_resnet18_cifar10'),
    SurveyPair('mochi', 'moco_mochi', 'mochi_moco_resnet18_cifar10'),
    SurveyPair('hcl', 'simclr_hcl', 'hcl_simclr_resnet18_cifar10'),
    # the MIM adversaries: AdPE on MAE+ and SimMIM-ViT (the state in the
    # encoder: the baseline is the plain config), and MAE+ itself against
    # MAE (the price of keeping the masked patches in the encoder)
    SurveyPair('adpe_coord', 'mae_plus_adpe_coord',
               'adpe_mae-plus_vit-t-p4_cifar10_coord',
               'mae-plus_vit-t-p4_cifar10'),
    SurveyPair('adpe_embed', 'mae_plus_adpe_embed',
               'adpe_mae-plus_vit-t-p4_cifar10_embed',
               'mae-plus_vit-t-p4_cifar10'),
    SurveyPair('adpe_simmim_coord', 'simmim_vit_adpe_coord',
               'adpe_simmim_vit-t-p4_cifar10_coord',
               'simmim_vit-t-p4_cifar10'),
    SurveyPair('mae_plus', 'mae_mae_plus', 'mae-plus_vit-t-p4_cifar10',
               '../mae_vit-t-p4_cifar10'),
    # ADIOS: a masking network and N occluded views of x_t per iteration
    SurveyPair('adios_simclr', 'simclr_adios',
               'adios_simclr_resnet18_cifar10'),
    SurveyPair('adios_byol', 'byol_adios', 'adios_byol_resnet18_cifar10'),
    SurveyPair('adios_simsiam', 'simsiam_adios',
               'adios_simsiam_resnet18_cifar10'),
    # ADIOS-style learned masks on SimMIM-ViT: the masking network in the
    # algorithm, climbed like AdPE's state
    SurveyPair('adios_simmim', 'simmim_vit_adios',
               'adios_simmim_vit-t-p4_cifar10', 'simmim_vit-t-p4_cifar10'),
    # AEMIM around them: what AEMIM adds to the MIM adversary alone (the
    # config's model.algorithm)
    SurveyPair('aemim_adpe', 'adpe_aemim',
               'adpe_aemim_mae-plus_vit-t-p4_cifar10'),
    SurveyPair('aemim_adios_simmim', 'adios_simmim_aemim',
               'adios_aemim_simmim_vit-t-p4_cifar10'),
)

#: ``width_divisor``: every channel width of the backbone, projector and
#: predictor divided by it (1: the shipped model). A method's batch has as
#: many views as its config's ``MultiView`` pipeline gives
#: (:func:`config_views`), a baseline's :data:`PLAIN_VIEWS`.
SURVEY_PRESETS = {
    'survey_cpu': dict(batch=64, img_size=32, amp=False, device='cpu',
                       width_divisor=1),
    # for the tests: seconds, not minutes
    'survey_smoke': dict(batch=4, img_size=16, amp=False, device='cpu',
                         width_divisor=8),
}

#: Profiler names of the operators :class:`FlopCounterMode` counts FLOPs of
#: (convolutions, matrix products, attention).
FLOP_OPS = frozenset(
    'aten::' + str(op).split('.', 1)[1] if str(op).startswith('aten.')
    else str(op) for op in flop_registry)


def select_survey_pairs(
        methods: Optional[Sequence[str]] = None) -> List[SurveyPair]:
    """The pairs of ``methods`` (default: all), in table order.

    Args:
        methods: Method names of :data:`SURVEY_PAIRS`; ``None`` for all.

    Raises:
        ValueError: For a name that is not a method of
            :data:`SURVEY_PAIRS` (the message lists them).
    """
    known = [p.method for p in SURVEY_PAIRS]
    if methods is None:
        return list(SURVEY_PAIRS)
    unknown = sorted(set(methods) - set(known))
    if unknown:
        raise ValueError(f'unknown survey methods {unknown}; choose from '
                         f'{known} (each is timed with its baseline)')
    return [p for p in SURVEY_PAIRS if p.method in methods]


def survey_config(pair: SurveyPair, config_dir: Optional[Path] = None,
                  baseline: bool = False) -> Config:
    """The pair's config file, loaded as ``tools/train.py`` loads it (its
    ``custom_imports``, this package, are imported already).

    Args:
        pair: The method and its config name.
        config_dir: Where the configs are (default: the shipped ones).
        baseline: The baseline's config (``pair.baseline_config`` where it
            has one).
    """
    name = pair.baseline_config if baseline and pair.baseline_config \
        else pair.config
    return Config.fromfile(
        str(Path(config_dir or SURVEY_CONFIG_DIR) / f'{name}.py'),
        import_custom_modules=False)


def config_views(cfg: Config) -> int:
    """How many views a sample of ``cfg``'s training pipeline has: the
    ``num_views`` of its ``MultiView`` step (an int, or one per transform
    list: AdvCL's ``[2, 1]`` is three).

    Raises:
        ValueError: If the pipeline has no ``MultiView`` step.
    """
    for step in cfg.train_dataloader.dataset.pipeline:
        if step['type'] == 'MultiView':
            views = step['num_views']
            return views if isinstance(views, int) else sum(views)
    if cfg.model.get('type') in MIM_ALGORITHMS or cfg.model.get(
            'algorithm', {}).get('type') in MIM_ALGORITHMS:
        return 0        # one tensor (make_batch's MIM batch)
    raise ValueError('the survey benchmark times joint-embedding configs '
                     '(their pipeline has a MultiView step) and MIM ones '
                     f'({sorted(MIM_ALGORITHMS)}); this one is neither.')


def shrink_widths(algorithm: dict, divisor: int) -> dict:
    """``algorithm`` (a config dict, changed in place) with every channel
    width of its ResNet backbone, neck and head predictor (and MoCo's queue
    ``feat_dim``) divided by ``divisor`` (the image's 3 channels kept).

    Args:
        algorithm: An algorithm config with a ResNet ``backbone`` (default
            widths 64), a ``neck`` and optionally a ``head.predictor``.
        divisor: 1 keeps the shipped widths.

    Returns:
        ``algorithm``.
    """
    if divisor == 1:
        return algorithm
    backbone = algorithm['backbone']
    for key in ('stem_channels', 'base_channels'):
        backbone[key] = backbone.get(key, 64) // divisor
    for part in (algorithm.get('neck'),
                 algorithm.get('head', {}).get('predictor')):
        for key in ('in_channels', 'hid_channels', 'out_channels'):
            if part and key in part:
                part[key] = part[key] // divisor
    if 'feat_dim' in algorithm:     # MoCo's queue: the projector's width
        algorithm['feat_dim'] = algorithm['feat_dim'] // divisor
    return algorithm


def fit_vit(algorithm: dict, divisor: int, img_size: int) -> dict:
    """A MIM ``algorithm`` (a config dict with a ViT ``backbone``, changed
    in place) for ``img_size`` px images (its patch grid and decoder's
    ``num_patches``), with every width of encoder and decoder divided by
    ``divisor`` (depths and heads kept).

    Returns:
        ``algorithm``.
    """
    from mmpretrain.models import VisionTransformer
    backbone, neck = algorithm['backbone'], algorithm.get('neck', {})
    backbone['img_size'] = img_size
    if 'num_patches' in neck:
        neck['num_patches'] = (img_size // backbone['patch_size'])**2
    if divisor == 1:
        return algorithm
    arch = backbone.get('arch', 'b')
    if isinstance(arch, str):
        arch = VisionTransformer.arch_zoo[arch.lower()]
    backbone['arch'] = dict(
        embed_dims=arch['embed_dims'] // divisor,
        num_layers=arch['num_layers'], num_heads=arch['num_heads'],
        feedforward_channels=arch['feedforward_channels'] // divisor)
    for key in ('embed_dim', 'decoder_embed_dim', 'in_channels'):
        if key in neck:
            neck[key] = neck[key] // divisor
    return algorithm


def survey_model_config(pair: SurveyPair, plain: bool, preset: dict,
                        config_dir: Optional[Path] = None) -> dict:
    """The model config of the pair's method, or of its plain algorithm.

    Args:
        pair: The method and its config.
        plain: ``True``: the config's ``model.algorithm`` with the config's
            data preprocessor; ``False``: the config's ``model``.
        preset: A survey preset (``width_divisor``).
        config_dir: Where the configs are (default: the shipped ones).
    """
    cfg = survey_config(pair, config_dir, baseline=plain)
    model = copy.deepcopy(cfg.model.to_dict())
    # as mmengine's Runner builds a model: the config's top-level
    # data_preprocessor where the model names none (the MoCo-based configs)
    if cfg.get('data_preprocessor') is not None:
        model.setdefault('data_preprocessor',
                         copy.deepcopy(cfg.data_preprocessor.to_dict()))
    for owner in (model, model.get('algorithm', {})):   # ADIOS's U-Net
        if 'img_size' in owner.get('mask_net', {}):
            owner['mask_net']['img_size'] = preset['img_size']
    if model['type'] in MIM_ALGORITHMS:     # AdPE, learned masks: no wrapper
        return fit_vit(model, preset['width_divisor'], preset['img_size'])
    algorithm = model['algorithm']
    if algorithm['type'] in MIM_ALGORITHMS:     # AEMIM around them
        fit_vit(algorithm, preset['width_divisor'], preset['img_size'])
    else:
        shrink_widths(algorithm, preset['width_divisor'])
    if not plain:
        return model
    # the wrapper hands its data preprocessor to the algorithm, or the
    # algorithm's config has its own
    prep = model.get('data_preprocessor',
                     model['algorithm'].get('data_preprocessor'))
    return dict(model['algorithm'], data_preprocessor=prep)


def build_survey_variant(pair: SurveyPair, plain: bool, preset: dict,
                         config_dir: Optional[Path] = None) -> nn.Module:
    """The model of the pair's method or baseline (see the module
    docstring), initialised, in train mode, on the preset's device.

    Args:
        pair: The method and its config.
        plain: ``True`` for the baseline, ``False`` for the method.
        preset: A survey preset.
        config_dir: Where the configs are (default: the shipped ones).
    """
    MessageHub.get_current_instance().update_info('max_iters', MAX_ITERS)
    model = MODELS.build(survey_model_config(pair, plain, preset,
                                             config_dir))
    if plain:
        one_process_batch_norms(model)
    else:
        model.sample_seed = 0
    init_weights_quietly(model)
    steady_state(model, preset['batch'])
    return model.to(preset['device']).train()


def steady_state(model: nn.Module, batch: int) -> None:
    """Put a method where its training spends its iterations: a learnable
    bank (AdCo, CaCo) past its fill (so that every timed iteration steps
    the bank, as all but the first few of a run do); AdvCL's pseudo-labels
    (random ones, for sample indices ``0 .. batch - 1``, as
    :func:`~.timing.make_batch` numbers its samples) in place of
    ``PseudoLabelHook``'s k-means. Other models are left as they are.

    Args:
        model: A method or baseline, built.
        batch: The batch size.
    """
    if isinstance(model, MemoryBank):
        model.bank_filled.fill_(model.bank.shape[1])
        model._filled = None
    if hasattr(model, 'set_pseudo_labels') and model.ks:
        gen = torch.Generator().manual_seed(0)
        model.set_pseudo_labels(
            torch.stack([torch.randint(0, k, (batch, ), generator=gen)
                         for k in model.ks], dim=1), model.ks)


def others_cpu_seconds() -> Optional[float]:
    """CPU seconds the machine spent on anything but this process since it
    started: the busy time of ``/proc/stat`` (user, nice, system, irq,
    softirq and the hypervisor's steal) minus this process's own
    (``/proc/self/stat``: utime, stime, every thread); ``None`` where these
    files do not exist (not Linux). Clock-tick resolution (10 ms)."""
    try:
        with open('/proc/stat') as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
        with open('/proc/self/stat') as f:
            own = f.read().rsplit(')', 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    busy = sum(ticks[i] for i in (0, 1, 2, 5, 6, 7) if i < len(ticks))
    return (busy - int(own[11]) - int(own[12])) / os.sysconf('SC_CLK_TCK')


def wait_for_quiet(limit: float) -> float:
    """Wait until the machine's other processes use less than
    :data:`QUIET_CORES` over one second, or ``limit`` seconds have passed
    (0: return at once; also where :func:`others_cpu_seconds` is ``None``).

    Args:
        limit: The longest wait in seconds.

    Returns:
        The seconds waited.
    """
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        before = others_cpu_seconds()
        time.sleep(1.0)
        after = others_cpu_seconds()
        if before is None or after is None or after - before < QUIET_CORES:
            break
    return time.perf_counter() - start


class SurveyRunner(Runner):
    """A :class:`~.timing.Runner` that steps with the config's optimizer
    (LARS, Adam or SGD, with its parameter-wise settings) instead of the
    MIM benchmark's AdamW, and records how busy the rest of the machine
    was during each iteration.

    Args:
        name: The variant's name.
        model: Its model, on the preset's device.
        preset: A survey preset.
        optim_wrapper: The config's ``optim_wrapper``.
        wait_quiet: Before each iteration, wait up to this many seconds
            (outside the timed region) until the machine's other processes
            use less than :data:`QUIET_CORES` over one second (0: start at
            once; Linux only).

    Attributes:
        contention: Per :meth:`step`, in order: the CPU time other
            processes used during the iteration over its wall time, in
            cores (``None`` off Linux). On a shared machine it tells which
            iterations ran against other work.
        waited: Per :meth:`step`, the seconds waited before it.
    """

    def __init__(self, name: str, model: nn.Module, preset: dict,
                 optim_wrapper: dict, wait_quiet: float = 0.0) -> None:
        super().__init__(name, model, preset)
        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel(logging.ERROR)  # no line per frozen target param
        try:
            self.optim: OptimWrapper = build_optim_wrapper(
                model, copy.deepcopy(optim_wrapper))
        finally:
            logger.setLevel(level)
        self.contention: List[Optional[float]] = []
        self.waited: List[float] = []
        self.wait_quiet = wait_quiet

    def step(self) -> float:
        """One training iteration (timed as :meth:`Runner.step` times it,
        after the wait for a quiet machine); appends to :attr:`contention`
        and :attr:`waited`."""
        self.waited.append(wait_for_quiet(self.wait_quiet))
        before = others_cpu_seconds()
        wall = super().step()
        after = others_cpu_seconds()
        # the two counters' accounting differs by a few clock ticks: a
        # quiet machine may read slightly negative
        self.contention.append(None if before is None or after is None
                               else max(0.0, (after - before) / wall))
        return wall


def build_survey_runners(pairs: Sequence[SurveyPair], preset: dict,
                         config_dir: Optional[Path] = None,
                         wait_quiet: float = 0.0) -> List[SurveyRunner]:
    """A runner per baseline and method, each baseline before its method.

    Args:
        pairs: The pairs to build.
        preset: A survey preset.
        config_dir: Where the configs are (default: the shipped ones).
        wait_quiet: See :class:`SurveyRunner`.
    """
    runners = []
    for pair in pairs:
        for name, plain in ((pair.baseline, True), (pair.method, False)):
            cfg = survey_config(pair, config_dir, baseline=plain)
            # mmpretrain's joint-embedding algorithms take two views; a
            # method takes its pipeline's (AdvCL: three); MIM ones a tensor
            views = config_views(cfg)
            if plain and not pair.baseline_config and views:
                views = PLAIN_VIEWS
            runner = SurveyRunner(
                name, build_survey_variant(pair, plain, preset, config_dir),
                dict(preset, views=views),
                config_optim_wrapper(cfg, plain), wait_quiet)
            add_pipeline_masks(runner, cfg)
            climb_adversaries(runner)
            runners.append(runner)
    return runners


def config_optim_wrapper(cfg: Config, plain: bool) -> dict:
    """The config's ``optim_wrapper``; for the plain algorithm of a method
    with several optimizers (ADIOS's ``SubmoduleOptimWrapperConstructor``),
    the algorithm's own entry (``module='algorithm'``)."""
    optim = cfg.optim_wrapper.to_dict()
    if plain and optim.get('constructor') == \
            'SubmoduleOptimWrapperConstructor':
        entry = next(v for v in optim.values()
                     if isinstance(v, dict) and v.get('module') == 'algorithm')
        return {k: v for k, v in entry.items() if k != 'module'}
    return optim


def add_pipeline_masks(runner: Runner, cfg: Config) -> None:
    """Give each sample of the runner's batch the mask of the config's
    ``SimMIMMaskGenerator`` (SimMIM's mask comes with the data), drawn from
    a seeded generator at the preset's image size; other pipelines: none."""
    from mmpretrain.datasets.transforms import SimMIMMaskGenerator
    for step in cfg.train_dataloader.dataset.pipeline:
        if step['type'] != 'SimMIMMaskGenerator':
            continue
        args = {k: v for k, v in step.items() if k != 'type'}
        args['input_size'] = runner.preset['img_size']
        make = SimMIMMaskGenerator(**args)
        state = np.random.get_state()     # the transform draws from numpy
        np.random.seed(0)
        try:
            for sample in runner.batch['data_samples']:
                sample.set_mask(torch.as_tensor(make({})['mask']).to(
                    runner.preset['device']))
        finally:
            np.random.set_state(state)


def climb_adversaries(runner: 'SurveyRunner') -> None:
    """The ascent of an adversary inside a MIM algorithm as its hook
    arranges it in training: AdPE's state (``AdversarialPositionsHook``:
    the negative-learning-rate group checked, the projection after every
    step), a learned mask's network (``AdversarialMaskHook``: the group
    checked); other models are left as they are."""
    from types import SimpleNamespace

    from ..engine.hooks.adversarial_mask_hook import AdversarialMaskHook
    from ..engine.hooks.adversarial_positions_hook import (
        AdversarialPositionsHook, adversarial_positions)
    from ..models.adversarial_mask_simmim import AdversarialMaskSimMIM
    runner_like = SimpleNamespace(model=runner.model,
                                  optim_wrapper=runner.optim)
    if adversarial_positions(runner.model):
        AdversarialPositionsHook().before_train(runner_like)
    if any(isinstance(m, AdversarialMaskSimMIM)
           for m in runner.model.modules()):
        AdversarialMaskHook().before_train(runner_like)


def count_flops(runner: Runner) -> Dict[str, int]:
    """FLOPs of one training iteration of ``runner`` per operator
    (profiler names, e.g. ``aten::convolution_backward``), as
    :meth:`~.timing.Runner.flops` counts them in total.

    Args:
        runner: The runner; one more of its iterations runs.
    """
    counter = FlopCounterMode(display=False)
    with counter:
        runner.step()
    counts = counter.get_flop_counts().get('Global', {})
    return {'aten::' + str(op).split('.', 1)[1]
            if str(op).startswith('aten.') else str(op): int(n)
            for op, n in sorted(counts.items(), key=lambda kv: str(kv[0]))}


def survey_rows(pairs: Sequence[SurveyPair], preset: dict,
                times: Dict[str, List[float]],
                flops: Dict[str, Dict[str, int]],
                contention: Optional[Dict[str, list]] = None
                ) -> Dict[str, dict]:
    """The result's rows, each baseline before its method.

    Args:
        pairs: The timed pairs.
        preset: The preset (``batch``).
        times: Per variant, one iteration time per interleaved repetition.
        flops: Per variant, FLOPs of one iteration per operator.
        contention: Per variant, the other processes' cores during each
            timed iteration (:attr:`SurveyRunner.contention`), if recorded.

    Returns:
        Per variant: ``config``, ``role`` (``'baseline'`` or ``'method'``),
        ``median_s``, ``images_per_s``, ``gflops``, ``flops_by_op``,
        ``times_s`` and ``contention_cores`` (``None`` if not recorded);
        a method's row also ``baseline``, ``ratio`` (its median time over
        its baseline's), ``rep_ratios`` (each repetition's time over the
        baseline's in the same repetition), ``quiet_reps`` (the
        repetitions, from 0, in which both its and its baseline's iteration
        were quiet, :data:`QUIET_CORES`; ``None`` without contention),
        ``quiet_ratio`` (the ratio of the medians over those; ``None`` if
        there are none), ``flop_ratio`` (the floor),
        ``measured_over_predicted`` (the quiet ratio, else the ratio, over
        the floor) and ``within_floor`` (at most :data:`FLOOR_TOLERANCE`
        over it).
    """
    rows: Dict[str, dict] = {}
    for pair in pairs:
        for name, role in ((pair.baseline, 'baseline'),
                           (pair.method, 'method')):
            med = statistics.median(times[name])
            rows[name] = dict(
                config=pair.config, role=role, median_s=med,
                images_per_s=preset['batch'] / med,
                gflops=sum(flops[name].values()) / 1e9,
                flops_by_op=flops[name], times_s=times[name],
                contention_cores=(contention or {}).get(name))
        row, base = rows[pair.method], rows[pair.baseline]
        ratio = row['median_s'] / base['median_s']
        flop_ratio = row['gflops'] / base['gflops']
        quiet, quiet_ratio = None, None
        if row['contention_cores'] and base['contention_cores']:
            quiet = [k for k, (a, b) in enumerate(zip(
                row['contention_cores'], base['contention_cores']))
                     if max(a, b) < QUIET_CORES]
        if quiet:
            quiet_ratio = (
                statistics.median(row['times_s'][k] for k in quiet) /
                statistics.median(base['times_s'][k] for k in quiet))
        measured = (quiet_ratio or ratio) / flop_ratio
        row.update(
            baseline=pair.baseline, ratio=ratio,
            rep_ratios=[t / b for t, b in zip(row['times_s'],
                                              base['times_s'])],
            quiet_reps=quiet, quiet_ratio=quiet_ratio,
            flop_ratio=flop_ratio, measured_over_predicted=measured,
            within_floor=measured <= 1 + FLOOR_TOLERANCE)
    return rows


def _op_seconds(prof) -> Tuple[Dict[str, float], Dict[str, float]]:
    """Seconds of one profile, per operator: FLOP operators with what they
    call (outermost only), every other operator or range by its own
    (self) time outside any FLOP operator."""
    flop_ops: Dict[str, float] = {}
    other: Dict[str, float] = {}
    for event in prof.events():
        parent, inside = event.cpu_parent, False
        while parent is not None and not inside:
            inside = parent.name in FLOP_OPS
            parent = parent.cpu_parent
        if inside:
            continue
        if event.name in FLOP_OPS:
            flop_ops[event.name] = (flop_ops.get(event.name, 0.0) +
                                    event.cpu_time_total / 1e6)
        else:
            other[event.name] = (other.get(event.name, 0.0) +
                                 event.self_cpu_time_total / 1e6)
    return flop_ops, other


def _range_seconds(prof, match) -> float:
    """Seconds in the ranges whose names ``match`` (outermost only)."""
    total = 0.0
    for event in prof.events():
        if not match(event.name):
            continue
        parent, nested = event.cpu_parent, False
        while parent is not None and not nested:
            nested = match(parent.name)
            parent = parent.cpu_parent
        if not nested:
            total += event.cpu_time_total / 1e6
    return total


def profile_survey_ops(runners: Sequence[Runner],
                       iters: int) -> Dict[str, dict]:
    """Where each runner's iteration time goes (CPU), from ``iters``
    profiled iterations in interleaved rounds, as the timed ones.

    Returns:
        Per runner, medians over the iterations: ``iteration`` (the
        profiled iteration's wall time: the profiler's own cost included),
        ``contention`` (the other processes' cores during it, ``None``
        unless the runner records them, see :class:`SurveyRunner`),
        ``attack`` (the ``adversarial_ssl.attack`` range; 0 for a
        baseline), ``optimizer`` (torch's ``Optimizer.step#`` and
        ``zero_grad#`` ranges), ``flop_ops`` (the operators FLOPs are
        counted for, :data:`FLOP_OPS`, with what they call), ``other``
        (``iteration - flop_ops``), and per operator ``flop_ops_by_op``
        (their seconds) and ``other_by_op`` (every other operator's and
        range's self time; the part of ``other`` no operator holds is
        Python and the profiler).
    """
    def measure(runner: Runner, prof, wall: float) -> dict:
        flop_ops, other = _op_seconds(prof)
        return dict(
            iteration=wall,
            contention=(runner.contention[-1] if getattr(
                runner, 'contention', None) else None),
            attack=_range_seconds(prof, lambda n: n == SSL_ATTACK),
            optimizer=_range_seconds(
                prof, lambda n: n.startswith(OPTIMIZER_PREFIXES)),
            flop_ops=sum(flop_ops.values()),
            flop_ops_by_op=flop_ops, other_by_op=other)

    runs = profiled_rounds(runners, iters, measure)
    result = {}
    for name, rows in runs.items():
        med = {k: statistics.median(r[k] for r in rows)
               for k in ('iteration', 'attack', 'optimizer', 'flop_ops')}
        med['other'] = med['iteration'] - med['flop_ops']
        cores = [r['contention'] for r in rows]
        med['contention'] = (None if None in cores else
                             statistics.median(cores))
        for key in ('flop_ops_by_op', 'other_by_op'):
            names = sorted({n for r in rows for n in r[key]})
            med[key] = {n: statistics.median(r[key].get(n, 0.0)
                                             for r in rows) for n in names}
        result[name] = med
    return result


def excess_over_floor(rows: Dict[str, dict], ops: Dict[str, dict],
                      method: str, top: int = 3) -> dict:
    """How far ``method``'s profiled iteration is over its floor, and
    where: ``excess = t_method - flop_ratio x t_baseline``, split the same
    way into the FLOP operators' seconds and the rest's, and the ``top``
    operators (or ranges) with the largest excess
    ``s_method(op) - flop_ratio x s_baseline(op)``.

    Args:
        rows: :func:`survey_rows`' result.
        ops: :func:`profile_survey_ops`' result.
        method: A method's variant name.
        top: How many operators to list.

    Returns:
        ``floor_x_baseline`` and ``iteration`` (the method's profiled
        iteration), ``excess``, its ``flop_ops`` and ``other`` parts (in
        seconds) and ``largest``: ``[operator, seconds]`` pairs.
    """
    floor = rows[method]['flop_ratio']
    own, base = ops[method], ops[rows[method]['baseline']]
    per_op = {}
    for key in ('flop_ops_by_op', 'other_by_op'):
        for name in set(own[key]) | set(base[key]):
            per_op[name] = (own[key].get(name, 0.0) -
                            floor * base[key].get(name, 0.0))
    largest = sorted(per_op.items(), key=lambda kv: -kv[1])[:top]
    return dict(
        floor_x_baseline=floor * base['iteration'],
        iteration=own['iteration'],
        excess=own['iteration'] - floor * base['iteration'],
        flop_ops=own['flop_ops'] - floor * base['flop_ops'],
        other=own['other'] - floor * base['other'],
        largest=[[name, seconds] for name, seconds in largest])
