"""Profiles as pycytominer-style tables and back."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from bioaug.errors import ConfigError, DataError
from bioaug.profile.table import from_frame, read_table, to_frame, write_table


def _profiles():
    obs = pd.DataFrame({"plate": ["P1", "P1", "P2"], "well": ["A01", "A02", "A01"],
                        "moa": ["DMSO", "x", "y"], "n_cells": [10, 12, 9]},
                       index=["W0", "W1", "W2"])
    a = ad.AnnData(obs=obs)
    a.obsm["X_bioaug"] = np.arange(6, dtype=np.float32).reshape(3, 2)
    return a


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip(tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    path = write_table(_profiles(), tmp_path / f"p{suffix}")
    frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    assert list(frame.columns) == ["Metadata_plate", "Metadata_well", "Metadata_moa",
                                   "Metadata_n_cells", "X_bioaug_0", "X_bioaug_1"]
    back = read_table(path)
    assert list(back.obs.columns) == ["plate", "well", "moa", "n_cells"]
    np.testing.assert_array_equal(back.obsm["X_bioaug"], _profiles().obsm["X_bioaug"])
    assert back.obs["moa"].tolist() == ["DMSO", "x", "y"]


def test_pycytominer_names_are_lower_cased():
    frame = pd.DataFrame({"Metadata_Plate": ["a"], "Metadata_Well": ["B02"],
                          "Cells_AreaShape_Area": [1.0], "Nuclei_Intensity": [2]})
    a = from_frame(frame)
    assert list(a.obs.columns) == ["plate", "well"]
    assert a.obsm["X_bioaug"].shape == (1, 2)


def test_bad_tables():
    with pytest.raises(DataError, match="no Metadata_"):
        from_frame(pd.DataFrame({"f": [1.0]}))
    with pytest.raises(DataError, match="not numeric: note"):
        from_frame(pd.DataFrame({"Metadata_a": ["x"], "f": [1.0], "note": ["t"]}))
    with pytest.raises(DataError, match=r"NaN or infinite values in 1 of 2 rows"):
        from_frame(pd.DataFrame({"Metadata_a": ["x", "y"], "f": [1.0, np.inf]}))
    with pytest.raises(DataError, match="no feature columns"):
        from_frame(pd.DataFrame({"Metadata_a": ["x"]}))
    with pytest.raises(ConfigError, match="cannot tell the table format"):
        write_table(_profiles(), "p.xlsx")
    with pytest.raises(DataError, match="'X_pca' not found"):
        to_frame(_profiles(), "X_pca")
