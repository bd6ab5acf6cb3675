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


def _write_cells(path, **kwargs):
    x, obs, _ = plates_with_batch_effect(**kwargs)
    a = ad.AnnData(obs=obs)
    a.obsm["X_bioaug"] = x.astype(np.float32)
    a.write_h5ad(path)
    return path


def test_profile_applies_the_standard_correction_by_default(cells, tmp_path, capsys):
    default, explicit = tmp_path / "default.h5ad", tmp_path / "explicit.h5ad"
    assert main(["profile", str(cells), "--out", str(default)]) == 0
    out = capsys.readouterr().out
    assert "steps: standardize → sphere (the standard correction; --steps none for none)" \
        in out
    assert "  standardize: per plate on its control profiles (moa=DMSO; 6–6 per plate)" in out
    assert "  sphere: ZCA fitted on all 36 control profiles together (TVN" in out
    assert main(["profile", str(cells), "--out", str(explicit), "--steps",
                 "standardize,sphere", "--sphere", "global"]) == 0
    assert "steps: standardize → sphere (as given)" in capsys.readouterr().out
    a, b = ad.read_h5ad(default), ad.read_h5ad(explicit)
    np.testing.assert_array_equal(a.obsm["X_bioaug"], b.obsm["X_bioaug"])
    rec = a.uns["bioaug"]["profile"]
    assert rec["steps_source"] == "standard" and "TVN" in rec["standard"]["notes"][-1]


def test_profile_with_few_controls_says_which_fallback(tmp_path, capsys):
    few = _write_cells(tmp_path / "few.h5ad", n_plates=4, controls_per_plate=2, cells=2,
                       dims=12)
    assert main(["profile", str(few), "--out", str(tmp_path / "p.h5ad")]) == 0
    out = capsys.readouterr().out
    assert "steps: standardize (the standard correction" in out
    assert "standardize: on every profile of each plate (whole-plate, samples='all'): 4 " \
        "plate(s) have fewer than 5 control profiles" in out
    assert "sphere: skipped: 8 control profiles for 12 features" in out
    notes = ad.read_h5ad(tmp_path / "p.h5ad").uns["bioaug"]["profile"]["standard"]["notes"]
    assert any("whole-plate" in n for n in notes)


def test_profile_without_controls_gives_a_notice(tmp_path, capsys):
    x, obs, _ = plates_with_batch_effect(n_plates=4, cells=2)
    a = ad.AnnData(obs=obs.drop(columns="moa"))
    a.obsm["X_bioaug"] = x.astype(np.float32)
    a.write_h5ad(tmp_path / "c.h5ad")
    assert main(["profile", str(tmp_path / "c.h5ad"), "--out", str(tmp_path / "p.h5ad")]) == 0
    out = capsys.readouterr().out
    assert "no 'moa' column for the control query moa=DMSO: correcting without controls" in out
    assert "whole-plate" in out and "sphere: skipped: no control profiles" in out


def test_profile_steps_none_leaves_the_profiles_as_they_are(cells, tmp_path, capsys):
    out = tmp_path / "p.h5ad"
    assert main(["profile", str(cells), "--out", str(out), "--steps", "none"]) == 0
    assert "steps: (none) (as asked)" in capsys.readouterr().out
    prof = ad.read_h5ad(out)
    np.testing.assert_array_equal(prof.obsm["X_bioaug"], prof.obsm["X_bioaug_uncorrected"])
    assert prof.uns["bioaug"]["profile"]["steps_source"] == "none"


def test_step_flags_need_named_steps(cells, tmp_path, capsys):
    assert main(["profile", str(cells), "--out", str(tmp_path / "p.h5ad"), "--sphere",
                 "global"]) == 2
    err = capsys.readouterr().err
    assert "--sphere set(s) parameters of the steps named in --steps" in err
    assert not (tmp_path / "p.h5ad").exists()


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


