"""Compiled CPU kernels for the costliest steps, with the torch code as their reference.

On the CPU, the separable crop warp (:func:`bioaug.augment.ops.geometry.warp`) and the
Gaussian blur (:func:`bioaug.augment.ops.blur.separable_blur`) spend most of their time
moving data between layouts: a torch pass along rows and a pass along columns need a
gather or a transpose between them; ``stain_jitter``, ``color_jitter`` and the addition of
``gaussian_noise`` are chains of whole-batch passes. Compiled kernels
(:mod:`bioaug.augment.kernels`: numba, compiled on first use and cached on disk) work one
image plane at a time while it sits in the cache, with the same formulas in the same order
as the torch code, so their outputs equal it up to float rounding (the tests hold them to
1e-6; the noise is identical). They release the GIL, so the batch is split between
``torch.get_num_threads()`` threads (:func:`parallel`).

This module is the only way in: one typed function per kernel (:func:`warp`,
:func:`blur`, :func:`stain_jitter`, :func:`add_noise`, :func:`color_jitter`) checks the
tensors it is given (the kernels themselves skip bounds checks) and runs the kernel. Ops
reach them from :meth:`bioaug.augment.ops.base.Op.native_apply`; the warp also serves the
fused crop / quarter-turn / flip stages of a pipeline, through the same function
``random_resized_crop`` uses (:func:`bioaug.augment.ops.geometry.warp_views`).

The torch code stays the reference and the path for every other device and dtype, and
whenever numba is missing or ``BIOAUG_NATIVE=0`` is set. ``BIOAUG_KERNEL_DEBUG=1`` (read
when the kernels are first compiled in a process) compiles them with bounds checks, so an
index out of range raises ``IndexError`` instead of touching stray memory.
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import NamedTuple

import torch
from torch import Tensor

#: Set ``BIOAUG_NATIVE=0`` to use the torch code everywhere (for comparison or debugging).
ENV = "BIOAUG_NATIVE"
#: Set ``BIOAUG_KERNEL_DEBUG=1`` to compile the kernels with bounds checks (slower).
DEBUG_ENV = "BIOAUG_KERNEL_DEBUG"
#: Fewest images per thread worth a thread of their own (below that, handing work to a
#: thread costs more than it saves).
MIN_PER_THREAD = 32

_OFF = ("0", "false", "no", "off")


def wanted() -> bool:
    """Whether the compiled kernels may be used (``BIOAUG_NATIVE`` is not switched off)."""
    return os.environ.get(ENV, "1").strip().lower() not in _OFF


def kernel_debug() -> bool:
    """Whether ``BIOAUG_KERNEL_DEBUG`` asks for kernels compiled with bounds checks."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in (*_OFF, "")


@functools.cache
def _compiled() -> ModuleType | None:
    """:mod:`bioaug.augment.kernels`, imported on first use; ``None`` without numba."""
    try:
        import numba  # noqa: F401
    except ImportError:  # pragma: no cover - numba comes with scanpy
        return None
    from bioaug.augment import kernels

    return kernels


def _module() -> ModuleType:
    """:mod:`bioaug.augment.kernels` (check :func:`available` first)."""
    kernels = _compiled()
    if kernels is None:  # pragma: no cover - numba comes with scanpy
        raise RuntimeError("the compiled kernels need numba; check native.available() first")
    return kernels


def available(*tensors: Tensor) -> bool:
    """Whether the kernels can take these tensors: CPU, float32 or float64, no gradient,
    numba importable and not switched off."""
    if not wanted():
        return False
    for t in tensors:
        if t.device.type != "cpu" or t.dtype not in (torch.float32, torch.float64):
            return False
        if t.requires_grad:
            return False
    return _compiled() is not None


