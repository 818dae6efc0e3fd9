"""Timing of training iterations: one model trained an iteration at a
time (:class:`Runner`), warm-up and timed repetitions in interleaved
rounds, FLOPs of an iteration, and the matrix-product peak that MFU is read
against.

What one timed iteration holds is :func:`timed_region`: the batch is put on
the preset's device once, when the runner is built, so that a GPU iteration
does not include a host-to-device copy of the images (77 MB at batch 512);
the data preprocessor (channel order, float conversion, normalisation) runs
inside the timed region, as it does in training.
"""
import copy
import time
from contextlib import nullcontext
from typing import Any, Dict, List

import torch
from mmengine.optim import OptimWrapper
from mmpretrain.structures import DataSample
from torch.utils.flop_counter import FlopCounterMode

from .variants import Variants, build_variant

def make_batch(batch: int, size: int, seed: int = 0,
               device: str = 'cpu', views: int = 0) -> dict:
    """A batch as ``default_collate`` gives it (uint8 BGR images).

    Args:
        batch: Images in the batch.
        size: Image side in pixels.
        seed: Seed of the pixel values (drawn on the CPU, so the same on
            every device).
        device: Where the images are put.
        views: 0 (default): ``inputs`` is one tensor (a MIM pipeline);
            ``k`` > 0: a list of ``k`` tensors, the views of a ``MultiView``
            pipeline (the joint-embedding algorithms), drawn in turn from
            the same generator.

    Samples are numbered (``sample_idx`` 0 .. ``batch - 1``) as a dataset
    numbers them.
    """
    gen = torch.Generator().manual_seed(seed)

    def images() -> torch.Tensor:
        return torch.randint(0, 256, (batch, 3, size, size), generator=gen,
                             dtype=torch.uint8).to(device)

    inputs = [images() for _ in range(views)] if views else images()
    return dict(inputs=inputs,
                data_samples=[DataSample(metainfo=dict(sample_idx=i))
                              for i in range(batch)])


def timed_region(device: str) -> str:
    """What one timed iteration of a :class:`Runner` on ``device`` holds."""
    return ('one training iteration: data preprocessor (on the uint8 batch '
            f'put on {device} once, before timing), forward, attack, '
            'backward, optimizer step' +
            ('; CUDA synchronised before and after' if device == 'cuda'
             else ''))


class Runner:
    """Trains one variant an iteration at a time.

    Args:
        name: The variant's name.
        model: The variant's model, on the preset's device.
        preset: A benchmark preset (``batch``, ``img_size``, ``amp``,
            ``device``; ``views``: the number of views of a joint-embedding
            preset, see :func:`make_batch`).

    The batch is made once, on the preset's device (see
    :func:`timed_region`); every :meth:`step` trains on that same tensor.
    """

    def __init__(self, name: str, model: torch.nn.Module, preset: dict):
        self.name = name
        self.model = model
        self.preset = preset
        self.optim = OptimWrapper(
            torch.optim.AdamW(model.parameters(), lr=1e-4,
                              betas=(0.9, 0.95), weight_decay=0.05))
        self.batch = make_batch(preset['batch'], preset['img_size'],
                                device=preset['device'],
                                views=preset.get('views', 0))

    def _autocast(self):
        if not self.preset['amp']:
            return nullcontext()
        return torch.autocast(self.preset['device'], dtype=torch.bfloat16)

    def step(self) -> float:
        """One training iteration; returns its wall time in seconds."""
        cuda = self.preset['device'] == 'cuda'
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        with self._autocast():
            self.model.train_step(copy.copy(self.batch), self.optim)
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start

    def flops(self) -> int:
        """FLOPs of one training iteration (forward, attack, backward)."""
        counter = FlopCounterMode(display=False)
        with counter:
            self.step()
        return counter.get_total_flops()


def matmul_peak_tflops(device: str, dtype: torch.dtype, size: int,
                       reps: int = 10) -> float:
    """Best rate of ``size``-cubed matrix products, in TFLOP/s.

    The ceiling the model FLOP utilisation is read against: random
    operands, three untimed products, then the best of ``reps`` timed ones.
    """
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, generator=gen, device=device, dtype=dtype)
    b = torch.randn(size, size, generator=gen, device=device, dtype=dtype)
    cuda = device == 'cuda'
    best = float('inf')
    for i in range(3 + reps):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        torch.mm(a, b)
        if cuda:
            torch.cuda.synchronize()
        if i >= 3:
            best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e12

def build_runners(variants: Variants, preset: dict) -> List[Runner]:
    """One :class:`Runner` per variant, in the order of ``variants``."""
    return [Runner(n, build_variant(n, variants, preset), preset)
            for n in variants]


def time_variants(runners: List[Runner],
                  args: Any) -> Dict[str, List[float]]:
    """Warm up, then time interleaved repetitions.

    Args:
        runners: The runners of every variant.
        args: Anything with ``warmup`` and ``reps`` (the command line's
            namespace).

    Returns:
        Per variant, one iteration time per repetition (seconds).
    """
    # Warm-up in interleaved rounds, like the timed ones. A model's first
    # iteration allocates its optimizer state, so the next model's pass
    # lands on memory never touched before (page faults: after one warm-up
    # round MAE's first timed iteration took 4.32 s against a median of
    # 3.44 s, see the README); from the second round on every pass reuses
    # memory the process already holds.
    for _ in range(args.warmup):
        for runner in runners:
            runner.step()
    times: Dict[str, List[float]] = {r.name: [] for r in runners}
    start = time.perf_counter()
    for rep in range(args.reps):                         # interleaved
        for runner in runners:
            times[runner.name].append(runner.step())
        done = time.perf_counter() - start
        print(f'  repetition {rep + 1}/{args.reps} done, eta '
              f'{done / (rep + 1) * (args.reps - rep - 1):.0f} s', flush=True)
    return times

def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 matrix products natively on this CPU."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
