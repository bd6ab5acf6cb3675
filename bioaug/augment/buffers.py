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

Whether anything else holds a tensor is read from reference counts: Python's
(``sys.getrefcount``) for the tensor and its storage object, torch's for the storage
(``torch._C._storage_Use_Count``, a private function). Neither is compared with a number
assumed here: the counts of a tensor nobody else holds are measured once, through the same
code. Reuse is on only where that reading is known to work (:func:`reuse_supported`): the
private function exists, the interpreter is a CPython version listed in
:data:`TESTED_PYTHONS` with its global interpreter lock, and a self-test run at import
tells a released tensor from one held in each of the ways above. Elsewhere every call gets
a new tensor: slower on the CPU, never wrong.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

_use_count: Callable[[int], int] | None = getattr(torch._C, "_storage_Use_Count", None)

#: CPython versions whose reference counting the checks here were run on.
TESTED_PYTHONS: frozenset[tuple[int, int]] = frozenset({(3, 10), (3, 11), (3, 12), (3, 13)})

Counts = tuple[int, int, int]


def _counts(slots: dict[int, Tensor], slot: int) -> Counts:
    """(references to ``slots[slot]``, Python references to its storage object, torch's
    references to its storage), as seen from here."""
    t = slots[slot]
    s = t.untyped_storage()
    return sys.getrefcount(t), sys.getrefcount(s), _use_count(s._cdata)  # type: ignore[misc]


def _alone() -> Counts:
    """:func:`_counts` of a tensor held by nothing but its slot."""
    return _counts({0: torch.empty(1)}, 0)


def released(slots: dict[int, Tensor], slot: int, alone: Counts) -> bool:
    """Whether ``slots[slot]`` is held by nothing but ``slots``: not directly, not through a
    view, its storage or a NumPy array, and not in shared memory. ``alone`` is
    :func:`_alone` (measured on this interpreter)."""
    if slots[slot].is_shared():
        return False
    return all(now <= lone for now, lone in zip(_counts(slots, slot), alone, strict=True))


#: The ways a caller may keep an output; each must read as "held" (see the self-test).
_HOLDERS: dict[str, Callable[[Tensor], Any]] = {
    "the tensor": lambda t: t,
    "a view": lambda t: t[0],
    "its storage": lambda t: t.untyped_storage(),
    "a NumPy array": lambda t: t.numpy(),
    "an alias": lambda t: t.detach(),
}


def _self_test() -> bool:
    """Whether :func:`released` tells, on this interpreter, a tensor nobody holds from one
    held in each of the ways of :data:`_HOLDERS`."""
    alone = _alone()
    slots = {0: torch.empty(2, 3)}
    if not released(slots, 0, alone):
        return False
    for hold in _HOLDERS.values():
        kept = hold(slots[0])
        if released(slots, 0, alone):
            return False
        del kept
    return released(slots, 0, alone)


def reuse_supported(version: tuple[int, int] | None = None,
                    counter: bool | None = None) -> bool:
    """Whether outputs may be reused here (see the module docstring).

    ``version`` (default: this interpreter's) and ``counter`` (whether torch's private
    use-count function exists; default: look) can be given to ask about other conditions.
    """
    version = tuple(sys.version_info[:2]) if version is None else tuple(version)
    counter = _use_count is not None if counter is None else counter
    if not counter or _use_count is None or sys.implementation.name != "cpython":
        return False
    if version not in TESTED_PYTHONS:
        return False
    gil = getattr(sys, "_is_gil_enabled", None)  # free-threaded builds count differently
    if gil is not None and not gil():
        return False
    return _self_test()


#: Whether :class:`OutputBuffers` reuses outputs in this process (fixed at import).
REUSE: bool = reuse_supported()
_ALONE: Counts | None = _alone() if REUSE else None


class OutputBuffers:
    """A small pool of CPU output tensors, one slot per output of a call.

    ``take(k, shape, dtype, device)`` returns the tensor last handed out for slot ``k`` when
    it has the requested shape, dtype and device and has been released, else a new empty
    tensor (which then occupies the slot). The contents are undefined: the caller
    overwrites them. Where reuse is off (:data:`REUSE`) every call returns a new tensor and
    nothing is kept. Thread-safe.
    """

    def __init__(self) -> None:
        self._slots: dict[int, Tensor] = {}
        self._lock = threading.Lock()

    def take(self, slot: int, shape: Sequence[int], dtype: torch.dtype,
             device: torch.device) -> Tensor:
        shape = torch.Size(shape)
        if device.type != "cpu" or not REUSE or _ALONE is None:
            return torch.empty(shape, dtype=dtype, device=device)
        with self._lock:
            if self._reusable(slot, shape, dtype):
                return self._slots[slot]
            fresh = torch.empty(shape, dtype=dtype, device=device)
            self._slots[slot] = fresh
            return fresh

    def _reusable(self, slot: int, shape: torch.Size, dtype: torch.dtype) -> bool:
        """Whether the tensor in ``slot`` fits and has been released (no local reference
        to it is kept here while its references are counted)."""
        if slot not in self._slots:
            return False
        if self._slots[slot].shape != shape or self._slots[slot].dtype != dtype:
            return False
        return released(self._slots, slot, _ALONE)  # type: ignore[arg-type]

    def __getstate__(self) -> dict:
        return {}  # a copy (e.g. in a DataLoader worker) starts with an empty pool

    def __setstate__(self, state: dict) -> None:
        self.__init__()  # type: ignore[misc]
