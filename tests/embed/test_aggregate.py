from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from bioaug.embed import aggregate
from bioaug.embed.aggregate import group_mean, group_median
from bioaug.errors import DataError


def cells_adata() -> ad.AnnData:
    # compound a: well 1 (2 cells, mean 1), well 2 (1 cell, 5), well 3 (1 cell, 2) → median 2
    # compound b: well 4 (2 cells, mean 10)
    obs = pd.DataFrame({
        "plate": ["P1", "P1", "P1", "P2", "P2", "P2", "P2"],
        "well": ["A01", "A01", "A02", "A01", "B01", "B01", "B01"][:7],
        "batch": ["W1", "W1", "W1", "W2", "W2", "W2", "W2"],
        "compound": ["a", "a", "a", "a", "b", "b", "b"],
        "concentration": [1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0],
        "moa": ["X", "X", "X", "X", "Y", "Y", "Y"],
    }, index=[str(i) for i in range(7)])
    a = ad.AnnData(obs=obs)
    a.obsm["X_bioaug"] = np.array([[0, 0], [2, 2], [5, 5], [2, 2], [9, 9], [10, 10], [11, 11]],
                                  dtype=np.float32)
    a.uns["bioaug"] = {"kind": "raw"}
    return a


def test_well_means():
    wells = aggregate(cells_adata(), "well")
    assert wells.n_obs == 4
    got = dict(zip(wells.obs["plate"].astype(str) + "/" + wells.obs["well"].astype(str),
                   wells.obsm["X_bioaug"][:, 0], strict=True))
    assert got == {"P1/A01": 1.0, "P1/A02": 5.0, "P2/A01": 2.0, "P2/B01": 10.0}
    assert sorted(wells.obs["n_cells"].tolist()) == [1, 1, 2, 3]
    assert wells.uns["bioaug"]["aggregate"]["level"] == "well"
    assert wells.uns["bioaug"]["kind"] == "raw"


def test_treatment_medians_of_well_means():
    t = aggregate(cells_adata(), "treatment")
    assert t.n_obs == 2
    row = {c: i for i, c in enumerate(t.obs["compound"].astype(str))}
    assert t.obsm["X_bioaug"][row["a"]].tolist() == [2.0, 2.0]  # median of 1, 5, 2
    assert t.obsm["X_bioaug"][row["b"]].tolist() == [10.0, 10.0]
    assert t.obs["batches"].astype(str).tolist()[row["a"]] == "W1;W2"
    assert t.obs["n_wells"].tolist()[row["a"]] == 3 and t.obs["n_cells"].tolist()[row["a"]] == 4
    assert t.obs["moa"].astype(str).tolist() == ["X", "Y"]


def test_group_helpers():
    codes = np.array([1, 0, 1, 1])
    x = np.array([[1.0], [7.0], [3.0], [8.0]])
    np.testing.assert_allclose(group_mean(x, codes), [[7.0], [4.0]])
    np.testing.assert_allclose(group_median(x, codes), [[7.0], [3.0]])


def test_bad_level_and_missing_columns():
    with pytest.raises(DataError, match="unknown aggregation level 'plate'"):
        aggregate(cells_adata(), "plate")
    a = cells_adata()
    del a.obs["well"]
    with pytest.raises(DataError, match="has no 'well' column"):
        aggregate(a, "well")
    with pytest.raises(DataError, match="'X_other' not found; obsm holds: X_bioaug"):
        aggregate(cells_adata(), "well", rep="X_other")


@pytest.mark.parametrize("level", ["well", "treatment"])
def test_missing_labels_stay_missing_when_aggregated(level):
    cells = cells_adata()
    moa = cells.obs["moa"].astype(object)
    moa[cells.obs["compound"] == "b"] = np.nan  # compound b has no annotated MoA
    cells.obs["moa"] = moa.astype("category")  # as bioaug embed writes it
    out = aggregate(cells, level)
    assert list(out.obs["moa"].cat.categories) == ["X"]
    is_b = (out.obs["compound"] == "b").to_numpy()
    assert out.obs["moa"].isna().to_numpy().tolist() == is_b.tolist()
