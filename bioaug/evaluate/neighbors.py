"""The kNN graph of an embedding, as scanpy builds it, without the JIT compile.

``sc.pp.neighbors(method="umap")`` finds the neighbours (exact brute force through
scikit-learn below 8,192 items for the Euclidean metric, pynndescent above) and turns the
kNN distances into connectivities with umap-learn's fuzzy simplicial set (McInnes et al.,
"UMAP: Uniform Manifold Approximation and Projection", arXiv 1802.03426, §3.1). Importing
umap-learn compiles its numba code and pynndescent's: ~20 s in every new process, for a
computation that takes milliseconds.

:func:`neighbors` below does the exact-kNN case itself: the same scikit-learn search scanpy
runs, and the fuzzy simplicial set in vectorised numpy (:func:`fuzzy_connectivities`, a pure
function). Above the exact-search size it calls scanpy unchanged, so the graph is the one
scanpy gives at every size. Results go to the AnnData keys scanpy uses
(``obsp["distances"]``, ``obsp["connectivities"]``, ``uns["neighbors"]``), so
``sc.tl.leiden`` reads them unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse

#: Below this many items scanpy searches exact Euclidean neighbours (and so does this module).
EXACT_MAX_ITEMS = 8192
#: Binary-search tolerance on the membership sum and floor of σ (umap-learn's constants).
SMOOTH_K_TOLERANCE = 1e-5
MIN_K_DIST_SCALE = 1e-3


def exact_knn(x: np.ndarray, n_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact Euclidean kNN of ``x`` within itself, the item itself in column 0.

    Runs the brute-force ``KNeighborsTransformer`` scanpy uses for small inputs and reads it
    the way scanpy does, so ties resolve identically.

    Parameters
    ----------
    x
        ``(n, d)`` float array.
    n_neighbors
        Neighbours per item, the item itself included (scanpy's convention).

    Returns
    -------
    indices, distances
        ``(n, n_neighbors)`` arrays sorted by distance.
    """
    from sklearn.neighbors import KNeighborsTransformer

    n = len(x)
    search = KNeighborsTransformer(algorithm="brute", n_neighbors=min(n - 1, n_neighbors),
                                   metric="euclidean")
    graph = search.fit_transform(x).tocsr()
    per_row = graph.getnnz(axis=1)
    if not np.all(per_row == per_row[0]):  # cannot happen for a brute-force search
        raise AssertionError("kNN graph rows have different numbers of neighbours")
    indices = graph.indices.reshape(n, per_row[0])
    distances = graph.data.reshape(n, per_row[0]).copy()
    distances[indices == np.arange(n)[:, None]] = 0.0  # scanpy zeroes the diagonal in place
    if not (indices[:, 0] == np.arange(n)).any():
        indices = np.hstack([np.arange(n)[:, None], indices])
        distances = np.hstack([np.zeros((n, 1), dtype=distances.dtype), distances])
    return indices[:, :n_neighbors], distances[:, :n_neighbors]


