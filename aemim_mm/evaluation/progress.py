"""Progress and ETA lines for long evaluation loops."""
import time
from typing import Optional

from mmengine.logging import print_log


def format_seconds(seconds: float) -> str:
    """``h:mm:ss`` of a duration in seconds."""
    seconds = int(round(max(seconds, 0)))
    return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


class Progress:
    """Logs ``name: done/total, elapsed, ETA`` at most every ``interval_s``.

    Args:
        total: Number of steps.
        name: What is being done (shown first on each line).
        interval_s: Least time between two lines (the last step always logs).
        logger: mmengine logger name or instance (``'current'`` by default).
    """

    def __init__(self, total: int, name: str, interval_s: float = 10.0,
                 logger: Optional[object] = 'current') -> None:
        self.total, self.name, self.interval_s = total, name, interval_s
        self.logger = logger
        self.done = 0
        self.start = time.monotonic()
        self._last = self.start

    def step(self, n: int = 1) -> None:
        """Record ``n`` finished steps; log when due."""
        self.done += n
        now = time.monotonic()
        if now - self._last < self.interval_s and self.done < self.total:
            return
        self._last = now
        elapsed = now - self.start
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0
        print_log(
            f'{self.name}: {self.done}/{self.total}, elapsed '
            f'{format_seconds(elapsed)}, ETA {format_seconds(eta)}',
            logger=self.logger)
