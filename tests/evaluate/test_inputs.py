"""The inputs of an evaluation: corrected profiles are never corrected a second time."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest

from bioaug.errors import ConfigError, DataError
from bioaug.evaluate import evaluate
from bioaug.evaluate.inputs import EvaluateOptions, recorded_correction
from bioaug.profile import as_profile_config, profile
from tests.profile.conftest import plates_with_batch_effect


def _profiles():
    x, obs, _ = plates_with_batch_effect(cells=2)
    cells = ad.AnnData(obs=obs)
    cells.obsm["X_bioaug"] = x.astype(np.float32)
    return profile(cells, {"steps": ["center"]})


def test_profiles_corrected_already_refuse_another_correction():
    profiles = _profiles()
    with pytest.raises(DataError, match=r"holds profiles corrected already \(center\)"):
        evaluate(profiles, profile=["standardize"], plot=False)
    with pytest.raises(DataError, match="corrected already"):
        recorded_correction(profiles, "X_bioaug", as_profile_config("standard"), None)
    # a recipe without steps corrects nothing: the profile output's own check answers
    with pytest.raises(ConfigError, match="profiled already"):
        recorded_correction(profiles, "X_bioaug", as_profile_config("none"), None)
    recorded = recorded_correction(profiles, "X_bioaug", None, None)
    assert [s["step"] for s in recorded.steps] == ["center"]


def test_an_uncorrected_copy_that_is_corrected_is_no_before():
    again = profile(_profiles(), {"steps": "none"})  # both obsm keys hold corrected profiles
    assert recorded_correction(again, "X_bioaug", None, None) is None


def test_options_are_checked_and_passed_on_whole():
    opts = EvaluateOptions(label="moa", seed=3, profiling_mode="auto", linear_group=None,
                           test_size=0.2, max_dims=50, n_neighbors=15, silhouette_sample=10,
                           max_train=None, leiden_max_tries=5, exclude=("DMSO",), profile=None,
                           null_size=10)
    assert opts.checked().as_kwargs()["exclude"] == ("DMSO",)
    with pytest.raises(ConfigError, match="4294967295"):
        EvaluateOptions(**{**opts.as_kwargs(), "seed": 2**33}).checked()
