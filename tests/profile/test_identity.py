"""The identity of the features a correction was fitted on."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest

from bioaug.errors import DataError
from bioaug.profile.identity import check_same_features, feature_identity, model_identity


def test_identity_of_raw_backbone_and_unrecorded_features():
    a = ad.AnnData(obs={"x": ["a", "b"]})
    a.obsm["X_bioaug"] = np.zeros((2, 3), dtype=np.float32)
    assert feature_identity(a, "X_bioaug") == {"rep": "X_bioaug", "layer": "X_bioaug",
                                               "n_features": 3, "model": ""}
    a.uns["bioaug"] = {"kind": "raw", "layer": "backbone",
                       "models": {"raw": {"raw": "area-averaged to 16×16", "out_dim": 3}}}
    assert feature_identity(a, "X_bioaug")["model"] == "model raw: raw area-averaged to 16×16"
    assert model_identity({"models": {"0": {"backbone": "resnet18",
                                            "weights": "random initialisation (seed 4)"}}}) \
        == "model 0: backbone resnet18, weights random initialisation (seed 4)"


def test_same_features_pass_and_others_are_named():
    fitted = {"rep": "X_bioaug", "layer": "stage3", "n_features": 8, "model": "m"}
    check_same_features(fitted, {**fitted, "rep": "X_bioaug_stage3"})  # same layer
    with pytest.raises(DataError, match=r"differ in layer, n_features, model"):
        check_same_features(fitted, {"rep": "X", "layer": "X", "n_features": 2, "model": ""})
    with pytest.raises(DataError, match="do not record which features"):
        check_same_features(None, fitted)
