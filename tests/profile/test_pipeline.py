"""The profiling pipeline on plates with a batch effect: aggregation, records, bad input."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest

from bioaug.errors import ConfigError, DataError
from bioaug.evaluate import profiling
from bioaug.profile import UNCORRECTED, profile, profile_cells
from tests.profile.conftest import plates_with_batch_effect


def _adata(x, obs):
    a = ad.AnnData(obs=obs)
    a.obsm["X_bioaug"] = x.astype(np.float32)
    return a


def test_correction_raises_nscb_on_a_synthetic_batch_effect():
    x, obs, _ = plates_with_batch_effect(n_plates=6, compounds_per_moa=3, seed=0)
    before = profiling.profile_scores(x, obs)
    res = profile_cells(x, obs, {"correct_at": "cell", "steps": ["sphere"]})
    after = profiling.profile_scores(res.x, res.obs)
    assert res.level == "well" and len(res.obs) == len(obs.groupby(["plate", "well"]))
    assert after["nscb"]["accuracy"] > before["nscb"]["accuracy"] + 0.2
    assert after["nsc"]["accuracy"] > before["nsc"]["accuracy"] + 0.5
    assert after["moa"]["map"] > before["moa"]["map"] + 0.3


def test_well_aggregation_and_treatment_output():
    x, obs, _ = plates_with_batch_effect(cells=3)
    res = profile_cells(x, obs, {"steps": []})
    first = obs.groupby(["plate", "well"], sort=True).ngroup().to_numpy() == 0
    np.testing.assert_allclose(res.x[0], x[first].mean(axis=0))
    np.testing.assert_array_equal(res.x, res.x_uncorrected)
    med = profile_cells(x, obs, {"steps": [], "aggregate": "median"})
    np.testing.assert_allclose(med.x[0], np.median(x[first], axis=0))
    treat = profile_cells(x, obs, {"steps": ["center"], "output": "treatment"})
    assert treat.level == "treatment"
    assert len(treat.obs) == obs.groupby(["compound", "concentration"]).ngroups


def test_profile_records_steps_and_saves_fitted_transforms(tmp_path):
    from bioaug.embed import write_h5ad

    x, obs, _ = plates_with_batch_effect(cells=4)
    out = profile(_adata(x, obs), {"correct_at": "cell", "steps": [
        "center", {"sphere": {"scope": "global"}}, {"select": {"correlation_threshold": 0.99}}]})
    write_h5ad(out, tmp_path / "p.h5ad")
    back = ad.read_h5ad(tmp_path / "p.h5ad")
    rec = back.uns["bioaug"]["profile"]
    assert [rec["steps"][k]["step"] for k in sorted(rec["steps"])] == ["center", "sphere",
                                                                     "select"]
    assert rec["steps"]["1"]["params"]["scope"] == "global"
    sphere = rec["fitted"]["1_sphere"]
    assert sphere["arrays"]["matrix"].shape == (1, 6, 6)
    center = rec["fitted"]["0_center"]
    assert list(center["groups"]) == sorted(obs["plate"].unique())
    # the saved per-plate shifts reproduce the correction of a plate's cells
    p0 = (obs["plate"] == "P0").to_numpy()
    shift = center["arrays"]["shift"][0]
    ctrl = p0 & (obs["moa"] == "DMSO").to_numpy()
    np.testing.assert_allclose(shift, x[ctrl].mean(axis=0), rtol=1e-6)
    assert back.obsm["X_bioaug"].shape[0] == back.obsm["X_bioaug" + UNCORRECTED].shape[0]


def test_bad_input_is_one_clear_error():
    x, obs, _ = plates_with_batch_effect(cells=2)
    with pytest.raises(DataError, match=r"control query 'moa=DSMO' matches no rows "
                                        r"\(did you mean 'DMSO'\?\)"):
        profile_cells(x, obs, {"control": "moa=DSMO", "steps": ["center"]})
    with pytest.raises(DataError, match=r"control query 'mao=DMSO': no column 'mao' "
                                        r"\(did you mean 'moa'\?\)"):
        profile_cells(x, obs, {"control": "mao=DMSO", "steps": ["center"]})
    with pytest.raises(DataError, match=r"step harmony \(batch_key\) needs column 'week'"):
        profile_cells(x, obs, {"steps": [{"harmony": {"batch_key": "week"}}]})
    with pytest.raises(DataError, match=r"plate 'P0' has 6 control profiles for 6 features"):
        profile_cells(x, obs, {"steps": ["sphere"]})
    bad = x.copy()
    bad[5, 2] = np.nan
    with pytest.raises(DataError, match=r"NaN or infinite values in 1 of \d+ rows \(first "
                                        r"row: 5\)"):
        profile_cells(bad, obs, {"steps": ["center"]})
    with pytest.raises(DataError, match=r"aggregation per well .* needs column 'well'"):
        profile_cells(x, obs.drop(columns="well"), {"steps": ["center"]})
    with pytest.raises(ConfigError, match="unknown step"):
        profile_cells(x, obs, {"steps": ["tvn"]})


def test_harmony_step_when_installed():
    pytest.importorskip("harmonypy")
    x, obs, _ = plates_with_batch_effect(cells=3)
    res = profile_cells(x, obs, {"correct_at": "cell", "steps": ["harmony"]})
    assert res.x.shape == (len(res.obs), 6) and np.isfinite(res.x).all()


def test_new_plates_are_corrected_the_same_way(tmp_path):
    from bioaug.embed import write_h5ad

    x, obs, _ = plates_with_batch_effect(n_plates=6, seed=0)
    old = obs["plate"].isin(["P0", "P1", "P2", "P3"]).to_numpy()
    recipe = {"correct_at": "cell", "steps": [
        "center", {"sphere": {"scope": "global", "method": "zca"}},
        {"select": {"correlation_threshold": 0.9}}]}
    first = profile(_adata(x[old], obs[old]), recipe)
    write_h5ad(first, tmp_path / "first.h5ad")
    saved = ad.read_h5ad(tmp_path / "first.h5ad")
    new = profile(_adata(x[~old], obs[~old]), reuse=saved)
    both = profile(_adata(x, obs), recipe)
    # the same as correcting everything at once with the old plates' global transforms:
    # per-plate centring refits on each new plate's controls, the sphere is reused
    rec = new.uns["bioaug"]["profile"]
    assert [rec["steps"][k]["info"]["reused"] for k in sorted(rec["steps"])] == \
        [False, True, True]
    assert both.n_obs == first.n_obs + new.n_obs
    # known answer: centre each new plate's cells on its own DMSO cells, whiten with the
    # saved global matrix, keep the saved features, then average per well
    fitted = saved.uns["bioaug"]["profile"]["fitted"]
    sphere, keep = fitted["1_sphere"]["arrays"], fitted["2_select"]["arrays"]["keep"]
    xn, on = x[~old], obs[~old].reset_index(drop=True)
    centred = xn.copy()
    for p in on["plate"].unique():
        rows = (on["plate"] == p).to_numpy()
        centred[rows] -= xn[rows & (on["moa"] == "DMSO").to_numpy()].mean(axis=0)
    expect = ((centred - sphere["mean"][0]) @ sphere["matrix"][0])[:, keep]
    well = on.groupby(["plate", "well"], sort=True).ngroup().to_numpy()
    np.testing.assert_allclose(new.obsm["X_bioaug"][0], expect[well == 0].mean(axis=0),
                               rtol=1e-4, atol=1e-4)
    with pytest.raises(DataError, match="not a bioaug profile output"):
        profile(_adata(x, obs), reuse=_adata(x, obs))
