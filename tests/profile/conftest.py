"""Synthetic plates with DMSO controls, MoA signal and per-plate affine batch effects."""

from __future__ import annotations

import numpy as np
import pandas as pd


def plates_with_batch_effect(n_plates: int = 4, n_moa: int = 4, compounds_per_moa: int = 2,
                             controls_per_plate: int = 6, cells: int = 8, dims: int = 6,
                             signal: float = 1.0, shift: float = 6.0, scale: float = 2.5,
                             seed: int = 0) -> tuple[np.ndarray, pd.DataFrame, dict]:
    """Cells on plates; every plate applies its own ``x ↦ A_p x + b_p`` to the cell features.

    Each compound sits on two plates (one batch per plate), so NSCB has references; the MoA
    signal is small next to the plate effect, which correction must remove.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_moa, dims)) * signal
    affine = {}
    for p in range(n_plates):
        a = np.eye(dims) + rng.normal(size=(dims, dims)) * 0.3
        a *= rng.uniform(1.0, scale)
        affine[p] = (a, rng.normal(size=dims) * shift)
    rows, feats = [], []
    w = 0

    def add(plate: int, compound: str, moa: str, centre: np.ndarray) -> None:
        nonlocal w
        a, b = affine[plate]
        for _ in range(cells):
            z = centre + rng.normal(size=dims) * 0.5
            feats.append(a @ z + b)
            rows.append({"plate": f"P{plate}", "well": f"W{w:03d}", "compound": compound,
                         "concentration": "1.0", "batch": f"B{plate}", "moa": moa})
        w += 1

    for p in range(n_plates):
        for _ in range(controls_per_plate):
            add(p, "DMSO", "DMSO", np.zeros(dims))
    for m in range(n_moa):
        for c in range(compounds_per_moa):
            plates = rng.choice(n_plates, size=2, replace=False)
            for p in plates:
                add(int(p), f"cmp{m}_{c}", f"MoA{m}", centres[m])
    obs = pd.DataFrame(rows)
    obs.index = [str(i) for i in range(len(obs))]
    return np.asarray(feats), obs, affine
