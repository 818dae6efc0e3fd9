"""``ReproducibleRandomnessHook``: the two reproducibility hooks in one entry.

Each of its switches turns on one hook with one job:

* ``rng_state=True`` (default): :class:`~aemim_mm.engine.hooks.
  rng_state_hook.RNGStateCheckpointHook`, the random generators' states in
  every checkpoint and restored on resume (exact resume);
* ``sample_seed=True``: :class:`~aemim_mm.engine.hooks.sample_seed_hook.
  SampleSeedHook`, a per-iteration ``sample_seed`` on the model
  (rank-layout-invariant draws).

It does neither job itself: it builds those hooks and forwards every stage
that they implement to them, at its own place in the runner's hook list (its
priority, ``'VERY_HIGH'`` unless the config sets another, is the one that
counts). ``dict(type='ReproducibleRandomnessHook', rng_state=a,
sample_seed=b)`` therefore behaves as ``RNGStateCheckpointHook`` (if ``a``)
and ``SampleSeedHook`` (if ``b``) registered together at that priority. A
config can list the hooks it needs instead::

    custom_hooks = [dict(type='RNGStateCheckpointHook'),
                    dict(type='SampleSeedHook')]

This module also re-exports the reproducibility helpers:
:func:`get_rng_state` / :func:`set_rng_state` (from
:mod:`aemim_mm.utils.rng_state`), :func:`derive_sample_seed`
(:mod:`aemim_mm.utils.sample_seed`), :func:`checkpoint_due`
(:mod:`aemim_mm.engine.checkpoint_due`) and ``RNG_STATE_KEY``
(:mod:`aemim_mm.engine.hooks.rng_state_hook`).
"""
from typing import List, Optional

from mmengine.hooks import Hook
from mmengine.hooks.hook import DATA_BATCH

from mmpretrain.registry import HOOKS
from ...utils.rng_state import get_rng_state, set_rng_state
from ...utils.sample_seed import derive_sample_seed
from ..checkpoint_due import checkpoint_due
from ..fetch_iterator import FetchCallbackIterator
from .rng_state_hook import _FORMAT  # noqa: F401  (re-exported)
from .rng_state_hook import RNG_STATE_KEY, RNGStateCheckpointHook
from .sample_seed_hook import SampleSeedHook

__all__ = [
    'ReproducibleRandomnessHook', 'get_rng_state', 'set_rng_state',
    'derive_sample_seed', 'checkpoint_due', 'RNG_STATE_KEY'
]

# Alias of the data-iterator proxy
# (:class:`aemim_mm.engine.fetch_iterator.FetchCallbackIterator`).
_RestoringIterator = FetchCallbackIterator


@HOOKS.register_module()
class ReproducibleRandomnessHook(Hook):
    """Compatibility: ``RNGStateCheckpointHook`` + ``SampleSeedHook``.

    See the module docstring. Every stage is forwarded to the enabled hooks,
    ``SampleSeedHook`` first (only ``before_train`` is implemented by both:
    the model check raises before the data iterator is touched, as before
    the split).

    Args:
        rng_state: Use :class:`RNGStateCheckpointHook`: save the generator
            states of every rank into each checkpoint and restore them on
            resume.
        sample_seed: Use :class:`SampleSeedHook`: set the unwrapped model's
            ``sample_seed`` before every training iteration.

    Attributes:
        rng_state_hook: The :class:`RNGStateCheckpointHook`, or ``None``.
        sample_seed_hook: The :class:`SampleSeedHook`, or ``None``.

    Raises:
        ValueError: At construction, on a non-bool ``rng_state`` or
            ``sample_seed`` (naming it); in ``before_train``, as
            :class:`SampleSeedHook`, if ``sample_seed`` is on and the model
            has no ``sample_seed`` attribute.
    """

    priority = 'VERY_HIGH'

    def __init__(self, rng_state: bool = True,
                 sample_seed: bool = False) -> None:
        for name, value in (('rng_state', rng_state), ('sample_seed',
                                                       sample_seed)):
            if not isinstance(value, bool):
                raise ValueError(f'ReproducibleRandomnessHook: {name} must be '
                                 f'True or False, got {value!r}.')
        self.rng_state = rng_state
        self.sample_seed = sample_seed
        self.sample_seed_hook: Optional[SampleSeedHook] = (
            SampleSeedHook() if sample_seed else None)
        self.rng_state_hook: Optional[RNGStateCheckpointHook] = (
            RNGStateCheckpointHook() if rng_state else None)

    @property
    def hooks(self) -> List[Hook]:
        """The enabled hooks, in the order the stages are forwarded."""
        return [
            h for h in (self.sample_seed_hook, self.rng_state_hook)
            if h is not None
        ]

    def _forward(self, stage: str, runner, **kwargs) -> None:
        for hook in self.hooks:
            getattr(hook, stage)(runner, **kwargs)

    # The stages that RNGStateCheckpointHook or SampleSeedHook implement
    # (mmengine's Runner calls them by keyword, ``call_hook``).
    def before_train(self, runner) -> None:
        """Forwarded to both hooks."""
        self._forward('before_train', runner)

    def before_train_epoch(self, runner) -> None:
        """Forwarded (``RNGStateCheckpointHook``)."""
        self._forward('before_train_epoch', runner)

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: DATA_BATCH = None) -> None:
        """Forwarded (``SampleSeedHook``)."""
        self._forward(
            'before_train_iter', runner, batch_idx=batch_idx,
            data_batch=data_batch)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        """Forwarded (``RNGStateCheckpointHook``)."""
        self._forward(
            'after_train_iter', runner, batch_idx=batch_idx,
            data_batch=data_batch, outputs=outputs)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Forwarded (``RNGStateCheckpointHook``)."""
        self._forward('before_save_checkpoint', runner, checkpoint=checkpoint)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Forwarded (``RNGStateCheckpointHook``)."""
        self._forward('after_load_checkpoint', runner, checkpoint=checkpoint)
