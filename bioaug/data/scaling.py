"""Intensity scaling of microscope fields: per plate and channel percentiles to [0, 1].

A plate's percentiles are estimated from the raw values at :data:`N_SAMPLES` fixed pixel
positions of every field (:func:`sample_positions`: a function of a fixed seed and the
field size only, so what a store holds never depends on plate, folder or file names),
divided by the illumination function at those positions. :func:`scale_intensity` maps the
low percentile to 0 and the high one to 1, clipped; :func:`to_uint16` stores the result
as ``round(x · 65535)`` ([0, 1] floats keep 16-bit precision, half the size of float32).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

N_SAMPLES = 4096
#: Seed of the sampled pixel positions: fixed, so that names never change a store.
SAMPLE_SEED = 0


def scale_intensity(image: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Map ``lo`` → 0 and ``hi`` → 1 per channel, clipped: float32 in [0, 1]."""
    lo = np.asarray(lo, dtype=np.float32)[:, None, None]
    span = np.maximum(np.asarray(hi, dtype=np.float32)[:, None, None] - lo, 1e-6)
    out = (image.astype(np.float32) - lo) / span
    return np.clip(out, 0.0, 1.0, out=out)


def percentile_bounds(values: np.ndarray, percentiles: Sequence[float]
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel low and high ``percentiles`` of ``(C, n)`` sampled values."""
    return (np.percentile(values, percentiles[0], axis=1),
            np.percentile(values, percentiles[1], axis=1))


def to_uint16(x: np.ndarray) -> np.ndarray:
    """[0, 1] values (clipped) as ``round(x · 65535)`` uint16, how stores keep them."""
    return np.rint(np.clip(x, 0.0, 1.0) * 65535.0).astype(np.uint16)


def sample_positions(shape: tuple[int, int], n: int = N_SAMPLES, seed: int = SAMPLE_SEED
                     ) -> np.ndarray:
    """``n`` distinct flat pixel positions of an ``H×W`` field, sorted: a function of the
    seed and the field size only (never of a plate, folder or file name)."""
    h, w = int(shape[0]), int(shape[1])
    rng = np.random.default_rng([int(seed), h, w])
    return np.sort(rng.choice(h * w, size=min(n, h * w), replace=False))


__all__ = ["N_SAMPLES", "SAMPLE_SEED", "percentile_bounds", "sample_positions",
           "scale_intensity", "to_uint16"]
