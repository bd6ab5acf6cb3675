from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from bioaug.evaluate import neighbors
from tests.evaluate.conftest import blobs


def _graph(x: np.ndarray):
    import anndata as ad

    g = ad.AnnData(np.zeros((len(x), 0), dtype=np.float32))
    g.obsm["X_rep"] = np.asarray(x, dtype=np.float32)
    return g


def _assert_same_sparse(a, b, atol):
    a, b = sparse.csr_matrix(a), sparse.csr_matrix(b)
    assert a.shape == b.shape
    assert (a != 0).nnz == (b != 0).nnz
    assert np.array_equal(sparse.csr_matrix(a != 0).toarray(), sparse.csr_matrix(b != 0).toarray())
    assert abs(a - b).max() <= atol


@pytest.mark.parametrize(("n", "dims", "k"), [(300, 12, 15), (120, 50, 10), (9, 3, 15)])
def test_graph_equals_scanpy(n, dims, k):
    """Known answer: scanpy's own (numba) neighbours on the same data."""
    import scanpy as sc

    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, dims)).astype(np.float32)
    x[1] = x[0]  # a duplicate: zero distance off the diagonal
    ours, ref = _graph(x), _graph(x)
    neighbors.neighbors(ours, use_rep="X_rep", n_neighbors=k)
    sc.pp.neighbors(ref, use_rep="X_rep", n_neighbors=k, random_state=0)
    _assert_same_sparse(ours.obsp["distances"], ref.obsp["distances"], 1e-6)
    _assert_same_sparse(ours.obsp["connectivities"], ref.obsp["connectivities"], 1e-6)
    assert ours.uns["neighbors"]["params"]["n_neighbors"] == ref.uns["neighbors"]["params"][
        "n_neighbors"]
    assert ours.obsp["connectivities"].dtype == ref.obsp["connectivities"].dtype


def test_smooth_knn_dist_hits_log2_k():
    x, _ = blobs(30, 3, 6, spread=3.0, seed=4)
    _, dist = neighbors.exact_knn(x, 15)
    sigma, rho = neighbors.smooth_knn_dist(dist, 15.0)
    assert np.allclose(rho, dist[:, 1])  # nearest non-zero distance
    gap = np.maximum(dist[:, 1:] - rho[:, None], 0.0)
    total = np.exp(-gap / sigma[:, None]).sum(axis=1)
    assert np.allclose(total, np.log2(15), atol=1e-3)


def test_connectivities_are_a_fuzzy_union():
    idx = np.array([[0, 1], [1, 2], [2, 0]])
    dist = np.array([[0.0, 1.0], [0.0, 2.0], [0.0, 3.0]], dtype=np.float32)
    c = neighbors.fuzzy_connectivities(idx, dist).toarray()
    # one neighbour each: ρ is its distance, so every directed membership is 1
    expected = np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]], dtype=np.float32)
    assert np.array_equal(c, expected)
    inter = neighbors.fuzzy_connectivities(idx, dist, set_op_mix_ratio=0.0).toarray()
    assert not inter.any()  # no edge is mutual


def test_leiden_reads_the_graph():
    import scanpy as sc

    x, y = blobs(40, 4, 6, spread=8.0, seed=5)
    g = _graph(x)
    neighbors.neighbors(g, use_rep="X_rep", n_neighbors=15)
    sc.tl.leiden(g, resolution=0.5, flavor="igraph", n_iterations=2, directed=False,
                 random_state=0)
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(y, g.obs["leiden"].to_numpy()) == 1.0  # the 4 blobs exactly


def test_no_umap_import_for_small_inputs():
    import subprocess
    import sys

    code = ("import sys, numpy as np, anndata as ad\n"
            "from bioaug.evaluate.neighbors import neighbors\n"
            "g = ad.AnnData(np.zeros((50, 0), np.float32))\n"
            "g.obsm['r'] = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)\n"
            "neighbors(g, use_rep='r')\n"
            "print('umap' in sys.modules, 'pynndescent' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]


def test_too_few_neighbours_is_a_clear_error():
    from bioaug.errors import ConfigError

    with pytest.raises(ConfigError, match="n_neighbors"):
        neighbors.neighbors(_graph(np.zeros((5, 2))), use_rep="X_rep", n_neighbors=1)


def test_duplicate_items_give_no_overflow_and_a_finite_graph():
    # 5 copies of 20 points, 15 neighbours: each item's 4 copies sit at distance 0, below its
    # ρ (the nearest other point), and already outweigh log2(15), so the bandwidth search
    # shrinks σ towards 0; it must not evaluate exp of those negative gaps (it overflowed)
    rng = np.random.default_rng(0)
    x = np.repeat(rng.normal(size=(20, 4)).astype(np.float32), 5, axis=0)
    idx, dist = neighbors.exact_knn(x, 15)
    with np.errstate(over="raise"):
        sigma, _ = neighbors.smooth_knn_dist(dist, 15.0)
    assert np.isfinite(sigma).all() and (sigma > 0).all()
    conn = neighbors.fuzzy_connectivities(idx, dist)
    assert np.isfinite(conn.data).all() and conn.data.max() <= 1.0
