"""Uneven illumination of microscope fields: the illumination function of a plate.

CellProfiler's CorrectIlluminationCalculate with a smoothed mean (used for BBBC021 by Ljosa
et al. 2013 and DeepProfiler): the mean image of a plate's fields, per channel, smoothed
with a Gaussian of ``sigma_frac`` × the field's longer side and normalised to mean 1;
fields are divided by it. Smoothing runs on a block-averaged copy of the mean image (8×
smaller a side, at least 16 blocks) and is interpolated back, which is fast at any field
size; the block sums are what a plate scan accumulates (:func:`block_sum`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: What each illumination mode does (recorded in the store header).
ILLUM_METHODS: dict[str, str] = {
    "given": "the illumination functions given with the data (Illum<Ch> columns); fields "
             "divided by them",
    "compute": "smoothed mean image per plate and channel, normalised to mean 1; fields "
               "divided by it",
    "none": "no illumination correction",
}


def illumination_function(mean_image: np.ndarray, sigma_frac: float = 0.1,
                          reduce: int = 8) -> np.ndarray:
    """Smoothed mean image normalised to mean 1, per channel: ``(C, H, W)`` float32.

    Smoothing runs on a ``reduce``× block-averaged copy (sigma scaled accordingly) and is
    interpolated back, which is fast at any field size.
    """
    mean_image = np.asarray(mean_image, dtype=np.float64)
    _, h, w = mean_image.shape
    f = block_factor(h, w, reduce)
    return illumination_from_blocks(block_sum(mean_image, f) / (f * f), (h, w), f, sigma_frac)


def block_factor(h: int, w: int, reduce: int = 8) -> int:
    """The block size used to reduce a field before smoothing (at least 16 blocks a side)."""
    return max(1, min(reduce, h // 16, w // 16))


def block_sum(image: np.ndarray, f: int) -> np.ndarray:
    """Sums over ``f``×``f`` blocks (the remainder rows/columns are left out): float64."""
    c, h, w = image.shape
    hs, ws = h // f, w // f
    return image[:, :hs * f, :ws * f].reshape(c, hs, f, ws, f).sum((2, 4), dtype=np.float64)


def illumination_from_blocks(small: np.ndarray, shape: tuple[int, int], f: int,
                             sigma_frac: float = 0.1) -> np.ndarray:
    """:func:`illumination_function` from the block means of the mean image."""
    h, w = shape
    hs, ws = small.shape[1:]
    sigma = max(sigma_frac * max(h, w) / f, 0.5)
    # odd (point) reflection continues the gradient across the border, so a vignette is
    # not flattened at the edges as plain mirroring would do
    pad = int(np.ceil(4 * sigma)) + 1
    padded = np.pad(small, ((0, 0), (pad, pad), (pad, pad)), mode="reflect", reflect_type="odd")
    smooth = ndimage.gaussian_filter(padded, (0, sigma, sigma), mode="nearest")
    ay = _interp_matrix(h, hs, f, pad)
    ax = _interp_matrix(w, ws, f, pad)
    full = np.einsum("ij,cjk,lk->cil", ay, smooth, ax, optimize=True)
    floor = 1e-3 * np.maximum(full.mean(axis=(1, 2), keepdims=True), 1e-12)
    full = np.maximum(full, floor)
    full /= full.mean(axis=(1, 2), keepdims=True)
    return full.astype(np.float32)


def _interp_matrix(n_out: int, n_in: int, f: int, pad: int) -> np.ndarray:
    """Linear interpolation from block centres (``f`` pixels, ``pad`` cells of padding)."""
    pos = (np.arange(n_out) - (f - 1) / 2.0) / f + pad
    lo = np.clip(np.floor(pos).astype(np.int64), 0, n_in + 2 * pad - 2)
    t = pos - lo
    m = np.zeros((n_out, n_in + 2 * pad))
    m[np.arange(n_out), lo] = 1 - t
    m[np.arange(n_out), lo + 1] = t
    return m


__all__ = ["ILLUM_METHODS", "block_factor", "block_sum", "illumination_from_blocks",
           "illumination_function"]
