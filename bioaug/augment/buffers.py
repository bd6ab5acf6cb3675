"""Output tensors reused from batch to batch once their caller has let go of them.

A pipeline returns one new ``(B, C, crop, crop)`` tensor per view and per batch: about
12 MB each for 256 three-channel crops of 64 px. glibc ``malloc`` serves blocks that large
with fresh ``mmap`` pages and gives them back on ``free``, so with the default allocator
every batch pays a page fault per 4 KB of output (a third of the engine's time on a
2-core machine). :class:`OutputBuffers` keeps the last outputs and hands one back when
nothing outside holds it any more: not the tensor, not a view of it, not its storage and
not a NumPy array made from it. A tensor that has been moved to shared memory (sent to
another process, e.g. by a ``DataLoader`` worker) is never reused. Only CPU outputs are
pooled: CUDA has its own caching allocator.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence

import torch
from torch import Tensor

_use_count = getattr(torch._C, "_storage_Use_Count", None)


def _storage_refs(t: Tensor) -> tuple[int, int]:
    """(Python references to ``t``'s storage object, C++ references to its storage), as
    seen from here."""
    s = t.untyped_storage()
    return sys.getrefcount(s), _use_count(s._cdata)  # type: ignore[misc]


def _alone() -> tuple[int, int]:
    """:func:`_storage_refs` of a tensor nobody else holds (measured, not assumed: the
    counts depend on the torch version)."""
    return _storage_refs(torch.empty(1))


_ALONE = _alone() if _use_count is not None else None


def released(t: Tensor, holders: int) -> bool:
    """Whether ``t`` is referenced by nothing but its ``holders`` known references (the
    caller's): not directly, not through a view, its storage or a NumPy array."""
    if _ALONE is None or t.is_shared():
        return False
    # + this function's argument and getrefcount's own
    if sys.getrefcount(t) > holders + 2:
        return False
    refs = _storage_refs(t)
    return refs[0] <= _ALONE[0] and refs[1] <= _ALONE[1]


class OutputBuffers:
    """A small pool of CPU output tensors, one slot per output of a call.

    ``take(k, shape, dtype, device)`` returns the tensor last handed out for slot ``k`` when
    it has the requested shape, dtype and device and has been released, else a new empty
    tensor (which then occupies the slot). The contents are undefined: the caller
    overwrites them. Thread-safe.
    """

    def __init__(self) -> None:
        self._slots: dict[int, Tensor] = {}
        self._lock = threading.Lock()

    def take(self, slot: int, shape: Sequence[int], dtype: torch.dtype,
             device: torch.device) -> Tensor:
        shape = torch.Size(shape)
        if device.type != "cpu":
            return torch.empty(shape, dtype=dtype, device=device)
        with self._lock:
            held = self._slots.get(slot)
            # known references: the slot and `held`
            if (held is not None and held.shape == shape and held.dtype == dtype
                    and released(held, holders=2)):
                return held
            fresh = torch.empty(shape, dtype=dtype, device=device)
            self._slots[slot] = fresh
            return fresh

    def __getstate__(self) -> dict:
        return {}  # a copy (e.g. in a DataLoader worker) starts with an empty pool

    def __setstate__(self, state: dict) -> None:
        self.__init__()  # type: ignore[misc]
