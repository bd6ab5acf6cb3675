"""Clustering of an embedding against a label: Leiden and k-means, AMI / ARI, silhouette.

The protocol follows the "No Free Lunch" paper (Bendidi et al., arXiv 2304.11718): an
unsupervised clustering of the frozen embedding is compared with the phenotype label by the
adjusted mutual information (AMI). Two clusterings are scored:

* **Leiden** (Traag et al., Sci. Rep. 2019) on scanpy's kNN graph
  (``sc.pp.neighbors(use_rep=…)``, computed without numba below 8,192 items by
  :mod:`bioaug.evaluate.neighbors`), igraph flavour, at the resolution whose number of
  clusters equals the number of label classes. The resolution is found by a bounded search
  (doubling/halving to bracket the target, then bisection); the closest count is kept when
  no resolution hits it exactly, and both are reported.
* **k-means** with ``k`` = number of classes.

Wide representations are first reduced to at most ``max_dims`` principal components
(default 50, as scanpy does before building a graph): it makes the kNN search and k-means
fast on 10⁵ items and removes noise dimensions. The reduction is reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score, silhouette_score

#: PCA target dimension for the graph and k-means (representations this narrow are kept).
DEFAULT_MAX_DIMS = 50
#: Items used for the silhouette (an O(n²) score) when there are more.
DEFAULT_SILHOUETTE_SAMPLE = 10_000


def reduce_dims(x: np.ndarray, max_dims: int = DEFAULT_MAX_DIMS, seed: int = 0,
                chunk: int = 65_536) -> tuple[np.ndarray, dict[str, Any]]:
    """PCA to ``max_dims`` components when ``x`` is wider; returns (reduced, info).

    Exact PCA through the ``d × d`` covariance matrix (float32 products over row chunks,
    accumulated in float64, then ``eigh``): for embedding widths (≤ a few thousand) this is one pass over
    the data and much faster than a randomized SVD of the ``n × d`` matrix. Component signs
    are fixed (largest loading positive) so the result is deterministic.
    """
    x = np.asarray(x, dtype=np.float32)
    n, d = x.shape
    if d <= max_dims or n <= max_dims:
        return x, {"pca": False, "dims": int(d)}
    mean = x.mean(axis=0, dtype=np.float64)
    mean32 = mean.astype(np.float32)
    cov = np.zeros((d, d), dtype=np.float64)
    for start in range(0, n, chunk):  # float32 products per chunk, float64 accumulation
        block = x[start:start + chunk] - mean32
        cov += (block.T @ block).astype(np.float64)
    cov /= max(n - 1, 1)
    evals, evecs = np.linalg.eigh(cov)
    order = np.argsort(evals)[::-1][:max_dims]
    comps = evecs[:, order]
    comps *= np.where(comps[np.abs(comps).argmax(axis=0), np.arange(max_dims)] < 0, -1.0, 1.0)
    reduced = np.empty((n, max_dims), dtype=np.float32)
    comps32 = comps.astype(np.float32)
    for start in range(0, n, chunk):
        reduced[start:start + chunk] = (x[start:start + chunk] - mean32) @ comps32
    total = float(np.clip(evals, 0, None).sum())
    explained = float(np.clip(evals[order], 0, None).sum() / total) if total > 0 else 1.0
    return reduced, {"pca": True, "dims": int(max_dims), "input_dims": int(d),
                     "explained_variance": explained}


def knn_graph(x: np.ndarray, n_neighbors: int = 15, seed: int = 0) -> Any:
    """An AnnData holding scanpy's kNN graph of ``x`` (``sc.pp.neighbors(use_rep="X_rep")``).

    Built by :func:`bioaug.evaluate.neighbors.neighbors`: the graph scanpy gives, without
    the numba compile below the exact-search size.
    """
    import anndata as ad

    from bioaug.evaluate.neighbors import neighbors

    graph = ad.AnnData(np.zeros((len(x), 0), dtype=np.float32))
    graph.obsm["X_rep"] = np.asarray(x, dtype=np.float32)
    neighbors(graph, use_rep="X_rep", n_neighbors=min(n_neighbors, max(2, len(x) - 1)),
              random_state=seed)
    return graph


@dataclass
class LeidenResult:
    labels: np.ndarray
    resolution: float
    n_clusters: int
    tries: int
    exact: bool


def leiden_labels(graph: Any, resolution: float, seed: int = 0) -> np.ndarray:
    """Leiden (igraph flavour, 2 iterations, undirected) on a graph from :func:`knn_graph`."""
    import scanpy as sc

    sc.tl.leiden(graph, resolution=resolution, flavor="igraph", n_iterations=2,
                 directed=False, random_state=seed, key_added="_leiden")
    return graph.obs["_leiden"].to_numpy().astype(np.int64)


def leiden_matching(graph: Any, n_clusters: int, *, seed: int = 0, max_tries: int = 20,
                    start: float = 1.0, low: float = 1e-4, high: float = 100.0) -> LeidenResult:
    """Search the Leiden resolution whose number of clusters equals ``n_clusters``.

    The number of clusters grows (not strictly) with the resolution. From ``start``, the
    next resolution is interpolated in log–log space from the counts seen so far (at first
    ``res · target / count``, limited to a factor 4 per step) until the target is
    bracketed; inside a bracket the interpolation is kept only when it falls well inside
    it, otherwise the geometric midpoint is used (so the search always converges), at most
    ``max_tries`` Leiden runs in all. The run closest to the target is returned (the
    smaller resolution on ties), with ``exact`` telling whether the count was hit.
    """
    best: tuple[int, float, np.ndarray] | None = None
    tries = 0

    def run(res: float) -> int:
        nonlocal best, tries
        tries += 1
        labels = leiden_labels(graph, res, seed)
        k = int(labels.max()) + 1 if len(labels) else 0
        gap = abs(k - n_clusters)
        if best is None or gap < best[0] or (gap == best[0] and res < best[1]):
            best = (gap, res, labels)
        return k

    lo: tuple[float, int] | None = None  # (resolution, count) with count < target
    hi: tuple[float, int] | None = None  # (resolution, count) with count > target
    res = start
    target = float(n_clusters)
    while tries < max_tries:
        k = run(res)
        if k == n_clusters:
            break
        if k < n_clusters:
            lo = (res, k) if lo is None or res > lo[0] else lo
        else:
            hi = (res, k) if hi is None or res < hi[0] else hi
        if lo is not None and hi is not None:
            mid = float(np.sqrt(lo[0] * hi[0]))
            nxt = _loglog_interpolate(lo, hi, target)
            a, b = np.log(lo[0]), np.log(hi[0])
            inside = nxt is not None and a + 0.1 * (b - a) < np.log(nxt) < b - 0.1 * (b - a)
            res = nxt if inside and nxt is not None else mid
            if hi[0] / lo[0] < 1.0 + 1e-6:
                break
        else:
            factor = float(np.clip(target / max(k, 1), 0.25, 4.0))
            if factor == 1.0:
                factor = 2.0 if k < n_clusters else 0.5
            res = res * factor
            if res < low or res > high:
                break
    assert best is not None
    gap, res, labels = best
    return LeidenResult(labels=labels, resolution=float(res), n_clusters=int(labels.max()) + 1,
                        tries=tries, exact=gap == 0)


def _loglog_interpolate(lo: tuple[float, int], hi: tuple[float, int], target: float
                        ) -> float | None:
    """Resolution where the log–log line through ``lo`` and ``hi`` reaches ``target``."""
    (r0, k0), (r1, k1) = lo, hi
    if k0 <= 0 or k1 <= k0:
        return None
    t = (np.log(target) - np.log(k0)) / (np.log(k1) - np.log(k0))
    return float(np.exp(np.log(r0) + t * (np.log(r1) - np.log(r0))))


def kmeans_labels(x: np.ndarray, k: int, seed: int = 0, n_init: int = 3) -> np.ndarray:
    """k-means (k-means++ initialisation, best of ``n_init``) cluster labels."""
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, n_init=n_init, random_state=seed)
    return km.fit_predict(np.asarray(x, dtype=np.float32)).astype(np.int64)


def agreement(truth: np.ndarray, clusters: np.ndarray) -> dict[str, float]:
    """Adjusted mutual information and adjusted Rand index of ``clusters`` vs ``truth``."""
    return {"ami": float(adjusted_mutual_info_score(truth, clusters)),
            "ari": float(adjusted_rand_score(truth, clusters))}


def label_silhouette(x: np.ndarray, labels: np.ndarray, *,
                     sample: int = DEFAULT_SILHOUETTE_SAMPLE, seed: int = 0) -> dict[str, Any]:
    """Silhouette of the label classes in embedding space (Euclidean), subsampled if big.

    The subsample is stratified by nothing (uniform, seeded); ``n_items`` is how many items
    the score was computed on.
    """
    n = len(x)
    idx = np.arange(n)
    if n > sample:
        idx = np.sort(np.random.default_rng(seed).choice(n, size=sample, replace=False))
    lab = np.asarray(labels)[idx]
    n_cls = len(np.unique(lab))
    if n_cls < 2 or n_cls >= len(idx):
        return {"value": None, "n_items": len(idx), "n_classes": int(n_cls),
                "note": "silhouette needs 2 ≤ classes < items"}
    value = silhouette_score(np.asarray(x, dtype=np.float32)[idx], lab, metric="euclidean")
    return {"value": float(value), "n_items": len(idx), "n_classes": int(n_cls),
            "subsampled": bool(n > sample), "metric": "euclidean"}


def cluster_and_score(x: np.ndarray, labels: np.ndarray, *, seed: int = 0,
                      max_dims: int = DEFAULT_MAX_DIMS, n_neighbors: int = 15,
                      max_tries: int = 20, kmeans_n_init: int = 3,
                      silhouette_sample: int = DEFAULT_SILHOUETTE_SAMPLE,
                      timings: dict[str, float] | None = None) -> dict[str, Any]:
    """Leiden + k-means AMI/ARI and the label silhouette of embedding ``x``.

    Returns the ``report["clustering"]`` block; ``labels`` are the true classes (any dtype).
    """
    import time

    timings = timings if timings is not None else {}
    truth_names, truth = np.unique(np.asarray(labels).astype(str), return_inverse=True)
    n_classes = len(truth_names)
    n = len(x)
    t0 = time.perf_counter()
    reduced, pca_info = reduce_dims(x, max_dims, seed)
    timings["pca"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    graph = knn_graph(reduced, n_neighbors, seed)
    timings["neighbors"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    leiden = leiden_matching(graph, n_classes, seed=seed, max_tries=max_tries)
    timings["leiden"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    km = kmeans_labels(reduced, n_classes, seed, kmeans_n_init)
    timings["kmeans"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    sil = label_silhouette(x, truth, sample=silhouette_sample, seed=seed)
    timings["silhouette"] = time.perf_counter() - t0

    return {
        "n_items": int(n),
        "n_classes": int(n_classes),
        "representation": pca_info,
        "n_neighbors": int(min(n_neighbors, max(2, n - 1))),
        "leiden": {**agreement(truth, leiden.labels), "resolution": leiden.resolution,
                   "n_clusters": leiden.n_clusters, "target_clusters": int(n_classes),
                   "exact": leiden.exact, "tries": leiden.tries, "n_items": int(n),
                   "n_classes": int(n_classes)},
        "kmeans": {**agreement(truth, km), "k": int(n_classes), "n_init": int(kmeans_n_init),
                   "n_items": int(n), "n_classes": int(n_classes)},
        "silhouette": sil,
    }
