from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scanpy as sc

from bioaug.embed import embed, write_h5ad
from bioaug.embed.io import sanitize_uns


def test_round_trip_and_scanpy_neighbors(tiny_run, tiny_store, tmp_path):
    cells = embed([tiny_run, tiny_run], tiny_store, device="cpu")
    path = write_h5ad(cells, tmp_path / "cells.h5ad")
    back = ad.read_h5ad(path)
    assert back.n_obs == 48
    assert set(back.obsm) == {"X_bioaug", "X_bioaug_0", "X_bioaug_1", "X_bioaug_fused"}
    np.testing.assert_array_equal(back.obsm["X_bioaug"], cells.obsm["X_bioaug"])
    assert back.obs["moa"].cat.categories.tolist() == ["MoA 0", "MoA 1", "MoA 2"]
    assert back.uns["bioaug"]["models"]["0"]["method"] == "simclr"
    sc.pp.neighbors(back, use_rep="X_bioaug", n_neighbors=5)
    assert back.obsp["connectivities"].shape == (48, 48)
    assert not list(tmp_path.glob(".cells.h5ad.*"))  # no temporary left behind


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    a = ad.AnnData(obs={"x": ["a", "b"]})
    a.obs_names = ["0", "1"]
    a.obsm["X_bioaug"] = np.zeros((2, 3), dtype=np.float32)
    path = write_h5ad(a, tmp_path / "cells.h5ad")
    before = path.read_bytes()

    def boom(self, filename, **kw):
        Path(filename).write_bytes(b"partial")
        raise OSError("simulated failure")

    monkeypatch.setattr(ad.AnnData, "write_h5ad", boom)
    with pytest.raises(OSError, match="simulated"):
        write_h5ad(a, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["cells.h5ad"]


def test_sanitize_uns():
    out = sanitize_uns({"a": None, "b": (1, 2), "c": ["x", "y"], "d": [1, "x", None],
                        "e": {"f": Path("/p")}, "g": []})
    assert out["a"] == ""
    assert out["b"].tolist() == [1, 2]
    assert out["c"].tolist() == ["x", "y"]
    assert out["d"] == '[1, "x", null]'
    assert out["e"] == {"f": "/p"}
    assert len(out["g"]) == 0


def test_write_h5ad_checks_the_space_first(tmp_path, monkeypatch):
    import shutil

    import pandas as pd

    from bioaug.errors import BioaugError

    a = ad.AnnData(obs=pd.DataFrame(index=[str(i) for i in range(100)]))
    a.obsm["X_bioaug"] = np.zeros((100, 512), dtype=np.float32)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=100 << 10))
    with pytest.raises(BioaugError, match=r"disk full: writing .*cells\.h5ad needs about"):
        write_h5ad(a, tmp_path / "cells.h5ad")
    assert list(tmp_path.iterdir()) == []  # HDF5 never started a file


@pytest.mark.parametrize("name", ["cells.parquet", "cells.csv", "cells"])
def test_an_anndata_is_only_written_under_an_h5ad_name(tmp_path, name):
    from bioaug.errors import ConfigError

    a = ad.AnnData(obs={"x": ["a", "b"]})
    a.obs_names = ["0", "1"]
    with pytest.raises(ConfigError, match=r"must end in \.h5ad"):
        write_h5ad(a, tmp_path / name)
    assert not list(tmp_path.iterdir())
