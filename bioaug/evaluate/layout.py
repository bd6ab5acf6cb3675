"""A 2-D UMAP layout in vectorised numpy, for the evaluation pictures.

UMAP (McInnes et al., "UMAP: Uniform Manifold Approximation and Projection",
arXiv 1802.03426, §3.2 and appendix C) places the items of a fuzzy kNN graph in the plane
by stochastic gradient descent on the cross-entropy between the graph and the layout's
similarities 1 / (1 + a·d^{2b}): each edge is sampled in proportion to its weight and pulls
its ends together; each sample pushes its head away from ``negative_sample_rate`` random
items. The start is the spectral embedding of the graph (normalised-Laplacian eigenvectors).

umap-learn runs the same algorithm edge by edge in numba, which compiles for ~15–20 s in
every new process. Here each epoch updates all the edges due in it at once (from the
positions at the start of the epoch, summed per item), with umap-learn's defaults:
``min_dist`` 0.1, ``spread`` 1, learning rate 1 decaying linearly, 5 negative samples,
gradients clipped to ±4. The layout is a picture: it is not the one umap-learn draws (no
layout is reproducible across implementations), but it shows the same neighbourhoods.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse


def find_ab(spread: float = 1.0, min_dist: float = 0.1) -> tuple[float, float]:
    """Fit ``a, b`` of 1 / (1 + a·x^{2b}) to the offset exponential of ``min_dist``/``spread``.

    Least squares on 300 points of [0, 3·spread] (McInnes et al. 2018, appendix C).
    """
    from scipy.optimize import curve_fit

    xv = np.linspace(0.0, spread * 3.0, 300)
    yv = np.where(xv < min_dist, 1.0, np.exp(-(xv - min_dist) / spread))
    params, _ = curve_fit(lambda x, a, b: 1.0 / (1.0 + a * x ** (2.0 * b)), xv, yv)
    return float(params[0]), float(params[1])


def spectral_init(graph: sparse.spmatrix, seed: int = 0) -> np.ndarray | None:
    """The 2nd and 3rd eigenvectors of D^-½·W·D^-½ of a connected graph, else ``None``."""
    from scipy.sparse.csgraph import connected_components

    n = graph.shape[0]
    if n <= 10 or connected_components(graph, directed=False)[0] > 1:
        return None
    degree = np.asarray(graph.sum(axis=1)).ravel()
    scale = sparse.diags(1.0 / np.sqrt(degree))
    m = sparse.csr_matrix(scale @ graph @ scale, dtype=np.float64)
    from scipy.sparse.linalg import ArpackError, eigsh

    try:  # sparse ARPACK: a dense eigh is slow when BLAS threads contend for few cores
        vals, vecs = eigsh(m, k=3, which="LA", tol=1e-4, maxiter=n * 5,
                           ncv=min(n - 1, max(7, int(np.sqrt(n)))),
                           v0=np.random.default_rng(seed).uniform(size=n))
    except ArpackError:
        return None
    order = np.argsort(vals)[::-1]
    return vecs[:, order[1:3]]


def _initial(x: np.ndarray, graph: sparse.spmatrix, rng: np.random.Generator) -> np.ndarray:
    coords = spectral_init(graph, int(rng.integers(2**31)))
    if coords is None:  # disconnected or tiny graph: the data's two principal axes
        centred = np.asarray(x, dtype=np.float64) - np.mean(x, axis=0)
        if centred.shape[1] >= 2 and np.abs(centred).max() > 0:
            _, _, vt = np.linalg.svd(centred, full_matrices=False)
            coords = centred @ vt[:2].T
        else:
            coords = rng.uniform(-10.0, 10.0, size=(len(x), 2))
    top = np.abs(coords).max()
    coords = coords * (10.0 / top) if top > 0 else coords
    return coords + rng.normal(scale=1e-4, size=coords.shape)


def _scatter_add(out: np.ndarray, idx: np.ndarray, values: np.ndarray) -> None:
    n = out.shape[0]
    for c in range(out.shape[1]):
        out[:, c] += np.bincount(idx, weights=values[:, c], minlength=n)


def umap_layout(x: np.ndarray, graph: sparse.spmatrix, *, n_epochs: int = 200, seed: int = 0,
                negative_sample_rate: int = 5, min_dist: float = 0.1, spread: float = 1.0,
                gamma: float = 1.0) -> np.ndarray:
    """2-D UMAP layout of a fuzzy kNN graph (McInnes et al. 2018, §3.2).

    Parameters
    ----------
    x
        ``(n, d)`` data the graph was built from (used for the start when the graph is
        disconnected).
    graph
        ``(n, n)`` symmetric connectivities, e.g.
        :func:`bioaug.evaluate.neighbors.fuzzy_connectivities`.
    n_epochs
        Optimisation epochs (the most-weighted edge is sampled once per epoch).
    seed
        Seed of the start noise and of the negative samples.
    negative_sample_rate, min_dist, spread, gamma
        umap-learn's parameters of the same names.

    Returns
    -------
    ``(n, 2)`` float32 coordinates.
    """
    rng = np.random.default_rng(seed)
    a, b = find_ab(spread, min_dist)
    g = sparse.coo_matrix(graph)
    g.sum_duplicates()
    n = g.shape[0]
    y = _initial(x, g.tocsr(), rng)
    if g.nnz == 0:
        return y.astype(np.float32)
    keep = g.data >= g.data.max() / float(n_epochs)
    head, tail, weight = g.row[keep], g.col[keep], g.data[keep].astype(np.float64)
    every = weight.max() / weight  # epochs between samples of each edge
    every_neg = every / negative_sample_rate
    next_at = every.copy()
    next_neg = every_neg.copy()
    for epoch in range(n_epochs):
        alpha = 1.0 - epoch / float(n_epochs)
        due = np.flatnonzero(next_at <= epoch)
        if due.size == 0:
            continue
        h, t = head[due], tail[due]
        step = np.zeros_like(y)
        diff = y[h] - y[t]
        d2 = np.einsum("ij,ij->i", diff, diff)
        with np.errstate(divide="ignore", invalid="ignore"):
            coef = np.where(d2 > 0.0, -2.0 * a * b * d2 ** (b - 1.0) / (a * d2 ** b + 1.0), 0.0)
        pull = np.clip(coef[:, None] * diff, -4.0, 4.0) * alpha
        _scatter_add(step, h, pull)
        _scatter_add(step, t, -pull)
        next_at[due] += every[due]

        n_neg = np.floor((epoch - next_neg[due]) / every_neg[due]).astype(np.int64)
        n_neg = np.maximum(n_neg, 0)
        nh = np.repeat(h, n_neg)
        nt = rng.integers(0, n, size=nh.size)
        other = nh != nt
        nh, nt = nh[other], nt[other]
        diff = y[nh] - y[nt]
        d2 = np.einsum("ij,ij->i", diff, diff)
        with np.errstate(divide="ignore", invalid="ignore"):
            coef = 2.0 * gamma * b / ((0.001 + d2) * (a * d2 ** b + 1.0))
        push = np.where((d2 > 0.0)[:, None], np.clip(coef[:, None] * diff, -4.0, 4.0), 4.0)
        _scatter_add(step, nh, push * alpha)
        next_neg[due] += n_neg * every_neg[due]
        y += step
    return y.astype(np.float32)
