"""Reproducible randomness: exact resume and rank-layout-invariant draws.

mmengine 0.10 checkpoints hold the model, the optimiser, the schedulers and
the message hub, but not the states of the random number generators (Python's
``random``, numpy's global ``RandomState``, torch's CPU and CUDA generators).
A resumed run therefore draws different masks, attack random starts,
adversarial samples and data augmentations than the run it continues.
Worse, on resume :class:`~mmengine.runner.IterBasedTrainLoop` re-runs the data
pipeline for every finished iteration (to skip the data already trained on),
which consumes random numbers before the first new batch is drawn.

:class:`ReproducibleRandomnessHook` fixes both:

* ``rng_state=True``: the generator states of every rank are taken at the end
  of every training iteration, and every checkpoint gets them under
  ``checkpoint['meta']['rng_state']`` (tensors, ints, floats, strings and
  ``None`` only, so the checkpoint loads with ``torch.load(...,
  weights_only=True)``). With several processes the states of all ranks are
  gathered (rank 0 writes the checkpoint) only after the iterations that a
  ``CheckpointHook`` saves (:func:`checkpoint_due`). The states are put back
  right before the data of the next iteration is drawn: after mmengine's
  data skip on resume, and, in a run that is not interrupted, after whatever
  ran between the end of the iteration and the next batch (checkpointing,
  validation). So the iteration after a checkpoint starts from the same
  generator states in the uninterrupted and in the resumed run.
* ``sample_seed=True``: before every training iteration the unwrapped model's
  ``sample_seed`` attribute is set to :func:`derive_sample_seed` ``(seed,
  iteration)``, the same on every rank. :class:`~aemim_mm.models.
  AdversarialMIMWrapper` then derives every random draw of a sample (MAE
  mask noise, attack random start, adversarial selection) from this seed and
  the sample's index in the global batch, so 1 process with batch ``2B`` and
  2 processes with batch ``B`` draw the same randomness per sample.

Config::

    custom_hooks = [dict(type='ReproducibleRandomnessHook', sample_seed=True)]

The pieces it uses live in their own modules (and stay importable from
here): :func:`get_rng_state` / :func:`set_rng_state` in
:mod:`aemim_mm.utils.rng_state`, :func:`derive_sample_seed` in
:mod:`aemim_mm.utils.sample_seed`, :func:`checkpoint_due` in
:mod:`aemim_mm.engine.checkpoint_due` and the data-iterator proxy in
:mod:`aemim_mm.engine.fetch_iterator`.
"""
import logging
from typing import Optional

import torch
from mmengine.dist import (all_gather_object, broadcast_object_list,
                           get_rank, get_world_size)
from mmengine.hooks import Hook
from mmengine.hooks.hook import DATA_BATCH
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmpretrain.registry import HOOKS
from ...utils.rng_state import get_rng_state, set_rng_state
from ...utils.sample_seed import derive_sample_seed
from ..checkpoint_due import checkpoint_due
from ..fetch_iterator import FetchCallbackIterator

__all__ = [
    'ReproducibleRandomnessHook', 'get_rng_state', 'set_rng_state',
    'derive_sample_seed', 'checkpoint_due', 'RNG_STATE_KEY'
]

#: Where the states go: ``checkpoint['meta'][RNG_STATE_KEY]``.
RNG_STATE_KEY = 'rng_state'

# Version of the stored layout, so that a later layout can be told apart.
_FORMAT = 1

# The former name of the data-iterator proxy (now in
# :mod:`aemim_mm.engine.fetch_iterator`).
_RestoringIterator = FetchCallbackIterator


