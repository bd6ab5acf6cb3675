"""Known answers of the correction maths."""

from __future__ import annotations

import numpy as np
import pytest

from bioaug.errors import ConfigError, DataError
from bioaug.profile import steps as S


def test_robust_z_of_a_hand_made_table():
    # one feature; controls 1, 2, 3, 4, 100: median 3, MAD 1 → scale 1.4826
    x = np.array([[1.0], [2.0], [3.0], [4.0], [100.0], [6.0], [0.0]])
    ctrl = np.array([True] * 5 + [False] * 2)
    plates = np.array(["p"] * 7)
    fitted = S.fit_location_scale("robust", x, plates, ctrl, scope="plate", location="median",
                                  scale="mad")
    z = S.apply_location_scale(fitted, x, plates)
    assert z[5, 0] == pytest.approx(3 / 1.4826) and z[6, 0] == pytest.approx(-3 / 1.4826)
    assert z[2, 0] == 0.0


def test_standardize_and_center_per_plate():
    x = np.array([[1.0, 10], [3.0, 10], [5.0, 30], [11.0, 0], [13.0, 0], [0.0, 0]])
    ctrl = np.array([True, True, False, True, True, False])
    plates = np.array(["a", "a", "a", "b", "b", "b"])
    c = S.apply_location_scale(S.fit_location_scale(
        "center", x, plates, ctrl, scope="plate", location="mean", scale=None), x, plates)
    np.testing.assert_allclose(c, [[-1, 0], [1, 0], [3, 20], [-1, 0], [1, 0], [-12, 0]])
    fitted = S.fit_location_scale("standardize", x, plates, ctrl, scope="plate",
                                  location="mean", scale="std")
    s = S.apply_location_scale(fitted, x, plates)
    np.testing.assert_allclose(s[:, 0], [-1, 1, 3, -1, 1, -12])
    # the second feature is constant on the controls: left centred, scale 1, reported
    np.testing.assert_allclose(s[:, 1], [0, 0, 20, 0, 0, 0])
    assert fitted.info["constant_control_features"] == {"a": 1, "b": 1}


@pytest.mark.parametrize("method", ["zca", "pca"])
def test_sphering_makes_control_covariance_the_identity(method):
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(5, 5))
    x = rng.normal(size=(400, 5)) @ mix + 3.0
    ctrl = np.arange(400) < 300
    plates = np.zeros(400, dtype=str)
    fitted = S.fit_sphere(x, plates, ctrl, scope="global", method=method, epsilon=0.0,
                          n_components=None)
    out = S.apply_sphere(fitted, x, plates)
    np.testing.assert_allclose(np.cov(out[ctrl], rowvar=False), np.eye(5), atol=1e-5)
    np.testing.assert_allclose(out[ctrl].mean(axis=0), 0.0, atol=1e-9)
    if method == "zca":  # ZCA is the symmetric whitening: W = Wᵀ
        w = fitted.arrays["matrix"][0]
        np.testing.assert_allclose(w, w.T, atol=1e-9)


def test_per_plate_tvn_removes_a_per_plate_affine_transform():
    rng = np.random.default_rng(1)
    d, n_ctrl = 4, 50
    z = rng.normal(size=(n_ctrl, d))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # sample cov = I
    treated = rng.normal(size=(3, d)) * 2
    xs, plates, ctrl = [], [], []
    for p in range(3):
        q = rng.normal(size=(d, d))
        a = q @ q.T + np.eye(d)  # symmetric positive definite: the plate's distortion
        b = rng.normal(size=d) * 10
        xs.append(np.vstack([z @ a.T + b, treated @ a.T + b]))
        plates += [f"P{p}"] * (n_ctrl + 3)
        ctrl += [True] * n_ctrl + [False] * 3
    x, plates, ctrl = np.vstack(xs), np.array(plates), np.array(ctrl)
    fitted = S.fit_sphere(x, plates, ctrl, scope="plate", method="zca", epsilon=0.0,
                          n_components=None)
    out = S.apply_sphere(fitted, x, plates)
    for p in range(3):
        rows = (plates == f"P{p}") & ~ctrl
        np.testing.assert_allclose(out[rows], treated, atol=1e-6)


def test_sphere_with_fewer_controls_than_features_says_what_to_do():
    x = np.random.default_rng(0).normal(size=(20, 8))
    ctrl = np.arange(20) % 4 == 0
    plates = np.array(["a"] * 10 + ["b"] * 10)
    with pytest.raises(DataError, match=r"plate 'a' has 3 control profiles for 8 features.*"
                                        r"\n  hint: use sphere scope global.*method pca"):
        S.fit_sphere(x, plates, ctrl, scope="plate", method="zca", epsilon=1e-6,
                     n_components=None)
    with pytest.raises(ConfigError, match="PCA whitening per plate"):
        S.fit_sphere(x, plates, ctrl, scope="plate", method="pca", epsilon=1e-6,
                     n_components=None)
    fitted = S.fit_sphere(x, plates, ctrl, scope="global", method="pca", epsilon=1e-6,
                          n_components=None)
    assert fitted.info["output_dims"] == 4  # 5 controls: rank 4


def test_feature_selection_drops_constant_and_correlated_features():
    rng = np.random.default_rng(0)
    a = rng.normal(size=100)
    x = np.stack([a, 2 * a + 1e-3 * rng.normal(size=100), rng.normal(size=100),
                  np.full(100, 5.0)], axis=1)
    keep, info = S.select_features(x, variance_threshold=1e-8, correlation_threshold=0.9)
    assert keep.tolist() == [0, 2]
    assert info == {"n_input": 4, "dropped_variance": 1, "dropped_correlation": 1, "n_kept": 2}
