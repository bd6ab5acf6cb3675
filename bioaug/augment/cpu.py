"""CPU allocator tuning for batched augmentation.

On the CPU, batched ops allocate a few large tensors per batch (each view, sampling grids,
noise). glibc ``malloc`` serves blocks this large with fresh ``mmap`` pages and returns them
on ``free``, so every batch pays page faults on memory it just released: on a 2-core
machine that is about a third of the engine's time. Raising the mmap and trim thresholds
keeps the memory in the process and reuses it (what jemalloc or tcmalloc, which PyTorch
recommends for CPU work, do by design). This is process-wide, so it is opt-in: call
:func:`tune_cpu_allocator` once in a training or benchmark process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def tune_cpu_allocator(mmap_threshold: int = 256 << 20, trim_threshold: int = 1 << 30) -> bool:
    """Keep large freed blocks in the process (glibc only). Returns whether it took effect."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(M_MMAP_THRESHOLD, int(min(mmap_threshold, 2**31 - 1)))
    ok &= mallopt(M_TRIM_THRESHOLD, int(min(trim_threshold, 2**31 - 1)))
    return bool(ok)
