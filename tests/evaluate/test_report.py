from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from bioaug.errors import BioaugError, DataError
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
    assert "\nNSC " in table and "24 of 24 treatments" in table
    assert "MoA mAP" in table and "MoA retrieved" in table


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


def test_report_is_typed_and_metrics_use_the_registry(bbbc_report, tmp_path):
    from bioaug.evaluate import METRICS, EvaluationReport

    report, out = bbbc_report
    assert isinstance(report, EvaluationReport)
    assert report.clustering.leiden.ami == report["clustering"]["leiden"]["ami"]
    values = report.metrics()
    assert list(values) == list(METRICS)
    assert values["leiden_ami"] == report.clustering.leiden.ami
    assert values["nscb"] == report.profiling.nscb.accuracy
    assert values["moa_map"] == report.profiling.moa.map
    assert values["replicate_map"] is None  # no control wells in this table
    loaded = EvaluationReport.read(out / "report.json")
    assert loaded.metrics() == values


def test_report_read_rejects_other_json(tmp_path):
    from bioaug.evaluate import EvaluationReport

    (tmp_path / "r.json").write_text('{"seed": 0}')
    with pytest.raises(DataError, match=r"(?s)not a bioaug evaluation report: .*input: required"):
        EvaluationReport.read(tmp_path / "r.json")


def _fail_if_clustering_runs(monkeypatch):
    from bioaug.evaluate import clustering

    def boom(*a, **k):
        raise AssertionError("clustering ran before the arguments were checked")
    monkeypatch.setattr(clustering, "cluster_and_score", boom)


def test_bad_options_fail_before_clustering(monkeypatch, tmp_path):
    from bioaug.errors import ConfigError

    _fail_if_clustering_runs(monkeypatch)
    x, y = blobs(10, 2, 4, spread=8.0)
    obs = pd.DataFrame({"label": [f"c{i}" for i in y]})
    with pytest.raises(ConfigError, match="profiling_mode must be one of auto, on, off"):
        evaluate(make_adata(x, obs), label="label", profiling_mode="yes")
    with pytest.raises(DataError, match=r"group column 'cmpd'"):
        evaluate(make_adata(x, obs), label="label", linear_group="cmpd")
    with pytest.raises(DataError, match=r"--exclude 'c11': no item has label = 'c11' "
                                        r"\(did you mean 'c1'\?\); values: c0, c1"):
        evaluate(make_adata(x, obs), label="label", exclude=["c11"])
    for seed in (-5, 2**32, 2**40):  # numpy's legacy seeding takes 0 … 2**32 - 1 only
        with pytest.raises(ConfigError, match=rf"^seed: a seed must be an integer from 0 to "
                                              rf"4294967295 .*not {seed}"):
            evaluate(make_adata(x, obs), label="label", seed=seed)
    with pytest.raises(ConfigError, match="null_size must be 1 or more"):
        evaluate(make_adata(x, obs), label="label", null_size=0)
    (tmp_path / "f").write_text("x")
    with pytest.raises(BioaugError, match=r"f is a file, not a directory"):
        evaluate(make_adata(x, obs), label="label", out=tmp_path / "f" / "rep")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if not __import__("os").access(ro, __import__("os").W_OK):  # not root
            with pytest.raises(BioaugError, match=r"cannot write"):
                evaluate(make_adata(x, obs), label="label", out=ro / "rep")
    finally:
        ro.chmod(0o700)
    # a failed call leaves no report folder behind
    with pytest.raises(DataError):
        evaluate(make_adata(x, obs), label="label", out=tmp_path / "new", exclude=["c9"])
    assert not (tmp_path / "new").exists()


def test_the_largest_seed_runs_every_stage(tmp_path):
    x, y = blobs(20, 2, 4, spread=8.0)
    obs = pd.DataFrame({"label": [f"c{i}" for i in y]})
    report = evaluate(make_adata(x, obs), label="label", seed=2**32 - 1, out=tmp_path,
                      umap_points=40)
    assert report.seed == 2**32 - 1 and report.clustering.kmeans.ami > 0.9


