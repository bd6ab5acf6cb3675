"""Regenerate ``example_cells.npy``: a synthetic 3-channel fluorescence field (DAPI, Tubulin,
Actin), 128×128, uint16, used by ``bioaug protocol preview`` when no input is given.

Run ``python bioaug/assets/make_example_cells.py``; the output is deterministic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

SIZE = 128
OUT = Path(__file__).with_name("example_cells.npy")


def make(seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    dapi = np.zeros((SIZE, SIZE))
    tub = np.zeros((SIZE, SIZE))
    actin = np.zeros((SIZE, SIZE))
    centres = [(40, 42), (88, 36), (64, 92), (22, 100), (104, 104)]
    for cy, cx in centres:
        cy += rng.uniform(-4, 4)
        cx += rng.uniform(-4, 4)
        angle = rng.uniform(0, np.pi)
        ca, sa = np.cos(angle), np.sin(angle)
        u = (xx - cx) * ca + (yy - cy) * sa
        v = -(xx - cx) * sa + (yy - cy) * ca
        # nucleus: an ellipse with chromatin texture
        rn = np.sqrt((u / rng.uniform(8, 11)) ** 2 + (v / rng.uniform(6, 8)) ** 2)
        nucleus = 1 / (1 + np.exp((rn - 1) * 12))
        dapi += nucleus * (0.7 + 0.3 * rng.random())
        # cell body: a larger irregular blob
        theta = np.arctan2(v, u)
        wobble = 1 + 0.15 * np.sin(3 * theta + rng.uniform(0, 6)) + 0.08 * np.sin(5 * theta)
        rc = np.sqrt((u / 22) ** 2 + (v / 17) ** 2) / wobble
        body = 1 / (1 + np.exp((rc - 1) * 10))
        # microtubules: radial streaks from the centre, fading outward
        streaks = 0.5 + 0.5 * np.cos(theta * rng.integers(14, 22) + rng.uniform(0, 6))
        tub += body * (1 - nucleus) * (0.35 + 0.65 * streaks ** 3) * np.exp(-rc)
        # actin: bright cortex ring plus a few straight stress fibres
        cortex = np.exp(-((rc - 0.95) / 0.08) ** 2)
        fibres = np.exp(-((u * np.sin(0.3) + v * np.cos(0.3)) % 6 - 3) ** 2) * body * 0.3
        actin += cortex * 0.9 + fibres
    tex = ndimage.gaussian_filter(rng.random((SIZE, SIZE)), 1.2)
    dapi *= 0.75 + 0.5 * (tex - tex.min()) / (tex.max() - tex.min())
    image = np.stack([dapi, tub, actin]).clip(0, None)
    image = ndimage.gaussian_filter(image, (0, 0.8, 0.8))
    image /= image.reshape(3, -1).max(axis=1)[:, None, None]
    background = 0.02 + 0.01 * rng.random((3, SIZE, SIZE))
    noisy = rng.poisson((image * 0.9 + background) * 400) / 400.0
    return (noisy.clip(0, 1) * 65535).astype(np.uint16)


if __name__ == "__main__":
    np.save(OUT, make())
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
