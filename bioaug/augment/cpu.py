"""CPU allocator tuning for batched CPU work.

glibc ``malloc`` serves large blocks with fresh ``mmap`` pages and returns them on
``free``, so code that allocates large tensors for every batch pays page faults for memory
it just released. The augmentation engine avoids that itself (it writes each batch's views
into the memory of the previous batch's once they are released, see
:mod:`bioaug.augment.buffers`, and its torch ops with large intermediates work in blocks of
samples, see ``bioaug.augment.ops.base.BLOCK``), but other per-batch CPU work may not. Raising the mmap and trim thresholds keeps the memory in the
process and reuses it (what jemalloc or tcmalloc, which PyTorch recommends for CPU work, do
by design). This is process-wide, so it is opt-in: call :func:`tune_cpu_allocator` once in
a training or benchmark process.
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
