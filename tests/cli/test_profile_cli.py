"""``bioaug profile``, ``bioaug export`` and evaluating their outputs."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from bioaug.cli import main
from tests.profile.conftest import plates_with_batch_effect


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    x, obs, _ = plates_with_batch_effect(n_plates=6, compounds_per_moa=3, cells=6, seed=0)
    a = ad.AnnData(obs=obs)
    a.obsm["X_bioaug"] = x.astype(np.float32)
    path = tmp_path_factory.mktemp("cells") / "cells.h5ad"
    a.write_h5ad(path)
    return path


def test_profile_export_and_evaluate_before_and_after(cells, tmp_path, capsys):
    prof = tmp_path / "profiles.h5ad"
    assert main(["profile", str(cells), "--out", str(prof), "--correct-at", "cell",
                 "--steps", "center,sphere", "--sphere", "global"]) == 0
    out = capsys.readouterr().out
    assert "360 items → 60 well profiles" in out and "steps: center → sphere" in out
    assert main(["export", str(prof), "--format", "parquet", "--out",
                 str(tmp_path / "p.parquet")]) == 0
    table = pd.read_parquet(tmp_path / "p.parquet")
    assert {"Metadata_plate", "Metadata_well", "Metadata_moa"} <= set(table.columns)
    assert [c for c in table.columns if not c.startswith("Metadata_")] == \
        [f"X_bioaug_{i}" for i in range(6)]
    assert main(["export", str(prof), "--format", "csv"]) == 0
    assert (tmp_path / "profiles.csv").is_file()

    rep = tmp_path / "rep"
    assert main(["evaluate", str(prof), "--out", str(rep), "--no-plots",
                 "--null-size", "200"]) == 0
    out = capsys.readouterr().out
    assert "profiling before → after correction:" in out
    report = json.loads((rep / "report.json").read_text())
    before, after = report["profiling"], report["profiling_corrected"]
    assert after["nscb"]["accuracy"] > before["nscb"]["accuracy"]
    assert [s["step"] for s in report["profile_steps"]] == ["center", "sphere"]
    assert "| NSCB | " in (rep / "report.md").read_text()

    # the exported table scores the same as the .h5ad it came from
    rep2 = tmp_path / "rep2"
    assert main(["evaluate", str(tmp_path / "p.parquet"), "--out", str(rep2), "--no-plots",
                 "--null-size", "200"]) == 0
    report2 = json.loads((rep2 / "report.json").read_text())
    assert report2["profiling"]["nsc"]["accuracy"] == after["nsc"]["accuracy"]
    assert report2["profiling"]["moa"]["map"] == pytest.approx(after["moa"]["map"], abs=1e-6)


def test_evaluate_with_profile_flag_reports_side_by_side(cells, tmp_path, capsys):
    assert main(["evaluate", str(cells), "--out", str(tmp_path / "r"), "--no-plots",
                 "--profile", "sphere", "--null-size", "200"]) == 2  # 6 features, 6 control
    err = capsys.readouterr().err  # wells per plate: ZCA per plate is refused up front
    assert "has 6 control profiles for 6 features" in err and "Traceback" not in err
    assert not (tmp_path / "r" / "report.json").exists()


@pytest.mark.parametrize("args, message", [
    (["--steps", "center", "--control", "moa=DSMO"], "matches no rows (did you mean 'DMSO'?)"),
    (["--steps", "harmony", "--batch-key", "week"], "needs column 'week'"),
    (["--steps", "spher"], "unknown step 'spher' (did you mean 'sphere'?)"),
])
def test_profile_bad_input_exit_2_and_writes_nothing(cells, tmp_path, capsys, args, message):
    out = tmp_path / "p.h5ad"
    assert main(["profile", str(cells), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_profile_refuses_to_overwrite_its_input(cells, capsys):
    assert main(["profile", str(cells), "--out", str(cells), "--steps", "center"]) == 2
    assert "is the input" in capsys.readouterr().err


def test_bad_tables_are_clear_errors(tmp_path, capsys):
    pd.DataFrame({"plate": ["a"], "f1": [1.0]}).to_csv(tmp_path / "nometa.csv", index=False)
    assert main(["evaluate", str(tmp_path / "nometa.csv"), "--out", str(tmp_path / "r")]) == 2
    assert "no Metadata_* columns" in capsys.readouterr().err
    pd.DataFrame({"Metadata_plate": ["a", "b"], "f1": [1.0, 2.0],
                  "note": ["x", "y"]}).to_csv(tmp_path / "text.csv", index=False)
    assert main(["evaluate", str(tmp_path / "text.csv"), "--out", str(tmp_path / "r")]) == 2
    assert "feature column(s) are not numeric: note" in capsys.readouterr().err


def test_export_and_evaluate_never_write_over_files_they_did_not_make(cells, tmp_path,
                                                                      capsys):
    store = tmp_path / "store"
    store.mkdir()
    (store / "header.json").write_text("{}")
    (store / "obs.csv").write_text("plate,well\n1,A01\n")
    assert main(["export", str(cells), "--format", "csv", "--out", str(store / "obs.csv"),
                 "--overwrite"]) == 2
    assert "bioaug did not write" in capsys.readouterr().err
    assert (store / "obs.csv").read_text() == "plate,well\n1,A01\n"
    assert main(["evaluate", str(cells), "--label", "moa", "--out", str(store),
                 "--no-plots"]) == 2
    assert "bioaug did not write" in capsys.readouterr().err
    assert sorted(p.name for p in store.iterdir()) == ["header.json", "obs.csv"]
