"""A proxy of the train loop's data iterator that calls back before a fetch.

``IterBasedTrainLoop`` draws the next batch before ``before_train_iter``,
and on resume re-draws the finished iterations' batches first, so a hook
cannot act right before a given batch is drawn. :class:`FetchCallbackIterator`
counts the batches drawn in this process and calls ``before_fetch(n)``
right before batch number ``n`` (0-based) is drawn;
:class:`~aemim_mm.engine.RNGStateCheckpointHook` restores the random
generators there.
"""
from typing import Any, Callable, Iterator

__all__ = ['FetchCallbackIterator']


class FetchCallbackIterator:
    """Wraps an iterator; calls ``before_fetch(fetched)`` before each fetch.

    Args:
        iterator: The wrapped iterator (e.g. the loop's
            ``dataloader_iterator``); other attributes are read from it.
        before_fetch: Called with the number of batches drawn so far, right
            before the next one is drawn.
    """

    def __init__(self, iterator: Iterator,
                 before_fetch: Callable[[int], None]) -> None:
        self._iterator = iterator
        self._before_fetch = before_fetch
        self.fetched = 0

    def __iter__(self) -> 'FetchCallbackIterator':
        return self

    def __next__(self):
        self._before_fetch(self.fetched)
        self.fetched += 1
        return next(self._iterator)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._iterator, name)