def writable(x: Tensor, inplace: bool) -> Tensor:
    """The tensor a kernel writes its result into: ``x`` itself when the caller allows it
    and it is contiguous, else a contiguous copy."""
    return x if inplace and x.is_contiguous() else x.clone(memory_format=torch.contiguous_format)


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _forget_pool() -> None:
    """In a forked child the parent's worker threads do not exist: start a new pool."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def _executor(workers: int) -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None or _pool._max_workers < workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bioaug-native")
        return _pool


def split(n: int, threads: int) -> list[tuple[int, int]]:
    """``[0, n)`` as up to ``threads`` contiguous ranges of at least :data:`MIN_PER_THREAD`."""
    parts = max(1, min(threads, n // MIN_PER_THREAD))
    edges = [round(i * n / parts) for i in range(parts + 1)]
    return [(a, b) for a, b in itertools.pairwise(edges) if b > a]


def parallel(fn: Callable[[int, int], None], n: int) -> None:
    """``fn(start, stop)`` over ``[0, n)`` split between ``torch.get_num_threads()`` threads
    (this one included). ``fn`` must release the GIL to gain anything (compiled kernels,
    torch ops) and treat its ranges independently."""
    ranges = split(n, torch.get_num_threads())
    if len(ranges) <= 1:
        if n > 0:
            fn(0, n)
        return
    pool = _executor(len(ranges) - 1)
    futures = [pool.submit(fn, a, b) for a, b in ranges[1:]]
    fn(*ranges[0])
    for f in futures:
        f.result()


# -- the kernels, one typed entry each ------------------------------------------------------
class WarpTaps(NamedTuple):
    """Bilinear taps of axis-aligned maps for ``V`` views of a batch of ``B`` samples: rows
    ``y0``, ``y1`` ``(V, B, H_out)`` with ``wy`` the weight of ``y1``, columns ``x0``, ``x1``
    ``(V, B, W_out)`` with ``wx`` the weight of ``x1`` (indices int64, weights float), and
    ``swapped`` ``(V, B)`` (bool): the map exchanges the axes (the result is transposed)."""

    y0: Tensor
    y1: Tensor
    wy: Tensor
    x0: Tensor
    x1: Tensor
    wx: Tensor
    swapped: Tensor


def warp(x: Tensor, taps: WarpTaps, out: Tensor) -> None:
    """Resample ``x`` ``(B, C, H, W)`` into ``out`` ``(V, B, C, H_out, W_out)``, view ``v``
    with the taps ``[v]`` (see :class:`WarpTaps`); each input plane is read once for all
    views. The torch reference is :func:`bioaug.augment.ops.geometry._separable_warp`."""
    v, b, c, h_out, w_out = out.shape
    _check_target(out, x.dtype)
    _check_shape("swapped", taps.swapped, (v, b))
    for name, limit, size in (("y0", x.shape[2], h_out), ("y1", x.shape[2], h_out),
                              ("x0", x.shape[3], w_out), ("x1", x.shape[3], w_out)):
        _check_index(name, getattr(taps, name), limit, (v, b, size))
    _check_shape("wy", taps.wy, (v, b, h_out))
    _check_shape("wx", taps.wx, (v, b, w_out))
    if x.shape[:2] != (b, c) or x.device.type != "cpu":
        raise ValueError(f"warp: x {tuple(x.shape)} on {x.device} does not fit out "
                         f"{tuple(out.shape)} (CPU)")
    wy = taps.wy.to(x.dtype)
    _launch(_module().warp, b, x.contiguous(), taps.y0, taps.y1,
            1.0 - wy, wy, taps.x0, taps.x1, taps.wx.to(x.dtype), taps.swapped, out)


def blur(out: Tensor, taps: Tensor, rows: Tensor) -> None:
    """Blur the samples ``rows`` of ``out`` ``(B, C, H, W)`` in place, sample ``rows[j]``
    with its own odd-length separable kernel ``taps[j]`` (reflected borders)."""
    _check_target(out, out.dtype)
    _check_index("rows", rows, out.shape[0], (rows.shape[0],))
    _check_shape("taps", taps, (rows.shape[0], taps.shape[-1]))
    _launch(_module().blur, rows.shape[0], out, taps.to(out.dtype).contiguous(), rows, out)


def stain_jitter(out: Tensor, brightness: Tensor, contrast: Tensor, gamma: Tensor,
                 rows: Tensor) -> None:
    """``stain_jitter`` of the samples ``rows`` of ``out`` in place, with the factors
    ``[j, c]`` of sample ``rows[j]`` and channel ``c`` (see
    :func:`bioaug.augment.ops.stain_jitter.stain_jitter`)."""
    _check_target(out, out.dtype)
    _check_index("rows", rows, out.shape[0], (rows.shape[0],))
    factors = [f.to(out.dtype).contiguous() for f in (brightness, contrast, gamma)]
    for name, f in zip(("brightness", "contrast", "gamma"), factors, strict=True):
        _check_shape(name, f, (rows.shape[0], out.shape[1]))
    _launch(_module().stain_jitter, rows.shape[0], out, *factors, rows, out)


def add_noise(out: Tensor, noise: Tensor, std: Tensor, rows: Tensor) -> None:
    """``clip(x + std[j]·noise[j], 0, 1)`` into the samples ``rows[j]`` of ``out``, in place;
    ``noise`` ``(len(rows), 1 or C, H, W)``."""
    _check_target(out, out.dtype)
    _check_index("rows", rows, out.shape[0], (rows.shape[0],))
    n, c, h, w = rows.shape[0], out.shape[1], out.shape[2], out.shape[3]
    _check_shape("noise", noise, (n, noise.shape[1] if noise.shape[1] == 1 else c, h, w))
    _check_shape("std", std, (n,))
    _launch(_module().add_noise, n, out, noise.to(out.dtype).contiguous(),
            std.to(out.dtype).contiguous(), rows, out)


def color_jitter(out: Tensor, order: Tensor, factors: Tensor, luma: Tensor,
                 rows: Tensor) -> None:
    """``color_jitter`` of the RGB samples ``rows`` of ``out`` in place: sample ``rows[j]``
    gets the adjustments ``order[j]`` (0 brightness, 1 contrast, 2 saturation, 3 hue) with
    ``factors[j]``; ``luma`` holds the three luma weights."""
    _check_target(out, out.dtype)
    if out.shape[1] != 3:
        raise ValueError(f"color_jitter: needs 3 channels, got {out.shape[1]}")
    _check_index("rows", rows, out.shape[0], (rows.shape[0],))
    _check_index("order", order, 4, (rows.shape[0], 4))
    _check_shape("factors", factors, (rows.shape[0], 4))
    _check_shape("luma", luma, (3,))
    _launch(_module().color_jitter, rows.shape[0], out,
            order.contiguous(), factors.to(out.dtype).contiguous(), luma.to(out.dtype),
            rows, out)


def _launch(kernel: Callable[..., None], n: int, *tensors: Tensor) -> None:
    """``kernel(*arrays, start, stop)`` over items ``[0, n)``, split by :func:`parallel`."""
    arrays = [t.numpy() for t in tensors]
    parallel(lambda start, stop: kernel(*arrays, start, stop), n)


def _check_target(out: Tensor, dtype: torch.dtype) -> None:
    """``out`` is a contiguous CPU float32/float64 tensor of ``dtype`` (the input's)."""
    if (out.device.type != "cpu" or out.dtype != dtype or not out.is_contiguous()
            or dtype not in (torch.float32, torch.float64)):
        raise ValueError(f"a kernel writes into a contiguous CPU float32/float64 tensor of "
                         f"the input's dtype ({dtype}); got {out.dtype} on {out.device}"
                         f"{'' if out.is_contiguous() else ', not contiguous'}")


def _check_shape(name: str, t: Tensor, shape: tuple[int, ...]) -> None:
    if tuple(t.shape) != tuple(shape) or t.device.type != "cpu":
        raise ValueError(f"kernel argument {name}: expected a CPU tensor of shape "
                         f"{tuple(shape)}, got {tuple(t.shape)} on {t.device}")


def _check_index(name: str, t: Tensor, limit: int, shape: tuple[int, ...]) -> None:
    """An int64 index tensor of ``shape`` whose entries lie in ``[0, limit)``."""
    _check_shape(name, t, shape)
    if t.dtype != torch.int64:
        raise ValueError(f"kernel argument {name}: expected int64 indices, got {t.dtype}")
    if t.numel():
        low, high = (int(v) for v in torch.aminmax(t))
        if low < 0 or high >= limit:
            raise ValueError(f"kernel argument {name}: indices must lie in [0, {limit}), "
                             f"got {low} … {high}")
