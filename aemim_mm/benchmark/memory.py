"""Peak resident memory of training on a CPU (Linux), measured in a fresh
process per variant."""
from .timing import Runner
from .variants import build_variant

#: ... and of the memory subprocesses: blocks of 128 KiB and more are mapped
#: and unmapped on free, so resident memory follows the live tensors.
MEMORY_TUNABLES = 'glibc.malloc.mmap_threshold=131072'

def _status_kib(field: str) -> int:
    """A ``kB`` field of /proc/self/status (``VmRSS``, ``VmHWM``)."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'/proc/self/status has no {field}')


def reset_peak_rss() -> None:
    """Make the kernel's peak-RSS mark (VmHWM) the current RSS (Linux)."""
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')

def memory_child(name: str, variants, preset: dict, iters: int) -> None:
    """Body of the ``--memory-of`` subprocess: print the peak RSS increase."""
    runner = Runner(name, build_variant(name, variants, preset), preset)
    reset_peak_rss()
    before = _status_kib('VmRSS')
    for _ in range(iters):
        runner.step()
    print((_status_kib('VmHWM') - before) * 1024)