def test_unscorable_profiling_is_said_up_front_or_marked_in_the_report(monkeypatch, tmp_path):
    # every compound's MoA is unannotated except one: NSC cannot be scored
    x, obs = bbbc021_like(n_moa=2, compounds_per_moa=1, spread=10.0)
    obs["moa"] = np.where(obs["moa"] == "MoA0", "MoA0", "MoA1")
    obs.loc[obs["moa"] == "MoA1", "compound"] = "DMSO"
    with monkeypatch.context() as m:
        _fail_if_clustering_runs(m)
        with pytest.raises(DataError, match="profiling cannot be scored"):
            evaluate(make_adata(x, obs), label="moa", profiling_mode="on")
    report = evaluate(make_adata(x, obs), label="moa", out=tmp_path, plot=False,
                      linear_group=None)
    assert report.profiling.nsc is None
    assert report.profiling.skipped.startswith("cannot be scored: profiling needs at least")
    assert report.metrics()["nsc"] is None
    assert "not scored — cannot be scored" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "report.json").is_file()


def test_package_evaluate_is_the_real_function():
    import inspect

    import bioaug
    from bioaug.evaluate import report

    # one source: bioaug.evaluate calls report.evaluate, with its signature and numpydoc
    assert inspect.signature(bioaug.evaluate) == inspect.signature(report.evaluate)
    for name in inspect.signature(report.evaluate).parameters:
        assert f"\n    {name}\n" in report.evaluate.__doc__, name


def layered_adata() -> ad.AnnData:
    """A ``--layer all``-style embedding: separable at stage2 and the default, noise at
    stage1."""
    x, y = blobs(30, 3, 8, spread=10.0)
    a = make_adata(x.astype(np.float32), pd.DataFrame({"label": [f"c{i}" for i in y]}))
    a.obsm["X_bioaug_stage1"] = np.random.default_rng(1).normal(size=(90, 4)).astype(np.float32)
    a.obsm["X_bioaug_stage2"] = (x[:, :6] * 0.5).astype(np.float32)
    a.uns["bioaug"] = {"layer": "backbone", "layers": ["stage1", "stage2"]}
    return a


def test_every_layer_is_scored_in_one_report(tmp_path):
    from bioaug.evaluate.render import format_layer_table, layer_rows

    report = evaluate(layered_adata(), label="label", out=tmp_path, umap_points=90)
    block = report.layers
    assert list(block["scores"]) == ["backbone", "stage1", "stage2"]
    assert block["reps"] == {"backbone": "X_bioaug", "stage1": "X_bioaug_stage1",
                             "stage2": "X_bioaug_stage2"}
    assert block["metrics"][:2] == ["leiden_ami", "leiden_ari"] and "nsc" not in block["metrics"]
    assert block["scores"]["backbone"] == {m: report.metrics()[m] for m in block["metrics"]}
    assert block["scores"]["stage2"]["kmeans_ami"] > 0.9 > block["scores"]["stage1"]["kmeans_ami"]
    header, rows = layer_rows(report)
    assert header[:3] == ["layer", "Leiden AMI", "Leiden ARI"]
    assert [r[0] for r in rows] == ["backbone (X_bioaug)", "stage1", "stage2"]
    assert format_layer_table(report).splitlines()[0].startswith("layer")
    md = (tmp_path / "report.md").read_text()
    assert "## Layers" in md and "| stage2 |" in md and "![layers](layers.png)" in md
    assert (tmp_path / "layers.png").stat().st_size > 0
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["layers"]["scores"]["stage1"] == block["scores"]["stage1"]


def test_other_reps_score_alone():
    from bioaug.evaluate.inputs import embedding_layers

    a = layered_adata()
    assert embedding_layers(a, "X_bioaug_stage2") == {}
    assert evaluate(a, label="label", rep="X_bioaug_stage2").get("layers") is None
    a.uns["bioaug"]["layers"] = ["stage1", "stage7"]  # listed but not in obsm: skipped
    assert embedding_layers(a) == {"backbone": "X_bioaug", "stage1": "X_bioaug_stage1"}
