"""Regenerate ``ifc_cells.npz``: 49 real Jurkat cells imaged in flow (7 per cell-cycle phase).

The cells are taken from ``../shared/data/real/ifc-cellcycle`` (Blasi et al. 2016, Nat Commun
7:10256; BSD-3, see ``ifc_cells.LICENSE``), seven per phase, chosen by a fixed seed. Run
``python bioaug/napari/make_ifc_cells.py [SOURCE_DIR]``; the output is deterministic.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

PER_PHASE = 7
SEED = 0
OUT = Path(__file__).with_name("ifc_cells.npz")
SOURCE = Path(__file__).resolve().parents[3] / "shared" / "data" / "real" / "ifc-cellcycle"


def pick(table: pd.DataFrame, per_phase: int = PER_PHASE, seed: int = SEED) -> np.ndarray:
    """Rows of ``table``: ``per_phase`` cells of each phase (all of a rarer one), sorted."""
    rng = np.random.default_rng(seed)
    rows = [rng.choice(group.index.to_numpy(), size=min(per_phase, len(group)), replace=False)
            for _, group in table.groupby("phase", sort=True)]
    return np.sort(np.concatenate(rows))


def make(source: Path = SOURCE) -> Path:
    table = pd.read_csv(source / "cells.csv")
    with np.load(source / "cells.npz") as z:
        images, channels = z["images"], z["channels"]
    rows = pick(table)
    cells = table.loc[rows, "cell"].to_numpy()
    np.savez_compressed(OUT, images=images[cells], channels=channels,
                        phase=table.loc[rows, "phase"].to_numpy().astype(str), cell=cells)
    return OUT


if __name__ == "__main__":
    print(make(Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE))
