from __future__ import annotations

import numpy as np
import pytest

from bioaug.errors import DataError
from bioaug.evaluate import linear
from tests.evaluate.conftest import bbbc021_like, blobs


def test_separable_blobs_probe_perfectly():
    x, y = blobs(50, 3, 8, spread=10.0)
    out = linear.linear_probe(x, y.astype(str))
    assert out["accuracy"] == 1.0
    assert out["per_class"] == {"0": 1.0, "1": 1.0, "2": 1.0}
    assert out["n_train"] + out["n_test"] == 150 and out["n_test"] == 30
    assert out["n_classes"] == 3
    assert np.trace(np.asarray(out["confusion_matrix"])) == 30


def test_per_class_accuracy_known_answer():
    y_true = np.array(["a", "a", "b", "b", "b", "c"])
    y_pred = np.array(["a", "b", "b", "b", "a", "a"])
    acc = linear.per_class_accuracy(y_true, y_pred, ["a", "b", "c", "d"])
    assert acc == {"a": 0.5, "b": pytest.approx(2 / 3), "c": 0.0, "d": None}


def test_grouped_split_keeps_each_compound_on_one_side():
    x, obs = bbbc021_like(n_moa=4, compounds_per_moa=5)
    groups = obs["compound"].to_numpy()
    train, test = linear.split_indices(obs["moa"].to_numpy(), groups, seed=3)
    assert not set(groups[train]) & set(groups[test])
    assert len(train) + len(test) == len(obs)
    out = linear.linear_probe(x, obs["moa"].to_numpy(), groups, group_column="compound")
    assert out["split"]["groups_on_both_sides"] == 0
    assert out["split"]["grouped_by"] == "compound"
    assert out["accuracy"] == 1.0


def test_single_group_class_is_left_out_and_reported():
    x, obs = bbbc021_like(n_moa=3, compounds_per_moa=3)
    obs.loc[obs["moa"] == "MoA0", "compound"] = "DMSO"
    out = linear.linear_probe(x, obs["moa"].to_numpy(), obs["compound"].to_numpy())
    assert out["excluded_classes"] == ["MoA0"]
    assert out["classes"] == ["MoA1", "MoA2"]


def test_single_class_is_an_error():
    x = np.zeros((10, 2), dtype=np.float32)
    with pytest.raises(DataError, match="two"):
        linear.linear_probe(x, np.array(["a"] * 10))
