"""Profiling before and after a correction: a recorded one, or a recipe applied now."""

from __future__ import annotations

import numpy as np
import pytest

from bioaug.errors import DataError
from bioaug.evaluate.inputs import Recorded
from bioaug.evaluate.scoring import run_profiling
from bioaug.profile import as_profile_config
from tests.profile.conftest import plates_with_batch_effect

OPTIONS = {"label": "moa", "mode": "auto", "seed": 0, "null_size": 50, "where": None}


def test_a_recorded_correction_scores_its_uncorrected_profiles_before():
    x, obs, _ = plates_with_batch_effect(cells=2)
    plain, none, steps = run_profiling(x, obs, **OPTIONS)
    assert none is None and steps is None and plain.nsc is not None
    recorded = Recorded(x_uncorrected=x, steps=[{"step": "center"}])
    before, after, steps = run_profiling(np.zeros_like(x) + 1.0, obs, recorded=recorded,
                                         **OPTIONS)
    assert before.nsc.accuracy == plain.nsc.accuracy  # from the recorded profiles
    assert after.nsc.n_tied_queries == after.nsc.n_scored  # from x, constant: all ties
    assert steps == [{"step": "center"}]


def test_a_recipe_is_applied_then_profiled():
    x, obs, _ = plates_with_batch_effect(n_plates=6, compounds_per_moa=3, seed=0)
    recipe = as_profile_config({"correct_at": "cell", "steps": ["sphere"]})
    before, after, steps = run_profiling(x, obs, recipe=recipe, **OPTIONS)
    assert after.nsc.accuracy > before.nsc.accuracy
    assert [s["step"] for s in steps] == ["sphere"]
    # a recipe needs profiling to be possible: an error rather than a skip
    with pytest.raises(DataError, match="profiling needs columns"):
        run_profiling(x, obs.drop(columns="batch"), recipe=recipe, **OPTIONS)
    skipped = run_profiling(x, obs.drop(columns="batch"), **OPTIONS)[0]
    assert skipped.skipped.startswith("no BBBC021 metadata")
