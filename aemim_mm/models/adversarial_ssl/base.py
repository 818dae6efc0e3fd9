"""AdversarialSSLWrapper: what every survey adversary shares.

A method (one module each: RoCL, CLAE, ACL, BYORL, ...) subclasses it, names
the algorithms it is defined for (:attr:`AdversarialSSLWrapper.ALGORITHMS`)
and the BatchNorm mode of its attack (:attr:`AdversarialSSLWrapper.
ATTACK_NORMS`), and writes ``loss()`` as its paper's update with
:meth:`AdversarialSSLWrapper.craft` (the attack) and
:meth:`AdversarialSSLWrapper.route` (the clean or adversarial BatchNorms).
See ``docs/design.md`` ("The survey's adversaries").
"""
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import (Callable, Dict, Iterator, List, Optional, Sequence,
                    Tuple, Union)

import torch
import torch.distributed as dist
from mmengine.model import BaseModel
from torch import Tensor, nn
from torch.profiler import record_function

from mmpretrain.registry import MODELS
from ...utils.checks import is_number
from ..adapters import (adapter_route, adversarial_state_dict_keys,
                        convert_adapters, reset_adversarial_adapters)
from ..attack import PixelPGD, normalisation_stats
from ..randomness import START, SampleRandomness
from ..split_norm import eval_norms, frozen_running_stats, is_split_norm
from ..state_dict_prefix import add_algorithm_prefix, strip_algorithm_prefix
from ..sync_batch_norm import one_process_batch_norms
from .joint_embedding import JointEmbedding, build_joint_embedding

#: BatchNorm modes of the attack's forwards: ``'eval'`` (running statistics,
#: none updated; RoCL, ACL), ``'train'`` (batch statistics, running ones
#: updated; CLAE, AdvCL), ``'frozen'`` (batch statistics, none updated).
ATTACK_NORM_MODES = ('eval', 'train', 'frozen')
#: The adapters a survey method takes: shared norms, or split BatchNorms.
SSL_ADAPTERS = ('none', 'bn')
#: The profiler range of the attack.
SSL_ATTACK = 'adversarial_ssl.attack'


@dataclass
class Attack:
    """The adversarial views of one iteration and what is logged of them.

    Attributes:
        views: The adversarial views, normalised like the inputs.
        log: ``adv_objective_init`` (the attack's objective at its start),
            ``adv_linf`` (realised L-inf norm, 0-255 units, mean over
            samples) and ``adv_nonfinite`` (samples that fell back).
    """
    views: List[Tensor]
    log: Dict[str, Tensor] = field(default_factory=dict)


