"""Compiled CPU kernels for the costliest steps, with the torch code as their reference.

On the CPU, the separable crop warp (:func:`bioaug.augment.ops.geometry.warp`) and the
Gaussian blur (:func:`bioaug.augment.ops.blur.separable_blur`) spend most of their time
moving data between layouts: a torch pass along rows and a pass along columns need a
gather or a transpose between them; ``stain_jitter``, ``color_jitter`` and the addition of
``gaussian_noise`` are chains of whole-batch passes. These kernels (numba, compiled on
first use and cached on disk) work one image plane at a time while it sits in the cache,
with the same formulas in the same order as the torch code, so their outputs equal it up
to float rounding (the tests hold them to 1e-6; the noise is identical). They release the
GIL, so :func:`run` splits a batch between ``torch.get_num_threads()`` threads.

The torch code stays the reference and the path for every other device and dtype, and
whenever numba is missing or ``BIOAUG_NATIVE=0`` is set.
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch import Tensor

#: Set ``BIOAUG_NATIVE=0`` to use the torch code everywhere (for comparison or debugging).
ENV = "BIOAUG_NATIVE"
#: Fewest images per thread worth a thread of their own (below that, handing work to a
#: thread costs more than it saves).
MIN_PER_THREAD = 32


def wanted() -> bool:
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


@functools.cache
def _kernels() -> dict[str, Callable[..., None]] | None:
    """Compile (or load from numba's cache) the kernels; ``None`` when numba is missing."""
    try:
        import numba
    except ImportError:  # pragma: no cover - numba comes with scanpy
        return None
    jit = numba.njit(cache=True, nogil=True, boundscheck=False)

    @jit
    def clip(v, zero, one):  # pragma: no cover
        return min(max(v, zero), one)

    @jit
    def hue_channel(h6, offset, mx, d, zero, one, two, six):  # pragma: no cover
        # one channel of the hue rotation: max − (max − min)·T((h6 + offset) mod 6), with
        # the trapezoid T(k) = clip(2 − |k − 2|, 0, 1); constants in the image's dtype
        k = h6 + offset
        k = k - np.floor(k / six) * six
        return clip(mx - clip(two - abs(k - two), zero, one) * d, zero, one)

    @jit
    def warp(x, y0, y1, gy, wy, x0, x1, wx, swapped, out, start, stop):  # pragma: no cover
        # out[v, b, c, r, s] = bilinear x[b, c] at view v's row taps r and column taps s;
        # transposed where view v's map swaps the axes of sample b. Each input plane is
        # read once for all views. Rows first (weights gy, wy of rows y0, y1; whole rows,
        # which the compiler vectorises), then columns. Arithmetic stays in x's dtype.
        n_cols = x.shape[3]
        n_r, n_s = out.shape[3], out.shape[4]
        row = np.empty(n_cols, dtype=x.dtype)
        for b in range(start, stop):
            for c in range(x.shape[1]):
                plane = x[b, c]
                for v in range(out.shape[0]):
                    dst = out[v, b, c]
                    for r in range(n_r):
                        f, g = wy[v, b, r], gy[v, b, r]
                        upper, lower = plane[y0[v, b, r]], plane[y1[v, b, r]]
                        for k in range(n_cols):
                            row[k] = g * upper[k] + f * lower[k]
                        if swapped[v, b]:
                            for s in range(n_s):
                                p = row[x0[v, b, s]]
                                dst[s, r] = p + wx[v, b, s] * (row[x1[v, b, s]] - p)
                        else:
                            line = dst[r]
                            for s in range(n_s):
                                p = row[x0[v, b, s]]
                                line[s] = p + wx[v, b, s] * (row[x1[v, b, s]] - p)

    @jit
    def blur(x, taps, rows, out, start, stop):  # pragma: no cover
        # separable blur of the samples rows[start:stop] with their own 1-D kernels
        # taps[j]; borders reflect (mirror without repeating the edge), or are replicated
        # when the kernel is wider than the image. out may be x.
        n_h, n_w = x.shape[2], x.shape[3]
        k = taps.shape[1]
        r = k // 2
        mirror = r < n_h and r < n_w
        tmp = np.empty((n_h, n_w), dtype=x.dtype)
        padded = np.empty(n_w + 2 * r, dtype=x.dtype)
        src = np.empty(k, dtype=np.int64)
        for j in range(start, stop):
            b = rows[j]
            t = taps[j]
            for c in range(x.shape[1]):
                plane, dst = x[b, c], out[b, c]
                for i in range(n_h):  # vertical pass: rows i - r … i + r
                    for q in range(k):
                        p = i + q - r
                        if p < 0:
                            p = -p if mirror else 0
                        elif p >= n_h:
                            p = 2 * (n_h - 1) - p if mirror else n_h - 1
                        src[q] = p
                    line = tmp[i]
                    first = plane[src[0]]
                    for m in range(n_w):
                        line[m] = t[0] * first[m]
                    for q in range(1, k):
                        other = plane[src[q]]
                        for m in range(n_w):
                            line[m] += t[q] * other[m]
                for i in range(n_h):  # horizontal pass over a padded copy of the row
                    line = tmp[i]
                    for m in range(n_w):
                        padded[r + m] = line[m]
                    for m in range(r):
                        padded[r - 1 - m] = line[m + 1] if mirror else line[0]
                        padded[r + n_w + m] = line[n_w - 2 - m] if mirror else line[n_w - 1]
                    res = dst[i]
                    for m in range(n_w):
                        res[m] = t[0] * padded[m]
                    for q in range(1, k):
                        for m in range(n_w):
                            res[m] += t[q] * padded[m + q]

    # the mean is a sum over the plane: allowing the compiler to reassociate it lets it
    # vectorise (2.7× faster); the result differs from torch's mean in the last bits only
    @numba.njit(cache=True, nogil=True, boundscheck=False, fastmath={"reassoc", "nsz"})
    def stain_jitter(x, brightness, contrast, gamma, rows, out, start, stop):  # pragma: no cover
        # per channel of the samples rows[start:stop]: a = clip(b·x, 0, 1), then
        # clip(k·a + (1 − k)·mean(a), 0, 1) ** g (no power when g is 1). out may be x.
        n_px = x.shape[2] * x.shape[3]
        zero, one = x.dtype.type(0.0), x.dtype.type(1.0)
        for j in range(start, stop):
            b = rows[j]
            for c in range(x.shape[1]):
                src, dst = x[b, c].reshape(n_px), out[b, c].reshape(n_px)
                gain, k, g = brightness[j, c], contrast[j, c], gamma[j, c]
                total = zero
                for i in range(n_px):
                    v = min(max(src[i] * gain, zero), one)
                    dst[i] = v
                    total += v
                shift = (one - k) * x.dtype.type(total / n_px)
                for i in range(n_px):
                    dst[i] = min(max(dst[i] * k + shift, zero), one)
                if g != one:
                    for i in range(n_px):
                        dst[i] = dst[i] ** g

    # torch adds x + std·z with a fused multiply-add; allowing the contraction gives the
    # same numbers bit for bit
    @numba.njit(cache=True, nogil=True, boundscheck=False, fastmath={"contract"})
    def add_noise(x, z, std, rows, out, start, stop):  # pragma: no cover
        # out[rows[j]] = clip(x[rows[j]] + std[j]·z[j], 0, 1); z has one channel or x's
        n_px = x.shape[2] * x.shape[3]
        zero, one = x.dtype.type(0.0), x.dtype.type(1.0)
        shared = z.shape[1] == 1
        for j in range(start, stop):
            b, s = rows[j], std[j]
            for c in range(x.shape[1]):
                src, dst = x[b, c].reshape(n_px), out[b, c].reshape(n_px)
                noise = z[j, 0 if shared else c].reshape(n_px)
                for i in range(n_px):
                    dst[i] = min(max(src[i] + s * noise[i], zero), one)

    @jit
    def color_jitter(x, order, factors, luma, rows, out, start, stop):  # pragma: no cover
        # RGB samples rows[start:stop]: the adjustments order[j] (0 brightness, 1 contrast,
        # 2 saturation, 3 hue) with factors[j], each clipped to [0, 1], as the torch
        # functions of bioaug.augment.ops.color; identity factors are skipped. out may be x.
        n_px = x.shape[2] * x.shape[3]
        zero, one, two = x.dtype.type(0.0), x.dtype.type(1.0), x.dtype.type(2.0)
        six, twelve = x.dtype.type(6.0), x.dtype.type(12.0)
        tiny = np.finfo(x.dtype).tiny
        lr, lg, lb = luma[0], luma[1], luma[2]
        for j in range(start, stop):
            b = rows[j]
            src, dst = x[b].reshape(3, n_px), out[b].reshape(3, n_px)
            red, green, blue = dst[0], dst[1], dst[2]
            if dst.ctypes.data != src.ctypes.data:
                dst[:] = src
            for position in range(4):
                which = order[j, position]
                f = factors[j, which]
                if which == 0 and f != one:
                    for i in range(n_px):
                        red[i] = clip(red[i] * f, zero, one)
                        green[i] = clip(green[i] * f, zero, one)
                        blue[i] = clip(blue[i] * f, zero, one)
                elif which == 1 and f != one:
                    total = 0.0  # float64: a long sum in order
                    for i in range(n_px):
                        total += lr * red[i] + lg * green[i] + lb * blue[i]
                    shift = (one - f) * x.dtype.type(total / n_px)
                    for i in range(n_px):
                        red[i] = clip(f * red[i] + shift, zero, one)
                        green[i] = clip(f * green[i] + shift, zero, one)
                        blue[i] = clip(f * blue[i] + shift, zero, one)
                elif which == 2 and f != one:
                    g = one - f
                    for i in range(n_px):
                        y = lr * red[i] + lg * green[i] + lb * blue[i]
                        red[i] = clip(f * red[i] + g * y, zero, one)
                        green[i] = clip(f * green[i] + g * y, zero, one)
                        blue[i] = clip(f * blue[i] + g * y, zero, one)
                elif which == 3 and f != zero:
                    # hue rotation in closed form, phases 5, 3, 1 for red, green, blue
                    offset_r = six * f + x.dtype.type(5.0) + twelve
                    offset_g = six * f + x.dtype.type(3.0) + twelve
                    offset_b = six * f + one + twelve
                    for i in range(n_px):
                        r, gr, bl = red[i], green[i], blue[i]
                        mx = max(max(r, gr), bl)
                        d = mx - min(min(r, gr), bl)
                        if mx == r:
                            h6 = gr - bl
                        elif mx == gr:
                            h6 = bl - r + two * d
                        else:
                            h6 = r - gr + x.dtype.type(4.0) * d
                        h6 = h6 / max(d, tiny)
                        red[i] = hue_channel(h6, offset_r, mx, d, zero, one, two, six)
                        green[i] = hue_channel(h6, offset_g, mx, d, zero, one, two, six)
                        blue[i] = hue_channel(h6, offset_b, mx, d, zero, one, two, six)

    return {"warp": warp, "blur": blur, "stain_jitter": stain_jitter, "add_noise": add_noise,
            "color_jitter": color_jitter}


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
    return _kernels() is not None


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


def run(name: str, n: int, *args: Any) -> None:
    """Call kernel ``name`` on items ``[0, n)`` (its last two arguments), split between
    threads by :func:`parallel`."""
    kernel = _kernels()[name]  # type: ignore[index]
    arrays = [a.numpy() if isinstance(a, Tensor) else a for a in args]
    parallel(lambda start, stop: kernel(*arrays, start, stop), n)
