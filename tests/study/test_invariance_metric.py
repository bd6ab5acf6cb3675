"""The Ericsson et al. invariance metric on features with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from bioaug.errors import ConfigError
from bioaug.study.invariance_metric import fit_whitening, invariance, invariance_scores


def test_whitening_factor_inverts_covariance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 4)) @ rng.normal(size=(4, 4))
    w = fit_whitening(x, ridge=0.0)
    cov = np.cov(x, rowvar=False)
    np.testing.assert_allclose(w.L @ w.L.T, np.linalg.inv(cov), rtol=1e-8)
    z = w.transform(x)  # whitened features have identity covariance under L L^T = Σ^-1
    np.testing.assert_allclose(np.cov(z, rowvar=False), np.eye(4), atol=1e-8)


def test_identical_features_give_one_and_independent_give_zero():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4000, 8))
    assert invariance(x, x) == pytest.approx(1.0)
    y = rng.normal(size=(4000, 8))
    assert abs(invariance(x, y)) < 0.05
    assert invariance(x, -x + 2 * x.mean(0)) == pytest.approx(-1.0)


def test_whitening_weighs_directions_by_their_variance():
    # direction 0 varies a lot, direction 1 barely: a change along the low-variance
    # direction must count as much as one along the high-variance one after whitening.
    rng = np.random.default_rng(2)
    x = np.c_[rng.normal(0, 100, 2000), rng.normal(0, 1, 2000)]
    t = x.copy()
    t[:, 1] = rng.normal(0, 1, 2000)  # low-variance coordinate replaced by noise
    raw_cos = np.mean(np.sum(x * t, 1) / np.linalg.norm(x, axis=1) / np.linalg.norm(t, axis=1))
    assert raw_cos > 0.98  # plain cosine is fooled
    assert invariance(x, t) < 0.8  # the whitened metric is not


def test_ridge_keeps_singular_covariance_finite():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(10, 50))  # fewer images than dimensions
    s = invariance_scores(x, x + 0.001 * rng.normal(size=x.shape), fit_whitening(x, ridge=1e-3))
    assert np.isfinite(s).all() and s.mean() > 0.9


def test_bad_inputs():
    with pytest.raises(ConfigError, match="constant"):
        fit_whitening(np.ones((5, 3)))
    with pytest.raises(ConfigError, match="NaN"):
        fit_whitening(np.array([[np.nan, 1.0], [1.0, 2.0]]))
    w = fit_whitening(np.random.default_rng(0).normal(size=(20, 3)))
    with pytest.raises(ConfigError, match="differ in shape"):
        invariance_scores(np.zeros((4, 3)), np.zeros((5, 3)), w)


CLEAN = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0], [0.0, -2.0]])


def test_transformed_features_with_fewer_columns_are_refused():
    # a single column would broadcast against the 2-D mean and score 0.447
    with pytest.raises(ConfigError, match=r"differ in shape: \[4, 2\] vs \[4, 1\]"):
        invariance(CLEAN, CLEAN[:, :1])
    with pytest.raises(ConfigError, match="whitening was fitted on 2"):
        invariance_scores(CLEAN[:, :1], CLEAN[:, :1], fit_whitening(CLEAN))


def test_one_dimensional_features_are_refused():
    w = fit_whitening(CLEAN)
    with pytest.raises(ConfigError, match=r"clean features must be a 2-D array.*\[2\]"):
        invariance_scores(CLEAN[0], CLEAN[0], w)
    with pytest.raises(ConfigError, match=r"transformed features must be a 2-D array"):
        invariance(CLEAN, CLEAN[0])
