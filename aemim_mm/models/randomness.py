"""Random draws of one AEMIM iteration, optionally keyed by sample.

By default the wrapper draws from torch's global generator on the batch's
device: fast, and reproducible run to run with a fixed seed. With a
``seed`` (set each iteration by ``ReproducibleRandomnessHook``), every draw
is instead a function of ``(seed, global sample index, stream)`` only, where
the global index follows mmengine's ``DefaultSampler`` layout (rank ``r``'s
``k``-th sample is global sample ``k * world_size + r``). One process with
batch ``2B`` and two processes with batch ``B`` then draw the same masks,
the same random starts and the same adversarial subset.
"""
import hashlib
import math
from typing import Optional, Sequence

import torch
from mmengine.dist import get_dist_info

#: Independent streams of draws within one iteration (``MIX``: MoCHi's
#: synthetic negatives).
MASK, START, SELECT, MIX = 0, 1, 2, 3


def round_half_up(value: float) -> int:
    """``round`` with halves going up (Python's ``round`` goes to even)."""
    return int(math.floor(value + 0.5))


class SampleRandomness:
    """The random draws of one iteration for a local batch.

    Args:
        batch_size: Samples on this process.
        device: Where the draws are returned.
        seed: ``None`` for torch's global generator; an int for draws keyed
            by ``(seed, global sample index, stream)``.
    """

    def __init__(self, batch_size: int, device: torch.device,
                 seed: Optional[int] = None) -> None:
        self.batch_size = batch_size
        self.device = device
        self.seed = seed
        self.rank, self.world_size = get_dist_info()
        #: Size of the adversarial subset over all processes (set by
        #: :meth:`select`).
        self.global_count = 0

    def _generator(self, *key: int) -> torch.Generator:
        digest = hashlib.blake2b(
            ':'.join(map(str, (self.seed, ) + key)).encode(),
            digest_size=8).digest()
        return torch.Generator().manual_seed(
            int.from_bytes(digest, 'little') & (2**63 - 1))

    def rand(self, shape: Sequence[int], stream: int,
             index: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Uniform [0, 1) draws of ``shape`` per sample: (N, *shape).

        Args:
            shape: Shape of one sample's draw.
            stream: Which kind of draw (``MASK``, ``START``).
            index: Local indices of the samples (default: all).
        """
        shape = tuple(shape)
        if index is None:
            index = torch.arange(self.batch_size)
        if self.seed is None:
            return torch.rand((len(index), ) + shape, device=self.device)
        draws = [
            torch.rand(shape, generator=self._generator(
                stream, k * self.world_size + self.rank))
            for k in index.tolist()
        ]
        if not draws:
            return torch.empty((0, ) + shape, device=self.device)
        return torch.stack(draws).to(self.device)

    def select(self, ratio: float) -> torch.Tensor:
        """Local indices of the samples that get an adversarial example.

        ``round(ratio * batch)`` (half up) samples of the batch; with a seed,
        of the global batch, each process keeping its own.
        """
        if self.seed is None:
            num = round_half_up(ratio * self.batch_size)
            self.global_count = num * self.world_size
            if num >= self.batch_size:
                return torch.arange(self.batch_size, device=self.device)
            return torch.randperm(self.batch_size, device=self.device)[:num]
        total = self.batch_size * self.world_size
        self.global_count = round_half_up(ratio * total)
        chosen = torch.randperm(
            total, generator=self._generator(SELECT))[:self.global_count]
        local = chosen[chosen % self.world_size == self.rank]
        return (local // self.world_size).sort().values.to(self.device)

    def share(self, num_local: int) -> float:
        """Weight of this process's mean adversarial loss, so that DDP's
        average over processes is the mean over the global subset: 1 unless
        keyed draws gave processes unequal shares of it."""
        return num_local * self.world_size / self.global_count