def smooth_knn_dist(distances: np.ndarray, k: float, n_iter: int = 64,
                    local_connectivity: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Per-item kernel width σ and nearest-neighbour distance ρ (UMAP, McInnes 2018 §3.1).

    ρᵢ is the distance to the ``local_connectivity``-th non-zero neighbour; σᵢ solves
    Σⱼ exp(−max(0, dᵢⱼ − ρᵢ)/σᵢ) = log₂ k over the neighbours after the first, by a binary
    search run for all items at once (a row stops moving when it is within the tolerance,
    as in the sequential search). σ is floored at 10⁻³ of the mean neighbour distance.

    Parameters
    ----------
    distances
        ``(n, k)`` kNN distances sorted per row, the item itself first.
    k
        Target cardinality (the number of neighbours).
    n_iter
        Binary-search steps.
    local_connectivity
        Number of neighbours assumed connected.

    Returns
    -------
    sigmas, rhos
        float32 arrays of length ``n``.
    """
    d = np.asarray(distances, dtype=np.float32)
    n = d.shape[0]
    target = np.log2(k)
    rho = np.zeros(n, dtype=np.float32)
    positive = d > 0.0
    n_pos = positive.sum(axis=1)
    # the non-zero distances of each row, packed to the left (rows are sorted)
    order = np.argsort(~positive, axis=1, kind="stable")
    packed = np.take_along_axis(d, order, axis=1)
    index = int(np.floor(local_connectivity))
    interpolation = local_connectivity - index
    rows = np.arange(n)
    enough = n_pos >= local_connectivity
    if index > 0:
        r = packed[rows, np.clip(index - 1, 0, d.shape[1] - 1)]
        if interpolation > SMOOTH_K_TOLERANCE:
            nxt = packed[rows, np.clip(index, 0, d.shape[1] - 1)]
            r = r + np.float32(interpolation) * (nxt - r)
    else:
        r = np.float32(interpolation) * packed[:, 0]
    some = (~enough) & (n_pos > 0)
    rho[enough] = r[enough]
    rho[some] = np.where(positive[some], d[some], 0.0).max(axis=1)

    rest = d[:, 1:] - rho[:, None]  # float32, as the reference computes it
    lo = np.zeros(n)
    hi = np.full(n, np.inf)
    mid = np.ones(n)
    active = np.ones(n, dtype=bool)
    for _ in range(n_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        sub = rest[idx].astype(np.float64)
        # exp of the clipped gap: rows with distances below ρ (duplicates) would overflow
        psum = np.where(sub > 0, np.exp(-(np.maximum(sub, 0.0) / mid[idx, None])), 1.0).sum(axis=1)
        done = np.abs(psum - target) < SMOOTH_K_TOLERANCE
        above = (psum > target) & ~done
        below = ~(psum > target) & ~done
        i_above, i_below = idx[above], idx[below]
        hi[i_above] = mid[i_above]
        mid[i_above] = (lo[i_above] + hi[i_above]) / 2.0
        lo[i_below] = mid[i_below]
        unbounded = np.isinf(hi[i_below])
        mid[i_below] = np.where(unbounded, mid[i_below] * 2.0, (lo[i_below] + hi[i_below]) / 2.0)
        active[idx[done]] = False
    sigma = mid.astype(np.float32)
    floor = np.where(rho > 0.0, MIN_K_DIST_SCALE * d.mean(axis=1),
                     MIN_K_DIST_SCALE * d.mean())
    sigma = np.where(sigma < floor, floor, sigma).astype(np.float32)
    return sigma, rho


def fuzzy_connectivities(indices: np.ndarray, distances: np.ndarray, *,
                         set_op_mix_ratio: float = 1.0,
                         local_connectivity: float = 1.0) -> sparse.csr_matrix:
    """UMAP's fuzzy simplicial set of a kNN graph (McInnes et al. 2018, §3.1), as CSR.

    Membership of neighbour j of item i is exp(−max(0, dᵢⱼ − ρᵢ)/σᵢ) (0 for the item
    itself); the directed memberships A are combined by the fuzzy union A + Aᵀ − A∘Aᵀ
    (``set_op_mix_ratio`` 1; 0 gives the intersection A∘Aᵀ).

    Parameters
    ----------
    indices, distances
        ``(n, k)`` kNN arrays from :func:`exact_knn` (item itself first).
    set_op_mix_ratio
        Weight of the union against the intersection.
    local_connectivity
        Passed to :func:`smooth_knn_dist`.
    """
    indices = np.asarray(indices)
    d = np.asarray(distances, dtype=np.float32)
    n, k = indices.shape
    sigma, rho = smooth_knn_dist(d, float(k), local_connectivity=local_connectivity)
    gap = np.maximum(d - rho[:, None], 0.0)  # within ρ: membership 1
    with np.errstate(divide="ignore", invalid="ignore"):
        vals = np.where(sigma[:, None] == 0.0, 1.0,
                        np.exp(-(gap / sigma[:, None]))).astype(np.float32)
    vals[indices == np.arange(n)[:, None]] = 0.0
    keep = indices.ravel() != -1
    rows = np.repeat(np.arange(n, dtype=np.int32), k)[keep]
    a = sparse.coo_matrix((vals.ravel()[keep], (rows, indices.ravel()[keep].astype(np.int32))),
                          shape=(n, n))
    a.eliminate_zeros()
    at = a.transpose()
    both = a.multiply(at)
    out = set_op_mix_ratio * (a + at - both) + (1.0 - set_op_mix_ratio) * both
    out = sparse.csr_matrix(out)
    out.eliminate_zeros()
    return out


def neighbors(adata: Any, *, use_rep: str, n_neighbors: int = 15, random_state: int = 0
              ) -> None:
    """``sc.pp.neighbors(adata, use_rep=…, n_neighbors=…)`` (Euclidean, UMAP connectivities).

    Exact-search sizes (< :data:`EXACT_MAX_ITEMS` items) are computed here without numba;
    larger inputs go to scanpy (pynndescent). Writes ``obsp["distances"]``,
    ``obsp["connectivities"]`` and ``uns["neighbors"]`` like scanpy.
    """
    n = adata.n_obs
    if n_neighbors < 2 or n < 2:
        from bioaug.errors import ConfigError

        raise ConfigError(f"a kNN graph needs n_neighbors ≥ 2 and 2 or more items, not "
                          f"n_neighbors={n_neighbors} on {n} items")
    if n >= EXACT_MAX_ITEMS:
        import scanpy as sc

        sc.pp.neighbors(adata, use_rep=use_rep, n_neighbors=n_neighbors,
                        random_state=random_state)
        return
    x = np.asarray(adata.obsm[use_rep])
    if n_neighbors > n:  # scanpy's adjustment for very small inputs
        n_neighbors = 1 + int(0.5 * n)
    indices, distances = exact_knn(x, n_neighbors)
    dist = sparse.csr_matrix(
        (distances[:, 1:].ravel().copy(), indices[:, 1:].ravel().copy(),
         np.arange(0, n * (n_neighbors - 1) + 1, n_neighbors - 1)), shape=(n, n))
    adata.obsp["distances"] = dist
    adata.obsp["connectivities"] = fuzzy_connectivities(indices, distances)
    adata.uns["neighbors"] = {
        "connectivities_key": "connectivities", "distances_key": "distances",
        "params": {"n_neighbors": int(n_neighbors), "method": "umap",
                   "random_state": random_state, "metric": "euclidean", "use_rep": use_rep},
    }
