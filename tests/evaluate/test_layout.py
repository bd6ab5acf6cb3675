from __future__ import annotations

import numpy as np
from scipy import sparse

from bioaug.evaluate import layout
from bioaug.evaluate.neighbors import exact_knn, fuzzy_connectivities
from tests.evaluate.conftest import blobs


def _graph(x: np.ndarray, k: int = 15) -> sparse.csr_matrix:
    return fuzzy_connectivities(*exact_knn(x, k))


def test_find_ab_matches_umap_defaults():
    # umap-learn's fitted curve for min_dist 0.1, spread 1 (McInnes et al. 2018, appendix C)
    a, b = layout.find_ab(1.0, 0.1)
    assert abs(a - 1.577) < 0.01 and abs(b - 0.895) < 0.01
    xv = np.linspace(0.0, 3.0, 300)
    target = np.where(xv < 0.1, 1.0, np.exp(-(xv - 0.1)))
    fitted = 1.0 / (1.0 + a * xv ** (2 * b))
    assert np.abs(fitted - target).max() < 0.15


def test_spectral_init_separates_two_components_joined_by_one_edge():
    x, y = blobs(30, 2, 5, spread=10.0, seed=0)
    g = _graph(x, 10).tolil()
    g[0, 30] = g[30, 0] = 1e-3  # ensure one connected graph
    coords = layout.spectral_init(g.tocsr())
    assert coords is not None and coords.shape == (60, 2)
    # the Fiedler-like first coordinate has one sign per blob, opposite between them
    s0, s1 = np.sign(coords[y == 0, 0]), np.sign(coords[y == 1, 0])
    assert (s0 == s0[0]).all() and (s1 == -s0[0]).all()


def test_layout_keeps_blobs_apart_and_neighbours_close():
    from sklearn.manifold import trustworthiness

    x, y = blobs(60, 5, 20, spread=4.0, seed=1)
    coords = layout.umap_layout(x, _graph(x), seed=0)
    assert coords.shape == (300, 2) and coords.dtype == np.float32
    assert trustworthiness(x, coords, n_neighbors=15) > 0.9
    centres = np.stack([coords[y == c].mean(axis=0) for c in range(5)])
    radius = max(np.linalg.norm(coords[y == c] - centres[c], axis=1).mean() for c in range(5))
    gaps = np.linalg.norm(centres[:, None] - centres[None], axis=2)[np.triu_indices(5, 1)]
    assert gaps.min() > 2 * radius


def test_layout_is_seeded():
    x, _ = blobs(20, 3, 6, spread=3.0, seed=2)
    g = _graph(x)
    a = layout.umap_layout(x, g, seed=3)
    assert np.array_equal(a, layout.umap_layout(x, g, seed=3))
    assert not np.array_equal(a, layout.umap_layout(x, g, seed=4))


def test_disconnected_or_tiny_graph_still_lays_out():
    x, _ = blobs(8, 2, 4, spread=50.0, seed=3)
    coords = layout.umap_layout(x, _graph(x, 4), n_epochs=50)
    assert coords.shape == (16, 2) and np.isfinite(coords).all()
    tiny = np.arange(10, dtype=np.float32).reshape(5, 2)
    assert np.isfinite(layout.umap_layout(tiny, _graph(tiny, 3), n_epochs=20)).all()
