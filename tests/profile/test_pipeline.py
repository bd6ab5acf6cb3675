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


def test_profiles_without_a_moa_keep_it_missing():
    x, obs, _ = plates_with_batch_effect(cells=2)
    obs = obs.copy()
    obs["moa"] = obs["moa"].where(obs["compound"] != "cmp0_0")  # not annotated
    out = profile(_adata(x, obs), {"steps": ["center"]})
    assert "None" not in out.obs["moa"].cat.categories
    assert "nan" not in out.obs["moa"].cat.categories
    missing = out.obs["moa"].isna().to_numpy()
    assert missing.tolist() == (out.obs["compound"] == "cmp0_0").to_numpy().tolist()
    assert missing.sum() == 2  # the compound's two wells


def _embedded(x, obs, checkpoint="a" * 64, layer="backbone"):
    """Cells as `bioaug embed` writes them: features and the model that made them."""
    a = _adata(x, obs)
    a.uns["bioaug"] = {"kind": "checkpoint", "layer": layer, "models": {
        "0": {"checkpoint_sha256": checkpoint, "method": "simclr", "backbone": "vgg13_bn"}}}
    return a


def test_reuse_refuses_features_the_correction_was_not_fitted_on(tmp_path):
    from bioaug.embed import write_h5ad

    x, obs, _ = plates_with_batch_effect(n_plates=6, seed=0)
    old = obs["plate"].isin(["P0", "P1", "P2", "P3"]).to_numpy()
    recipe = {"correct_at": "cell", "steps": ["center", {"sphere": {"scope": "global"}}]}
    write_h5ad(profile(_embedded(x[old], obs[old]), recipe), tmp_path / "first.h5ad")
    saved = ad.read_h5ad(tmp_path / "first.h5ad")
    assert dict(saved.uns["bioaug"]["profile"]["features"]) == {
        "rep": "X_bioaug", "layer": "backbone", "n_features": 6,
        "model": "model 0: checkpoint_sha256 " + "a" * 64 + ", method simclr, backbone vgg13_bn"}
    new_x, new_obs = x[~old], obs[~old]
    with pytest.raises(DataError, match=r"fitted on obsm\['X_bioaug'\] \(layer backbone, 6 "
                                        r"features, .*\) but these are .*\(layer backbone, 4 "
                                        r"features.*differ in n_features\n"):
        profile(_embedded(new_x[:, :4], new_obs), reuse=saved)
    with pytest.raises(DataError, match=r"differ in model\n"):
        profile(_embedded(new_x, new_obs, checkpoint="b" * 64), reuse=saved)
    with pytest.raises(DataError, match=r"differ in layer\n"):
        profile(_embedded(new_x, new_obs, layer="stage3"), reuse=saved)
    # rep is honoured: the same model's other features are refused, not silently swapped
    other = _embedded(new_x, new_obs)
    other.obsm["X_bioaug_fused"] = new_x.astype(np.float32)
    with pytest.raises(DataError, match=r"these are obsm\['X_bioaug_fused'\].*differ in layer"):
        profile(other, reuse=saved, rep="X_bioaug_fused")
    assert profile(other, reuse=saved).n_obs == len(new_obs.groupby(["plate", "well"]))
    # a probed layer of a `--layer all` embedding is that layer, whatever its obsm key
    layered = _embedded(np.zeros((len(new_obs), 2)), new_obs, layer="stage5")
    layered.uns["bioaug"]["layers"] = ["stage3"]
    layered.obsm["X_bioaug_stage3"] = new_x.astype(np.float32)
    with pytest.raises(DataError, match=r"layer stage3.*differ in layer\n"):
        profile(layered, reuse=saved, rep="X_bioaug_stage3")


def test_reuse_of_profiles_that_record_no_features_is_refused():
    x, obs, _ = plates_with_batch_effect(cells=2, dims=12)
    first = profile(_adata(x, obs), {"correct_at": "cell", "steps": ["center"]})
    del first.uns["bioaug"]["profile"]["features"]  # profiles written without the record
    with pytest.raises(DataError, match="do not record which features"):
        profile(_adata(x, obs), reuse=first)


def test_corrected_profiles_are_not_corrected_again():
    x, obs, _ = plates_with_batch_effect(cells=2)
    first = profile(_adata(x, obs), {"steps": ["center", "standardize"]})
    assert list(first.uns["bioaug"]["corrected"]["X_bioaug"]) == ["center", "standardize"]
    assert "X_bioaug_uncorrected" not in first.uns["bioaug"]["corrected"]
    for recipe in (None, {"steps": ["center"]}):
        with pytest.raises(DataError, match=r"obsm\['X_bioaug'\] holds profiles corrected "
                                            r"already \(center → standardize\)"):
            profile(first, recipe)
    again = profile(first, {"steps": "none"})  # aggregating without correcting is fine
    record = again.uns["bioaug"]["corrected"]
    assert list(record["X_bioaug"]) == list(record["X_bioaug_uncorrected"]) == \
        ["center", "standardize"]
    np.testing.assert_allclose(again.obsm["X_bioaug"], first.obsm["X_bioaug"], rtol=1e-6)


def test_profile_seed_follows_the_seed_rule():
    x, obs, _ = plates_with_batch_effect(cells=2)
    with pytest.raises(ConfigError, match=r"^seed: a seed must be an integer from 0 to "
                                          r"4294967295"):
        profile(_adata(x, obs), {"steps": ["center"]}, seed=2**32)
