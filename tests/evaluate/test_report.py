from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from bioaug.errors import DataError
from bioaug.evaluate import evaluate, format_table, summary_rows
from tests.evaluate.conftest import bbbc021_like, blobs


def make_adata(x: np.ndarray, obs: pd.DataFrame, rep: str = "X_bioaug") -> ad.AnnData:
    obs = obs.copy()
    obs.index = [str(i) for i in range(len(obs))]
    a = ad.AnnData(obs=obs)
    a.obsm[rep] = x
    return a


@pytest.fixture(scope="module")
def bbbc_report(tmp_path_factory):
    x, obs = bbbc021_like(n_moa=4, compounds_per_moa=3, spread=10.0)
    out = tmp_path_factory.mktemp("report")
    return evaluate(make_adata(x, obs), label="moa", out=out, umap_points=200), out


def test_report_structure_and_counts(bbbc_report):
    report, _ = bbbc_report
    n = 4 * 3 * 2 * 2 * 5
    assert report["clustering"]["leiden"]["ami"] > 0.95
    assert report["clustering"]["kmeans"]["ami"] > 0.95
    assert report["clustering"]["leiden"]["n_items"] == n
    assert report["clustering"]["kmeans"]["n_classes"] == 4
    assert report["linear"]["accuracy"] == 1.0
    assert set(report["linear"]["per_class"]) == {f"MoA{i}" for i in range(4)}
    assert report["linear"]["split"]["grouped_by"] == "compound"
    assert report["profiling"]["nsc"]["accuracy"] == 1.0
    assert report["profiling"]["nsc"]["n_items"] == 24
    assert report["profiling"]["nscb"]["n_classes"] == 4
    for stage in ("pca", "neighbors", "leiden", "kmeans", "linear", "plots", "total"):
        assert stage in report["timings"]


def test_report_files_written(bbbc_report):
    report, out = bbbc_report
    saved = json.loads((out / "report.json").read_text())
    assert saved["clustering"]["leiden"]["ami"] == pytest.approx(
        report["clustering"]["leiden"]["ami"])
    md = (out / "report.md").read_text()
    assert "Leiden AMI" in md and "NSCB" in md and "MoA3" in md
    for name in ("umap_label.png", "umap_batch.png", "confusion.png",
                 "per_class_accuracy.png", "nsc_per_moa.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    table = format_table(summary_rows(report))
    assert "NSC 1-NN accuracy" in table and "24 of 24 treatments" in table


def test_natural_labels_without_profiling():
    x, y = blobs(30, 3, 8, spread=8.0)
    obs = pd.DataFrame({"label": [f"class{i}" for i in y], "split": "train"})
    report = evaluate(make_adata(x, obs), label="label", seed=1)
    assert report["profiling"]["nsc"] is None and report["profiling"]["nscb"] is None
    assert "missing columns: plate, well, compound" in report["profiling"]["skipped"]
    assert report["linear"]["split"]["grouped_by"] is None
    assert report["clustering"]["leiden"]["ami"] > 0.95
    assert report["figures"] == {}


def test_items_without_label_are_left_out_and_counted():
    x, y = blobs(30, 3, 8, spread=8.0)
    obs = pd.DataFrame({"label": [f"c{i}" for i in y]})
    obs.loc[obs.index[:5], "label"] = np.nan
    report = evaluate(make_adata(x, obs), label="label", profiling_mode="off")
    assert report["input"]["n_items"] == 85
    assert report["input"]["n_items_without_label"] == 5


def test_missing_label_lists_columns():
    x, y = blobs(10, 2, 4, spread=8.0)
    a = make_adata(x, pd.DataFrame({"label": y.astype(str), "plate": "p"}))
    with pytest.raises(DataError, match=r"label column 'moa' not found.*label, plate"):
        evaluate(a, label="moa")
    with pytest.raises(DataError, match="did you mean 'label'"):
        evaluate(a, label="lable")


def test_single_class_is_an_error():
    x, _ = blobs(10, 2, 4, spread=8.0)
    a = make_adata(x, pd.DataFrame({"label": ["only"] * 20}))
    with pytest.raises(DataError, match=r"1 class .*only.*at least two"):
        evaluate(a, label="label")


def test_nan_embedding_is_an_error():
    x, y = blobs(10, 2, 4, spread=8.0)
    x[3, 1] = np.nan
    a = make_adata(x, pd.DataFrame({"label": y.astype(str)}))
    with pytest.raises(DataError, match=r"NaN or infinite values in 1 of 20 rows \(first: 3\)"):
        evaluate(a, label="label")


def test_missing_rep_lists_obsm_keys(tmp_path):
    x, y = blobs(10, 2, 4, spread=8.0)
    a = make_adata(x, pd.DataFrame({"label": y.astype(str)}))
    a.obsm["X_bioaug_fused"] = x
    path = tmp_path / "cells.h5ad"
    a.write_h5ad(path)
    with pytest.raises(DataError, match=r"'X_umap' not found; obsm holds: X_bioaug, "
                                        r"X_bioaug_fused") as exc:
        evaluate(path, label="label", rep="X_umap")
    assert str(path) in str(exc.value)


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"no \.h5ad file"):
        evaluate(tmp_path / "nope.h5ad")


def test_exclude_labels():
    x, y = blobs(30, 3, 8, spread=8.0)
    obs = pd.DataFrame({"label": [f"c{i}" for i in y]})
    report = evaluate(make_adata(x, obs), label="label", exclude=["c0"])
    assert report["input"]["n_items"] == 60 and report["input"]["n_items_excluded"] == 30
    assert report["clustering"]["n_classes"] == 2
    with pytest.raises(DataError, match="fewer than two 'label' classes remain"):
        evaluate(make_adata(x, obs), label="label", exclude=["c0", "c1"])