@HOOKS.register_module()
class ReproducibleRandomnessHook(Hook):
    """Save / restore RNG states in checkpoints; per-iteration sample seeds.

    See the module docstring. With mmengine's ``IterBasedTrainLoop`` the state
    is put back right before the batch of the iteration after the checkpoint
    is drawn. With ``EpochBasedTrainLoop`` it is put back in
    ``before_train_epoch`` (before the epoch's data iterator is created) when
    the checkpoint was saved at the end of the previous epoch; a checkpoint
    from the middle of an epoch restores nothing (mmengine restarts the epoch
    on resume), with a warning.

    Exactness also needs what this hook cannot provide: the same number of
    processes as the checkpointed run, ``num_workers=0`` in the train
    dataloader (worker processes have their own generators), and
    deterministic kernels (``randomness=dict(seed=..., deterministic=True)``).

    Args:
        rng_state: Save the generator states of every rank into each
            checkpoint and restore them on resume.
        sample_seed: Set ``model.sample_seed`` (the unwrapped model's) to
            :func:`derive_sample_seed` ``(seed, runner.iter)`` before every
            training iteration, where ``seed`` is rank 0's ``runner.seed``
            (the same on every rank, also with
            ``randomness.diff_rank_seed=True``). The model must have a
            ``sample_seed`` attribute
            (:class:`~aemim_mm.models.AdversarialMIMWrapper` has).

    Raises:
        ValueError: On a non-bool argument, or (in ``before_train``) if
            ``sample_seed`` is on and the model has no ``sample_seed``.
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
        # (meta iter the state belongs to, this rank's state, from a resume?)
        self._pending: Optional[tuple] = None
        # (iterations done, every rank's state) of the last iteration
        self._latest: Optional[tuple] = None
        # rank 0's ``runner.seed`` (set in ``before_train``)
        self.base_seed: Optional[int] = None

    # ---------------------------------------------------------------- save
    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        """Take every rank's generator states at the end of the iteration.

        Runs before mmengine's ``CheckpointHook`` (priority ``VERY_HIGH``),
        on every rank. With several processes the states are gathered (an
        ``all_gather_object`` of a few kB per rank, because only rank 0
        writes the checkpoint) only after an iteration that a
        ``CheckpointHook`` of the runner saves (:func:`checkpoint_due`); the
        other iterations run no collective. The next batch of this run is
        then drawn from exactly these states, so whatever runs in between
        (checkpointing, validation, visualisation) draws nothing that a
        resumed run would not draw.
        """
        if not self.rng_state:
            return
        state = get_rng_state()
        done = runner.iter + 1
        self._pending = (done, state, False)
        if get_world_size() == 1:
            self._latest = (done, [state])
        elif checkpoint_due(runner, batch_idx):
            self._latest = (done, all_gather_object(state))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Put every rank's generator states into ``checkpoint['meta']``.

        mmengine calls this on rank 0 only.
        """
        if not self.rng_state:
            return
        meta = checkpoint.setdefault('meta', {})
        done = int(meta.get('iter', runner.iter))
        world_size = get_world_size()
        if self._latest is not None and self._latest[0] == done:
            states = self._latest[1]
        elif world_size == 1:     # saved outside a training iteration
            states = [get_rng_state()]
        else:
            print_log(
                'ReproducibleRandomnessHook: with several processes, only '
                'the checkpoints that a CheckpointHook saves after a '
                'training iteration or epoch get the RNG state; this one '
                f'(iteration {done}) gets none.',
                logger='current',
                level=logging.WARNING)
            return
        meta[RNG_STATE_KEY] = dict(
            format=_FORMAT, world_size=world_size, ranks=states)

    # ---------------------------------------------------------------- load
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep this rank's saved state; it is applied when training starts.

        ``load_from`` without ``resume`` also loads a checkpoint: the state is
        then dropped in ``before_train`` (the run starts at iteration 0).
        """
        if not self.rng_state:
            return
        meta = checkpoint.get('meta') or {}
        saved = meta.get(RNG_STATE_KEY)
        if saved is None:
            self._pending = None
            return
        world_size, rank = get_world_size(), get_rank()
        if saved.get('world_size') != world_size:
            print_log(
                f'ReproducibleRandomnessHook: the checkpoint was written by '
                f'{saved.get("world_size")} processes, this run has '
                f'{world_size}; the random generators are not restored (the '
                'resumed run is not an exact continuation).',
                logger='current',
                level=logging.WARNING)
            self._pending = None
            return
        self._pending = (int(meta.get('iter', 0)), saved['ranks'][rank], True)

    # ---------------------------------------------------------------- train
    def before_train(self, runner) -> None:
        """Check the model; hook the data iterator of an iteration loop."""
        if self.sample_seed:
            model = self._model(runner)
            if not hasattr(model, 'sample_seed'):
                raise ValueError(
                    'ReproducibleRandomnessHook: sample_seed=True needs a '
                    'model with a `sample_seed` attribute (e.g. '
                    f'AdversarialMIMWrapper); {type(model).__name__} has '
                    'none. Set sample_seed=False.')
            # ``randomness.diff_rank_seed`` makes ``runner.seed`` seed + rank:
            # take rank 0's, the seed a single process would have.
            seed = [int(runner.seed)]
            if get_world_size() > 1:
                broadcast_object_list(seed, src=0)
            self.base_seed = seed[0]
        if not self.rng_state:
            return
        resumed = runner.iter > 0 or runner.epoch > 0
        if not resumed:
            self._pending = None     # load_from, not resume
        elif self._pending is None:
            print_log(
                'ReproducibleRandomnessHook: the resumed checkpoint has no '
                'RNG state (written without this hook?); the random '
                'generators are not restored.',
                logger='current',
                level=logging.WARNING)
        loop = runner.train_loop
        if hasattr(loop, 'dataloader_iterator') and not isinstance(
                loop.dataloader_iterator, FetchCallbackIterator):
            loop.dataloader_iterator = FetchCallbackIterator(
                loop.dataloader_iterator, self._before_fetch)

    def _before_fetch(self, fetched: int) -> None:
        """Called by the iterator proxy before batch number ``fetched``."""
        if self._pending is not None and self._pending[0] == fetched:
            self._restore(fetched)

    def before_train_epoch(self, runner) -> None:
        """Epoch loops: restore a state saved at the end of the last epoch."""
        if self._pending is None or isinstance(
                getattr(runner.train_loop, 'dataloader_iterator', None),
                FetchCallbackIterator):
            return
        resumed = self._pending[2]
        mid_epoch = resumed and runner.iter != runner.epoch * len(
            runner.train_dataloader)
        if self._pending[0] == runner.iter and not mid_epoch:
            self._restore(runner.iter)
        elif resumed:
            print_log(
                'ReproducibleRandomnessHook: resumed from the middle of an '
                'epoch; the random generators are not restored.',
                logger='current',
                level=logging.WARNING)
            self._pending = None

    def _restore(self, iteration: int) -> None:
        _, state, resumed = self._pending
        self._pending = None
        set_rng_state(state)
        if resumed:
            print_log(
                'ReproducibleRandomnessHook: restored the random generators '
                f'of the checkpoint at iteration {iteration}.',
                logger='current')

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: DATA_BATCH = None) -> None:
        """Set the model's ``sample_seed`` for this iteration."""
        if self.sample_seed:
            self._model(runner).sample_seed = derive_sample_seed(
                self.base_seed, runner.iter)

    @staticmethod
    def _model(runner) -> torch.nn.Module:
        model = runner.model
        return model.module if is_model_wrapper(model) else model
