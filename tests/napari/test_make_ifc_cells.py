"""The bundled real cells are the cells the generator picks from the shared data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bioaug.napari.make_ifc_cells import PER_PHASE, pick
from bioaug.napari.samples import ifc_cells_arrays


def test_pick_takes_a_few_of_each_phase() -> None:
    table = pd.DataFrame({"phase": ["a"] * 20 + ["b"] * 3})
    rows = pick(table, per_phase=5)
    assert list(table.loc[rows, "phase"].value_counts().sort_index()) == [5, 3]
    assert list(rows) == sorted(rows) and list(pick(table, per_phase=5)) == list(rows)
    assert PER_PHASE * 7 <= 50


def test_the_bundled_cells_are_the_source_cells(real_data: Path) -> None:
    from bioaug.napari.make_ifc_cells import pick

    source = real_data / "ifc-cellcycle"
    images, _, obs = ifc_cells_arrays()
    table = pd.read_csv(source / "cells.csv")
    assert list(table.loc[pick(table), "cell"]) == list(obs["cell"])
    with np.load(source / "cells.npz") as z:
        np.testing.assert_array_equal(z["images"][obs["cell"].to_numpy()], images)
    assert list(table.loc[obs["cell"], "phase"]) == list(obs["phase"])
