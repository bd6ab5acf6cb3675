"""The compiled CPU kernels themselves: plain numba functions over numpy arrays.

This module is imported by :mod:`bioaug.augment.native` the first time a kernel runs (so
``import bioaug`` and ``import bioaug.augment`` never import numba); each function is
compiled on its first call and cached on disk. Callers use the typed wrappers of
:mod:`bioaug.augment.native`, which check the arrays and split the batch between threads;
every kernel here takes the item range ``[start, stop)`` it works on as its last two
arguments and writes into ``out``.

Kernels are compiled without bounds checks, for speed. With ``BIOAUG_KERNEL_DEBUG=1`` in the
environment when this module is first imported they are compiled with bounds checks (an
index out of range raises ``IndexError`` instead of reading or writing stray memory) and
without the disk cache, so that a debug build never replaces the fast one there.
"""

from __future__ import annotations

import numba
import numpy as np

from bioaug.augment.native import kernel_debug

#: Whether these kernels were compiled with bounds checks (see the module docstring).
DEBUG: bool = kernel_debug()

_OPTIONS = {"cache": not DEBUG, "nogil": True, "boundscheck": DEBUG}

jit = numba.njit(**_OPTIONS)


@jit
def clip(v: float, zero: float, one: float) -> float:  # pragma: no cover - compiled
    """``v`` clamped to ``[zero, one]`` (bounds given in the image's dtype)."""
    return min(max(v, zero), one)


@jit
def hue_channel(h6: float, offset: float, mx: float, d: float, zero: float, one: float,
                two: float, six: float) -> float:  # pragma: no cover - compiled
    """One channel of the hue rotation: ``max − (max − min)·T((h6 + offset) mod 6)`` with
    the trapezoid ``T(k) = clip(2 − |k − 2|, 0, 1)``; constants in the image's dtype."""
    k = h6 + offset
    k = k - np.floor(k / six) * six
    return clip(mx - clip(two - abs(k - two), zero, one) * d, zero, one)


@jit
def warp(x: np.ndarray, y0: np.ndarray, y1: np.ndarray, gy: np.ndarray, wy: np.ndarray,
         x0: np.ndarray, x1: np.ndarray, wx: np.ndarray, swapped: np.ndarray,
         out: np.ndarray, start: int, stop: int) -> None:  # pragma: no cover - compiled
    """Bilinear resampling of the samples ``start … stop − 1`` of ``x`` ``(B, C, H, W)`` for
    ``V`` views at once: ``out[v, b, c, r, s]`` blends rows ``y0[v, b, r]``, ``y1[v, b, r]``
    (weights ``gy``, ``wy``), then columns ``x0[v, b, s]``, ``x1[v, b, s]`` (weight ``wx``);
    transposed where ``swapped[v, b]``. Each input plane is read once for all views; whole
    rows are blended first (which the compiler vectorises). Arithmetic stays in x's dtype.
    """
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
def blur(x: np.ndarray, taps: np.ndarray, rows: np.ndarray, out: np.ndarray, start: int,
         stop: int) -> None:  # pragma: no cover - compiled
    """Separable blur of the samples ``rows[start:stop]`` of ``x``, sample ``rows[j]`` with
    its own 1-D kernel ``taps[j]``; borders reflect (mirror without repeating the edge), or
    are replicated when the kernel is wider than the image. ``out`` may be ``x``."""
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


# The mean is a sum over the plane: letting the compiler reassociate it lets it vectorise
# (2.7× faster); the result differs from torch's mean in the last bits only.
@numba.njit(**_OPTIONS, fastmath={"reassoc", "nsz"})
def stain_jitter(x: np.ndarray, brightness: np.ndarray, contrast: np.ndarray,
                 gamma: np.ndarray, rows: np.ndarray, out: np.ndarray, start: int,
                 stop: int) -> None:  # pragma: no cover - compiled
    """Per channel of the samples ``rows[start:stop]`` (factors ``[j, c]``):
    ``a = clip(b·x, 0, 1)``, then ``clip(k·a + (1 − k)·mean(a), 0, 1) ** g`` (no power
    when ``g`` is 1). ``out`` may be ``x``."""
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


# torch adds x + std·z with a fused multiply-add; allowing the contraction gives the same
# numbers bit for bit.
@numba.njit(**_OPTIONS, fastmath={"contract"})
def add_noise(x: np.ndarray, z: np.ndarray, std: np.ndarray, rows: np.ndarray,
              out: np.ndarray, start: int, stop: int) -> None:  # pragma: no cover - compiled
    """``out[rows[j]] = clip(x[rows[j]] + std[j]·z[j], 0, 1)`` for ``j`` in
    ``[start, stop)``; ``z`` has one channel (shared) or x's. ``out`` may be ``x``."""
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
def color_jitter(x: np.ndarray, order: np.ndarray, factors: np.ndarray, luma: np.ndarray,
                 rows: np.ndarray, out: np.ndarray, start: int,
                 stop: int) -> None:  # pragma: no cover - compiled
    """RGB samples ``rows[start:stop]``: the adjustments ``order[j]`` (0 brightness,
    1 contrast, 2 saturation, 3 hue) with ``factors[j]``, each clipped to [0, 1], as the
    torch functions of :mod:`bioaug.augment.ops.color`; identity factors are skipped.
    ``out`` may be ``x``."""
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
