"""Count and log the images that ``LoadImageFromFileOrSkip`` skipped.

:class:`~aemim_mm.datasets.LoadImageFromFileOrSkip` (``on_error='skip'``)
runs in the data loader's workers, so it hands the skipped paths on inside the
next sample it loads (key ``skipped_images``). :class:`SkipCounterHook` makes
the train pipeline's ``PackInputs`` pack that key, reads it from every batch,
sums the count over ranks, logs it as ``skipped_images`` (the run's total so
far), warns with the paths, and can stop a run whose data is mostly broken.
"""
from typing import Any, Iterator, List, Optional, Sequence

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.hooks.hook import DATA_BATCH

from mmpretrain.registry import HOOKS
from ...utils.checks import is_int

# Resumed with the checkpoint (mmengine saves runtime info with resumed=True).
_TOTAL_INFO_KEY = 'skipped_images_total'


def _datasets(dataset: Any) -> Iterator[Any]:
    """The dataset and those it wraps (``RepeatDataset``, ``ConcatDataset``)."""
    yield dataset
    inner = getattr(dataset, 'dataset', None)
    if inner is not None and inner is not dataset:
        yield from _datasets(inner)
    for inner in getattr(dataset, 'datasets', None) or ():
        yield from _datasets(inner)


def _transforms(obj: Any) -> Iterator[Any]:
    """Every transform of a pipeline, nested ``Compose`` lists included."""
    for t in getattr(obj, 'transforms', None) or ():
        yield t
        yield from _transforms(t)


@HOOKS.register_module()
class SkipCounterHook(Hook):
    """Log how many unreadable images were skipped, and stop at a limit.

    Use it with ``LoadImageFromFileOrSkip(on_error='skip')`` in the train
    pipeline::

        custom_hooks = [dict(type='SkipCounterHook', max_skipped=100)]

    Before training it adds ``'skipped_images'`` to the ``meta_keys`` of the
    train pipeline's ``PackInputs`` (logged once), so the paths reach the
    batch. After every iteration it counts the paths in the batch's data
    samples, sums the count over ranks (one ``all_reduce`` of a scalar when
    distributed) and puts the running total into the message hub as
    ``train/skipped_images``, which the ``LoggerHook`` prints (averaged over
    its window like every scalar: the exact total is in the warning lines and
    at the end). When the batch had skips, it warns with the total and this
    rank's paths. The total is saved in checkpoints and continues on resume.

    Args:
        max_skipped: Raise ``RuntimeError`` when the run's total exceeds this
            number (``None``: no limit; ``0``: any skip stops the run).

    Raises:
        ValueError: At build time, if ``max_skipped`` is not ``None`` or an
            int >= 0.
    """

    priority = 'NORMAL'  # before the LoggerHook (BELOW_NORMAL) reads scalars

    def __init__(self, max_skipped: Optional[int] = None) -> None:
        if max_skipped is not None and (not is_int(max_skipped)
                                        or max_skipped < 0):
            raise ValueError('SkipCounterHook: max_skipped must be None or an '
                             f'int >= 0, got {max_skipped!r}.')
        self.max_skipped = max_skipped
        self.total = 0

    # ------------------------------------------------------------------ setup
    def before_train(self, runner) -> None:
        """Pack the skipped paths; continue the total after a resume."""
        from mmpretrain.datasets.transforms import PackInputs

        from aemim_mm.datasets.transforms import (SKIPPED_KEY,
                                                  LoadImageFromFileOrSkip)
        self.total = int(runner.message_hub.get_info(_TOTAL_INFO_KEY, 0))
        loaders, packers = [], []
        for dataset in _datasets(runner.train_dataloader.dataset):
            for t in _transforms(getattr(dataset, 'pipeline', None)):
                if isinstance(t, LoadImageFromFileOrSkip):
                    loaders.append(t)
                elif isinstance(t, PackInputs):
                    packers.append(t)
        if not any(t.on_error == 'skip' for t in loaders):
            runner.logger.warning(
                'SkipCounterHook: the train pipeline has no '
                "LoadImageFromFileOrSkip(on_error='skip'); nothing to count.")
            return
        for t in packers:
            if SKIPPED_KEY not in t.meta_keys:
                t.meta_keys = tuple(t.meta_keys) + (SKIPPED_KEY, )
                runner.logger.info(f'SkipCounterHook: added {SKIPPED_KEY!r} '
                                   'to the meta_keys of PackInputs.')

    # ------------------------------------------------------------------ count
    @staticmethod
    def skipped_paths(data_batch: DATA_BATCH) -> List[str]:
        """The skipped paths recorded in a collated batch's data samples."""
        from aemim_mm.datasets.transforms import SKIPPED_KEY
        samples: Sequence[Any] = ()
        if isinstance(data_batch, dict):
            samples = data_batch.get('data_samples') or ()
        paths: List[str] = []
        for sample in samples:
            meta = getattr(sample, 'metainfo', None)
            if isinstance(meta, dict):
                paths.extend(meta.get(SKIPPED_KEY) or ())
        return paths

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        """Add this batch's skips (all ranks) to the total and log it."""
        paths = self.skipped_paths(data_batch)
        count = len(paths)
        if get_world_size() > 1:
            n = torch.tensor(float(count))
            all_reduce(n, op='sum')
            count = int(n.item())
        self.total += count
        runner.message_hub.update_info(_TOTAL_INFO_KEY, self.total)
        runner.message_hub.update_scalar('train/skipped_images', self.total)
        if count:
            runner.logger.warning(
                f'SkipCounterHook: {count} unreadable image(s) skipped in '
                f'iteration {runner.iter + 1} ({self.total} in total); this '
                f'rank skipped: {paths}')
        if self.max_skipped is not None and self.total > self.max_skipped:
            raise RuntimeError(
                f'SkipCounterHook: {self.total} unreadable images skipped, '
                f'more than max_skipped={self.max_skipped}; last ones on this '
                f'rank: {paths}. Check the data set.')

    def after_train(self, runner) -> None:
        """Log the run's total."""
        runner.logger.info(
            f'SkipCounterHook: {self.total} unreadable image(s) skipped in '
            'total.')