class AdversarialSSLWrapper(BaseModel):
    """An unchanged mmpretrain joint-embedding algorithm and an adversary.

    Args:
        algorithm: The algorithm (config dict or module), of exactly one of
            the method's :attr:`ALGORITHMS`.
        attack: The attack (a :class:`~aemim_mm.models.PixelPGD` config or
            object): budget and step in 0-255 pixel units; ``None`` for the
            feature-level methods, which perturb no pixel.
        adapter: ``'none'`` (one set of BatchNorms) or ``'bn'`` (split
            BatchNorms: the adversarial views through their own affine
            parameters and running statistics, dropped by export).
        adapter_scope: Children of ``algorithm`` whose BatchNorms are split.
        adv_bn_momentum: Momentum of the adversarial BatchNorms (CLAE: 0.01);
            ``None`` keeps each layer's.
        data_preprocessor: Handed to a config-dict ``algorithm`` without
            one (mmengine's Runner passes a config's top-level one).
        init_cfg: mmengine initialisation config of the wrapper.

    Raises:
        TypeError: If the algorithm is not one the method is defined for
            (the message names them), or the attack is not a ``PixelPGD``.
        ValueError: For a bad ``adapter``, ``adapter_scope`` or
            ``adv_bn_momentum``, naming it.
    """

    #: The algorithm classes (exact types) the method is defined for.
    ALGORITHMS: Tuple[type, ...] = ()
    #: The BatchNorm mode of the attack's forwards (:data:`ATTACK_NORM_MODES`).
    ATTACK_NORMS = 'frozen'

    def __init__(self,
                 algorithm: Union[dict, nn.Module],
                 attack: Union[dict, PixelPGD, None] = dict(type='PixelPGD'),
                 adapter: str = 'none',
                 adapter_scope: Sequence[str] = ('backbone', 'neck'),
                 adv_bn_momentum: Optional[float] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        method = type(self).__name__
        if adapter not in SSL_ADAPTERS:
            raise ValueError(f'{method}: adapter must be one of '
                             f'{SSL_ADAPTERS}, got {adapter!r}.')
        if isinstance(adapter_scope, str) or not all(
                isinstance(s, str) for s in adapter_scope):
            raise ValueError(f'{method}: adapter_scope must be a list of '
                             f'sub-module names, got {adapter_scope!r}.')
        if adv_bn_momentum is not None and not (
                is_number(adv_bn_momentum) and 0 < adv_bn_momentum <= 1):
            raise ValueError(f'{method}: adv_bn_momentum must be None or in '
                             f'(0, 1], got {adv_bn_momentum!r}.')
        if adv_bn_momentum is not None and adapter != 'bn':
            raise ValueError(f'{method}: adv_bn_momentum needs split '
                             "BatchNorms (adapter='bn').")
        if isinstance(algorithm, dict):
            algorithm = dict(algorithm)
            if data_preprocessor is not None:
                algorithm.setdefault('data_preprocessor', data_preprocessor)
            self._check_algorithm(algorithm.get('type'))
            algorithm = MODELS.build(algorithm)
        elif data_preprocessor is not None:
            raise ValueError(f'{method}: data_preprocessor is given, but '
                             'algorithm is a built module with its own.')
        self._check_algorithm(type(algorithm))
        attack = MODELS.build(attack) if isinstance(attack, dict) else attack
        if attack is not None and not isinstance(attack, PixelPGD):
            raise TypeError(f'{method}: attack must be a PixelPGD (config), '
                            f'got {type(attack).__name__}.')

        super().__init__(
            data_preprocessor=algorithm.data_preprocessor, init_cfg=init_cfg)
        self.algorithm = algorithm
        self.ssl: JointEmbedding = build_joint_embedding(algorithm)
        self.attack = attack
        self.adapter = adapter
        self.adv_bn_momentum = adv_bn_momentum
        #: ``None``: random starts from torch's global generator; an int
        #: (set each iteration by ``SampleSeedHook``): keyed by sample.
        self.sample_seed: Optional[int] = None
        if not (dist.is_available() and dist.is_initialized()):
            one_process_batch_norms(algorithm)     # see sync_batch_norm
        if adapter != 'none':
            convert_adapters(algorithm, adapter, tuple(adapter_scope))
        self._adversarial_keys = adversarial_state_dict_keys(
            algorithm.state_dict())
        self.register_state_dict_post_hook(strip_algorithm_prefix)
        self.register_load_state_dict_pre_hook(add_algorithm_prefix)

    @classmethod
    def _check_algorithm(cls, algorithm: Union[str, type, None]) -> None:
        """Raise unless ``algorithm`` (a registry name or class) is exactly
        one of :attr:`ALGORITHMS`."""
        names = [c.__name__ for c in cls.ALGORITHMS]
        if isinstance(algorithm, str):
            found = MODELS.get(algorithm)
            ok = found in cls.ALGORITHMS
            name = algorithm
        else:
            ok = algorithm in cls.ALGORITHMS
            name = getattr(algorithm, '__name__', repr(algorithm))
        if not ok:
            raise TypeError(
                f'{cls.__name__} is defined for the algorithms {names} '
                f'(exact type), got {name}; docs/survey.md says why.')

    # ------------------------------------------------------------------ #
    def loss(self, inputs: List[Tensor],
             data_samples: list) -> Dict[str, Tensor]:
        """The method's update (implemented by each method)."""
        raise NotImplementedError

    @contextmanager
    def route(self, route: str) -> Iterator[None]:
        """Forwards inside the block use the ``route`` BatchNorms
        (``'clean'`` or ``'adv'``), with ``adv_bn_momentum`` on ``'adv'``."""
        momentum = (self.adv_bn_momentum if route == 'adv' else None)
        norms = ([m for m in self.algorithm.modules() if is_split_norm(m)]
                 if momentum is not None else [])
        saved = [m.momentum for m in norms]
        for m in norms:
            m.momentum = momentum
        try:
            with adapter_route(self, route):
                yield
        finally:
            for m, value in zip(norms, saved):
                m.momentum = value

    def craft(self, views: Sequence[Tensor],
              objective: Callable[[List[Tensor]], Tensor],
              route: str = 'clean') -> Attack:
        """Attack ``views`` jointly: maximise ``objective(perturbed views)``.

        The attack (:attr:`attack`) perturbs every view within its budget
        and the pixel box; its random start is drawn per sample (keyed by
        :attr:`sample_seed` when set); its forwards take ``route`` and run
        BatchNorm as :attr:`ATTACK_NORMS` says; only the perturbation gets
        a gradient.

        Args:
            views: Normalised views of the same samples (N, C, H, W) each.
            objective: Maps the perturbed views to the loss to maximise.
            route: ``'clean'`` or ``'adv'`` BatchNorms.

        Returns:
            The adversarial views and the logged statistics.
        """
        if self.attack is None:
            raise RuntimeError(f'{type(self).__name__} has no attack.')
        num = views[0].shape[0]
        x = torch.cat(list(views))
        rng = SampleRandomness(num, x.device, self.sample_seed)
        noise = rng.rand((len(views), ) + tuple(views[0].shape[1:]), START)
        noise = noise.transpose(0, 1).flatten(0, 1)      # view-major
        mean, std = self.pixel_stats(x)
        with self.route(route), self._attack_norms(), record_function(
                SSL_ATTACK):
            result = self.attack(
                x, lambda z: objective(list(z.split(num))), mean, std,
                noise=noise)
        with torch.no_grad():
            linf = ((result.x_adv - x) * std.reshape(1, -1, 1, 1)).abs()
            log = dict(adv_linf=linf.flatten(1).amax(1).mean(),
                       adv_nonfinite=x.new_tensor(float(result.num_fallback)))
            if result.dist_init is not None:
                log['adv_objective_init'] = result.dist_init.detach()
        return Attack(list(result.x_adv.split(num)), log)

    def _attack_norms(self):
        """The BatchNorm mode of the attack's forwards."""
        mode = self.ATTACK_NORMS
        if mode == 'eval':
            return eval_norms(self.algorithm)
        if mode == 'frozen':
            return frozen_running_stats(self.algorithm)
        return nullcontext()

    def pixel_stats(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """Per-channel mean and std (0-255 units) that normalised ``x``."""
        return normalisation_stats(self.data_preprocessor, x)

    # ------------------------------------------------------------------ #
    def forward(self,
                inputs: List[Tensor],
                data_samples: Optional[list] = None,
                mode: str = 'tensor'):
        """``mode='loss'`` runs the method; other modes go to the
        algorithm."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        return self.algorithm(inputs, data_samples, mode=mode)

    def init_weights(self) -> None:
        """Initialise the algorithm; the adversarial BatchNorms start as
        copies of the clean ones (unless a ``Pretrained`` ``init_cfg`` of
        the wrapper loaded them)."""
        present = set(adversarial_state_dict_keys(self.algorithm.state_dict()))
        missing = [k for k in self._adversarial_keys if k not in present]
        if missing:
            raise RuntimeError(
                f'{len(missing)} adversarial BatchNorm entries of '
                f'{type(self).__name__} are gone (e.g. {missing[:3]}): a '
                'layer was replaced after the model was built (such as '
                "mmengine's revert_sync_batchnorm). Build the model in the "
                'process that trains it.')
        super().init_weights()
        init_cfg = self.init_cfg if isinstance(self.init_cfg, list) else [
            self.init_cfg]
        if not any(isinstance(c, dict) and c.get('type') == 'Pretrained'
                   for c in init_cfg):
            reset_adversarial_adapters(self)


def check_temperature(method: str, ssl: JointEmbedding) -> None:
    """Raise unless the algorithm's head temperature is a number > 0."""
    value = ssl.temperature
    if not is_number(value) or value <= 0:
        raise ValueError(f"{method}: the head's temperature "
                         '(algorithm.head.temperature) must be a number > 0, '
                         f'got {value!r}.')


def check_weight(method: str, name: str, value: float,
                 upper: Optional[float] = None) -> None:
    """Raise unless ``value`` is a number >= 0 (and <= ``upper``)."""
    if not is_number(value) or value < 0 or (upper is not None
                                             and value > upper):
        allowed = f'in [0, {upper}]' if upper is not None else '>= 0'
        raise ValueError(f'{method}: {name} must be a number {allowed}, got '
                         f'{value!r}.')
