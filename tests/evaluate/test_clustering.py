from __future__ import annotations

import numpy as np
import pytest

from bioaug.evaluate import clustering
from tests.evaluate.conftest import blobs


def test_blobs_give_ami_one(blob_data):
    x, y = blob_data
    out = clustering.cluster_and_score(x, y, seed=0)
    assert out["leiden"]["ami"] > 0.98
    assert out["kmeans"]["ami"] > 0.98
    assert out["leiden"]["ari"] > 0.98
    assert out["leiden"]["n_clusters"] == 4 and out["leiden"]["exact"]
    assert out["n_items"] == 240 and out["n_classes"] == 4
    assert out["silhouette"]["value"] > 0.5


def test_random_embedding_gives_ami_zero():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 16)).astype(np.float32)
    y = rng.integers(0, 4, 400)
    out = clustering.cluster_and_score(x, y, seed=0)
    assert abs(out["leiden"]["ami"]) < 0.05
    assert abs(out["kmeans"]["ami"]) < 0.05
    assert abs(out["silhouette"]["value"]) < 0.05


def test_leiden_search_hits_the_class_count():
    x, _ = blobs(40, 6, 8, spread=6.0, seed=2)
    graph = clustering.knn_graph(x, 15, 0)
    for target in (6, 9, 12):  # 6 separate blobs: fewer clusters is impossible
        res = clustering.leiden_matching(graph, target, seed=0, max_tries=25)
        assert res.n_clusters == target, (target, res)
        assert res.exact and res.tries <= 25


def test_leiden_search_is_bounded_and_reports_closest():
    x, _ = blobs(20, 2, 4, spread=20.0, seed=3)
    graph = clustering.knn_graph(x, 10, 0)
    res = clustering.leiden_matching(graph, 39, seed=0, max_tries=4)
    assert res.tries == 4
    assert not res.exact and res.n_clusters != 39


def test_reduce_dims_only_when_wide():
    x = np.random.default_rng(0).normal(size=(200, 80)).astype(np.float32)
    r, info = clustering.reduce_dims(x, 50)
    assert r.shape == (200, 50) and info["pca"] and info["input_dims"] == 80
    r, info = clustering.reduce_dims(x[:, :30], 50)
    assert r.shape == (200, 30) and not info["pca"]


def test_silhouette_subsample_reports_count(blob_data):
    x, y = blob_data
    out = clustering.label_silhouette(x, y, sample=100, seed=0)
    assert out["n_items"] == 100 and out["subsampled"]
    assert out["value"] == pytest.approx(clustering.label_silhouette(x, y)["value"], abs=0.1)


def test_reduce_dims_matches_sklearn_pca():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(5)
    x = (rng.normal(size=(300, 60)) * np.linspace(5, 0.1, 60)).astype(np.float32)
    ours, info = clustering.reduce_dims(x, 10, chunk=64)  # several chunks
    ref = PCA(n_components=10, svd_solver="full").fit(x)
    np.testing.assert_allclose(np.abs(ours), np.abs(ref.transform(x)), rtol=1e-3, atol=1e-3)
    assert info["explained_variance"] == pytest.approx(ref.explained_variance_ratio_.sum(),
                                                       rel=1e-5)
