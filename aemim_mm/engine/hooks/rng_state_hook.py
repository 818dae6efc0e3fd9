"""Exact resume: the random generators' states go into every checkpoint.

mmengine 0.10 checkpoints hold the model, the optimiser, the schedulers and
the message hub, but not the states of the random number generators (Python's
``random``, numpy's global ``RandomState``, torch's CPU and CUDA generators).
A resumed run therefore draws different masks, attack random starts,
adversarial samples and data augmentations than the run it continues.
Worse, on resume :class:`~mmengine.runner.IterBasedTrainLoop` re-runs the data
pipeline for every finished iteration (to skip the data already trained on),
which consumes random numbers before the first new batch is drawn.

:class:`RNGStateCheckpointHook` takes the generator states of every rank at
the end of every training iteration, and every checkpoint gets them under
``checkpoint['meta'][RNG_STATE_KEY]`` (tensors, ints, floats, strings and
``None`` only, so the checkpoint loads with ``torch.load(...,
weights_only=True)``). With several processes the states of all ranks are
gathered (rank 0 writes the checkpoint) only after the iterations that a
``CheckpointHook`` saves (:func:`~aemim_mm.engine.checkpoint_due.
checkpoint_due`). The states are put back right before the data of the next
iteration is drawn: after mmengine's data skip on resume, and, in a run that
is not interrupted, after whatever ran between the end of the iteration and
the next batch (checkpointing, validation). So the iteration after a
checkpoint starts from the same generator states in the uninterrupted and in
the resumed run.

Config::

    custom_hooks = [dict(type='RNGStateCheckpointHook')]

Its one job is the checkpointed state; the split-invariant per-sample draws
are :class:`~aemim_mm.engine.hooks.sample_seed_hook.SampleSeedHook`'s.
"""
import logging
from typing import Optional

from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.hooks.hook import DATA_BATCH
from mmengine.logging import print_log

from mmpretrain.registry import HOOKS
from ...utils.rng_state import get_rng_state, set_rng_state
from ..checkpoint_due import checkpoint_due
from ..fetch_iterator import FetchCallbackIterator

__all__ = ['RNGStateCheckpointHook', 'RNG_STATE_KEY']

#: Where the states go: ``checkpoint['meta'][RNG_STATE_KEY]``.
RNG_STATE_KEY = 'rng_state'

# Version of the stored layout, so that a later layout can be told apart.
_FORMAT = 1


@HOOKS.register_module()
class RNGStateCheckpointHook(Hook):
    """Save every rank's RNG states into checkpoints; restore them on resume.

    See the module docstring. With mmengine's ``IterBasedTrainLoop`` the state
    is put back right before the batch of the iteration after the checkpoint
    is drawn. With ``EpochBasedTrainLoop`` it is put back in
    ``before_train_epoch`` (before the epoch's data iterator is created) when
    the checkpoint was saved at the end of the previous epoch; a checkpoint
    from the middle of an epoch restores nothing (mmengine restarts the epoch
    on resume), with a warning. A checkpoint written by another number of
    processes, or without this hook, restores nothing either (a warning).

    Exactness also needs what this hook cannot provide: the same number of
    processes as the checkpointed run, ``num_workers=0`` in the train
    dataloader (worker processes have their own generators), and
    deterministic kernels (``randomness=dict(seed=..., deterministic=True)``).

    The hook takes no options: adding it to ``custom_hooks`` turns the job
    on. Its priority is ``'VERY_HIGH'``, so that its ``after_train_iter``
    runs before mmengine's ``CheckpointHook`` (``'VERY_LOW'``).

    Raises:
        TypeError: At construction, on any argument (it has none), naming it.
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        # (meta iter the state belongs to, this rank's state, from a resume?)
        self._pending: Optional[tuple] = None
        # (iterations done, every rank's state) of the last iteration
        self._latest: Optional[tuple] = None

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
        meta = checkpoint.setdefault('meta', {})
        done = int(meta.get('iter', runner.iter))
        world_size = get_world_size()
        if self._latest is not None and self._latest[0] == done:
            states = self._latest[1]
        elif world_size == 1:     # saved outside a training iteration
            states = [get_rng_state()]
        else:
            print_log(
                f'{type(self).__name__}: with several processes, only '
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
        meta = checkpoint.get('meta') or {}
        saved = meta.get(RNG_STATE_KEY)
        if saved is None:
            self._pending = None
            return
        world_size, rank = get_world_size(), get_rank()
        if saved.get('world_size') != world_size:
            print_log(
                f'{type(self).__name__}: the checkpoint was written by '
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
        """Drop a ``load_from`` state; hook the data iterator of a loop."""
        resumed = runner.iter > 0 or runner.epoch > 0
        if not resumed:
            self._pending = None     # load_from, not resume
        elif self._pending is None:
            print_log(
                f'{type(self).__name__}: the resumed checkpoint has no '
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
                f'{type(self).__name__}: resumed from the middle of an '
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
                f'{type(self).__name__}: restored the random generators '
                f'of the checkpoint at iteration {iteration}.',
                logger='current')
