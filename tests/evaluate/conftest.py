"""Shared synthetic embeddings for the evaluation tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def blobs(n_per: int, k: int, dims: int, spread: float, seed: int = 0
          ) -> tuple[np.ndarray, np.ndarray]:
    """``k`` Gaussian blobs of ``n_per`` points; centres ``spread`` apart on average."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dims)) * spread
    y = np.repeat(np.arange(k), n_per)
    x = centres[y] + rng.normal(size=(len(y), dims))
    return x.astype(np.float32), y


def bbbc021_like(n_moa: int = 4, compounds_per_moa: int = 3, concs: int = 2, wells: int = 2,
                 cells: int = 5, dims: int = 16, spread: float = 10.0, seed: int = 0
                 ) -> tuple[np.ndarray, pd.DataFrame]:
    """Cells with plate/well/compound/concentration/batch/moa; MoA = a Gaussian blob.

    Each compound sits in its own batch pair so NSCB has admissible references.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_moa, dims)) * spread
    rows, feats = [], []
    w = 0
    for m in range(n_moa):
        for c in range(compounds_per_moa):
            for k in range(concs):
                for r in range(wells):
                    batch = f"Week{c % 3 + 1}"
                    for _ in range(cells):
                        rows.append({"plate": f"{batch}_P{r}", "well": f"W{w:03d}",
                                     "compound": f"cmp{m}_{c}", "concentration": 0.1 * (k + 1),
                                     "batch": batch, "moa": f"MoA{m}"})
                        feats.append(centres[m] + rng.normal(size=dims))
                    w += 1
    obs = pd.DataFrame(rows)
    obs.index = obs.index.astype(str)
    return np.asarray(feats, dtype=np.float32), obs


@pytest.fixture
def blob_data() -> tuple[np.ndarray, np.ndarray]:
    return blobs(60, 4, 16, spread=8.0)
