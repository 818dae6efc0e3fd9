"""Whether a ``CheckpointHook`` of the runner saves after this iteration.

The rule of mmengine's ``CheckpointHook``, asked by another hook in
``after_train_iter`` (:class:`~aemim_mm.engine.RNGStateCheckpointHook`
gathers every rank's RNG state only then).
"""
from mmengine.hooks import CheckpointHook
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop

__all__ = ['checkpoint_due']


def checkpoint_due(runner, batch_idx: int) -> bool:
    """Whether a ``CheckpointHook`` of the runner saves after this iteration.

    The rule of mmengine's ``CheckpointHook``, asked in ``after_train_iter``:

    * ``by_epoch=False``: every ``interval`` iterations from ``save_begin``,
      and after the last iteration with ``save_last``;
    * ``by_epoch=True``: at the end of every ``interval``-th epoch from
      ``save_begin``, and of the last epoch with ``save_last``. An epoch ends
      with the last batch of an ``EpochBasedTrainLoop``'s epoch, or with the
      last iteration of an ``IterBasedTrainLoop``; with another loop, every
      iteration counts as a possible end.

    Args:
        runner: The runner, in ``after_train_iter`` (``runner.iter`` is the
            0-based index of the iteration that just ran).
        batch_idx: The index of the batch in the loop, as the hook got it.

    Returns:
        True if some ``CheckpointHook`` (or subclass) saves now.
    """
    for hook in getattr(runner, 'hooks', ()):
        if not isinstance(hook, CheckpointHook):
            continue
        if not hook.by_epoch:
            saves = (hook.every_n_train_iters(runner, hook.interval,
                                              hook.save_begin)
                     or (hook.save_last and hook.is_last_train_iter(runner)))
        else:
            loop = runner.train_loop
            if isinstance(loop, IterBasedTrainLoop):
                ends_epoch = hook.is_last_train_iter(runner)
            elif isinstance(loop, EpochBasedTrainLoop):
                ends_epoch = hook.end_of_epoch(runner.train_dataloader,
                                               batch_idx)
            else:
                ends_epoch = True
            saves = ends_epoch and (
                hook.every_n_epochs(runner, hook.interval, hook.save_begin)
                or (hook.save_last and hook.is_last_train_epoch(runner)))
        if saves:
            return True
    return False
