"""The standard correction chosen when no steps are given, its fallbacks and 'none'."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest

from bioaug.errors import DataError
from bioaug.profile import as_profile_config, profile, profile_cells
from bioaug.profile.standard import MIN_PLATE_CONTROLS, standard_steps
from tests.profile.conftest import plates_with_batch_effect

STANDARD_STEPS = [{"standardize": {"scope": "plate", "samples": "controls"}},
                  {"sphere": {"scope": "global", "method": "zca", "samples": "controls"}}]


def _adata(x, obs):
    a = ad.AnnData(obs=obs)
    a.obsm["X_bioaug"] = x.astype(np.float32)
    return a


def _well_means(x, obs):
    codes = obs.groupby(["plate", "well"], sort=True).ngroup().to_numpy()
    wells = np.stack([x[codes == g].mean(axis=0) for g in range(codes.max() + 1)])
    table = obs.groupby(["plate", "well"], sort=True).first().reset_index()
    return wells, table


def test_default_with_enough_controls_is_the_explicit_standard():
    x, obs, _ = plates_with_batch_effect(n_plates=6, controls_per_plate=6, cells=3)
    default = profile_cells(x, obs)
    explicit = profile_cells(x, obs, {"steps": STANDARD_STEPS})
    np.testing.assert_array_equal(default.x, explicit.x)
    assert [r["step"] for r in default.steps] == ["standardize", "sphere"]
    assert default.standard is not None and explicit.standard is None
    assert "per plate on its control profiles (moa=DMSO; 6–6 per plate)" in \
        default.standard.notes[0]
    assert "ZCA fitted on all 36 control profiles together (TVN" in default.standard.notes[1]


def test_standard_known_answer():
    """Per plate: z-score on the DMSO wells (population sd); then ZCA on all DMSO wells."""
    x, obs, _ = plates_with_batch_effect(n_plates=4, controls_per_plate=6, cells=2, seed=3)
    res = profile_cells(x, obs)
    wells, table = _well_means(x, obs)
    ctrl = (table["moa"] == "DMSO").to_numpy()
    z = np.empty_like(wells)
    for p in table["plate"].unique():
        rows = (table["plate"] == p).to_numpy()
        c = wells[rows & ctrl]
        z[rows] = (wells[rows] - c.mean(axis=0)) / c.std(axis=0)
    mean = z[ctrl].mean(axis=0)
    evals, evecs = np.linalg.eigh(np.cov(z[ctrl] - mean, rowvar=False))
    want = (z - mean) @ (evecs / np.sqrt(evals + 1e-6)) @ evecs.T
    np.testing.assert_allclose(res.x, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.cov(res.x[ctrl], rowvar=False), np.eye(6), atol=1e-4)


def test_few_controls_fall_back_to_whole_plate_standardisation():
    x, obs, _ = plates_with_batch_effect(n_plates=4, controls_per_plate=2, cells=2, dims=12)
    res = profile_cells(x, obs)
    notes = res.standard.notes
    assert notes[0].startswith("standardize: on every profile of each plate (whole-plate, "
                               "samples='all'): 4 plate(s) have fewer than "
                               f"{MIN_PLATE_CONTROLS} control profiles: P0 (2), P1 (2)")
    assert notes[1].startswith("sphere: skipped: 8 control profiles for 12 features")
    assert [r["step"] for r in res.steps] == ["standardize"]
    explicit = profile_cells(x, obs, {"steps": [{"standardize": {"samples": "all"}}]})
    np.testing.assert_array_equal(res.x, explicit.x)
    # known answer: each plate's wells have mean 0 and sd 1 per feature
    for p in res.obs["plate"].unique():
        rows = (res.obs["plate"] == p).to_numpy()
        np.testing.assert_allclose(res.x[rows].mean(axis=0), 0, atol=1e-9)
        np.testing.assert_allclose(res.x[rows].std(axis=0), 1, atol=1e-9)


def test_few_controls_per_plate_but_enough_in_all_still_sphere():
    x, obs, _ = plates_with_batch_effect(n_plates=6, controls_per_plate=2, cells=2)
    res = profile_cells(x, obs)
    assert [r["step"] for r in res.steps] == ["standardize", "sphere"]
    assert res.config.steps[0].params == {"scope": "plate", "samples": "all"}
    assert res.config.steps[1].params["samples"] == "controls"
    assert "ZCA fitted on all 12 control profiles" in res.standard.notes[-1]


@pytest.mark.parametrize("change, why", [
    (lambda o: o.drop(columns="moa"), "no 'moa' column for the control query moa=DMSO"),
    (lambda o: o.replace({"moa": {"DMSO": "vehicle"}}),
     "no row matches the control query moa=DMSO"),
])
def test_no_controls_whole_plate_standardisation_with_a_notice(change, why):
    x, obs, _ = plates_with_batch_effect(n_plates=4, cells=2)
    res = profile_cells(x, change(obs))
    assert res.standard.notes[0] == f"{why}: correcting without controls"
    assert any("whole-plate" in n and "no controls" in n for n in res.standard.notes)
    assert res.standard.notes[-1] == "sphere: skipped: no control profiles to fit it on"
    assert [(s.name, s.params) for s in res.config.steps] == \
        [("standardize", {"scope": "plate", "samples": "all"})]
    assert res.n_controls == 0


def test_a_control_query_given_that_matches_nothing_stays_an_error():
    x, obs, _ = plates_with_batch_effect(n_plates=4, cells=2)
    with pytest.raises(DataError, match="matches no rows"):
        profile_cells(x, obs, {"control": "moa=DSMO"})


def test_none_leaves_the_profiles_as_they_are():
    x, obs, _ = plates_with_batch_effect(n_plates=4, cells=3)
    wells, _ = _well_means(x, obs)
    for none in ("none", {"steps": "none"}, {"steps": []}):
        res = profile_cells(x, obs, none)
        assert res.steps == [] and res.standard is None
        np.testing.assert_allclose(res.x, wells, rtol=1e-6)  # the well means, as they are
        np.testing.assert_array_equal(res.x, res.x_uncorrected)
    cells = profile_cells(x, obs, {"steps": "none", "correct_at": "cell", "output": "cell"})
    np.testing.assert_array_equal(cells.x, x)
    assert as_profile_config("none").steps == []
    assert as_profile_config(None).is_standard() and as_profile_config("standard").is_standard()


def test_provenance_records_the_choice_and_new_plates_reuse_it(tmp_path):
    from bioaug.embed import write_h5ad

    x, obs, _ = plates_with_batch_effect(n_plates=6, cells=3)
    out = profile(_adata(x, obs))
    write_h5ad(out, tmp_path / "p.h5ad")
    rec = ad.read_h5ad(tmp_path / "p.h5ad").uns["bioaug"]["profile"]
    assert rec["steps_source"] == "standard"
    assert list(rec["standard"]["steps"]) == ["standardize", "sphere"]
    assert "TVN" in rec["standard"]["notes"][-1]
    assert rec["steps"]["0"]["params"]["samples"] == "controls"
    again = profile(_adata(x, obs), reuse=ad.read_h5ad(tmp_path / "p.h5ad"))
    np.testing.assert_allclose(again.obsm["X_bioaug"], out.obsm["X_bioaug"], atol=1e-5)
    assert again.uns["bioaug"]["profile"]["steps_source"] == "reused"
    none = profile(_adata(x, obs), "none").uns["bioaug"]["profile"]
    assert none["steps_source"] == "none" and "standard" not in none


def test_no_plate_column_is_one_plate():
    x, obs, _ = plates_with_batch_effect(n_plates=4, cells=2)
    choice = standard_steps(obs.drop(columns="plate"), 6, control="moa=DMSO", plate="plate")
    assert choice.steps[0] == {"standardize": {"scope": "global", "samples": "controls"}}
    assert "no 'plate' column: all profiles are one plate" in choice.notes
    res = profile_cells(x, obs.drop(columns="plate"), {"correct_at": "cell", "output": "cell"})
    ctrl = (obs["moa"] == "DMSO").to_numpy()
    np.testing.assert_allclose(res.x[ctrl].mean(axis=0), 0, atol=1e-9)  # sphered controls
    np.testing.assert_allclose(np.cov(res.x[ctrl], rowvar=False), np.eye(6), atol=1e-4)
