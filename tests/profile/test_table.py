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


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_missing_metadata_stays_missing(tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    a = _profiles()
    a.obs["moa"] = pd.Categorical(["DMSO", None, "y"])
    frame = to_frame(a)
    assert frame["Metadata_moa"].isna().tolist() == [False, True, False]
    back = read_table(write_table(a, tmp_path / f"p{suffix}"))
    assert back.obs["moa"].isna().tolist() == [False, True, False]


def test_the_format_and_the_suffix_agree(tmp_path):
    with pytest.raises(ConfigError, match=r"a csv table's name ends in \.csv, not \.parquet"):
        write_table(_profiles(), tmp_path / "p.parquet", "csv")
    with pytest.raises(ConfigError, match=r"ends in \.parquet or \.pq, not \.csv"):
        write_table(_profiles(), tmp_path / "p.csv", "parquet")
    assert not list(tmp_path.iterdir())
    path = write_table(_profiles(), tmp_path / "p.csv")  # no format: the suffix says csv
    assert pd.read_csv(path).shape == (3, 6)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_table_of_corrected_profiles_says_so(tmp_path, suffix):
    from bioaug.profile import profile
    from tests.profile.conftest import plates_with_batch_effect

    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    x, obs, _ = plates_with_batch_effect(cells=2)
    cells = ad.AnnData(obs=obs)
    cells.obsm["X_bioaug"] = x.astype(np.float32)
    assert "Metadata_bioaug_corrected" not in to_frame(cells).columns
    profiles = profile(cells, {"steps": ["center", "standardize"]})
    frame = to_frame(profiles)
    assert set(frame["Metadata_bioaug_corrected"]) == {"center,standardize"}
    assert "Metadata_bioaug_corrected" not in to_frame(profiles, "X_bioaug_uncorrected")
    back = read_table(write_table(profiles, tmp_path / f"p{suffix}"))
    assert "bioaug_corrected" not in back.obs.columns
    assert list(back.uns["bioaug"]["corrected"]["X_bioaug"]) == ["center", "standardize"]
    with pytest.raises(DataError, match=r"corrected already \(center → standardize\)"):
        profile(back)
    frame.loc[0, "Metadata_bioaug_corrected"] = "sphere"
    with pytest.raises(DataError, match="names different corrections in different rows"):
        from_frame(frame)