def test_export_format_and_suffix_must_agree(cells, tmp_path, capsys):
    assert main(["export", str(cells), "--format", "csv", "--out",
                 str(tmp_path / "x.parquet")]) == 2
    err = capsys.readouterr().err
    assert "a csv table's name ends in .csv, not .parquet" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())
    assert main(["export", str(cells), "--out", str(tmp_path / "x.csv")]) == 0  # from suffix
    assert (tmp_path / "x.csv").read_text().startswith("Metadata_")


def test_corrected_profiles_and_their_tables_are_not_corrected_again(cells, tmp_path, capsys):
    prof, table = tmp_path / "profiles.h5ad", tmp_path / "profiles.csv"
    assert main(["profile", str(cells), "--out", str(prof), "--steps", "center"]) == 0
    assert main(["export", str(prof), "--out", str(table)]) == 0
    capsys.readouterr()
    for argv in (["profile", str(prof), "--out", str(tmp_path / "again.h5ad")],
                 ["profile", str(table), "--out", str(tmp_path / "again.h5ad")],
                 ["evaluate", str(table), "--out", str(tmp_path / "rep"), "--no-plots",
                  "--profile", "standardize"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "obsm['X_bioaug'] holds profiles corrected already (center)" in err, argv
        assert "Traceback" not in err
    assert not (tmp_path / "again.h5ad").exists() and not (tmp_path / "rep").exists()
    # aggregating without a correction is allowed, and the output stays marked
    assert main(["profile", str(prof), "--out", str(tmp_path / "again.h5ad"),
                 "--steps", "none"]) == 0
    again = ad.read_h5ad(tmp_path / "again.h5ad")
    assert list(again.uns["bioaug"]["corrected"]["X_bioaug"]) == ["center"]


def _cells_of(path, x, obs, checkpoint):
    a = ad.AnnData(obs=obs)
    a.obsm["X_bioaug"] = x.astype(np.float32)
    a.obsm["X_other"] = x[:, ::-1].astype(np.float32)
    a.uns["bioaug"] = {"kind": "checkpoint", "layer": "backbone",
                       "models": {"0": {"checkpoint_sha256": checkpoint}}}
    a.write_h5ad(path)
    return path


def test_profile_reuse_checks_the_features_and_honours_rep(tmp_path, capsys):
    x, obs, _ = plates_with_batch_effect(n_plates=6, compounds_per_moa=3, cells=4, seed=0)
    old = obs["plate"].isin(["P0", "P1", "P2", "P3"]).to_numpy()
    first = _cells_of(tmp_path / "old.h5ad", x[old], obs[old], "a" * 64)
    saved = tmp_path / "saved.h5ad"
    assert main(["profile", str(first), "--out", str(saved), "--correct-at", "cell",
                 "--steps", "center,sphere", "--sphere", "global"]) == 0
    out = tmp_path / "new_profiles.h5ad"
    cases = [
        (_cells_of(tmp_path / "narrow.h5ad", x[~old][:, :4], obs[~old], "a" * 64), [],
         "differ in n_features"),
        (_cells_of(tmp_path / "other.h5ad", x[~old], obs[~old], "b" * 64), [],
         "differ in model"),
        (_cells_of(tmp_path / "new.h5ad", x[~old], obs[~old], "a" * 64), ["--rep", "X_other"],
         "these are obsm['X_other'] (layer X_other"),
        (tmp_path / "new.h5ad", ["--control", "moa=DMSO"],
         "--reuse takes the recipe of the earlier profiles; leave out --control"),
    ]
    capsys.readouterr()
    for cells, extra, message in cases:
        assert main(["profile", str(cells), "--reuse", str(saved), "--out", str(out),
                     *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
        assert not out.exists()
    assert main(["profile", str(tmp_path / "new.h5ad"), "--reuse", str(saved), "--out",
                 str(out), "--rep", "X_bioaug"]) == 0
    assert "(reused from the earlier profiles)" in capsys.readouterr().out
