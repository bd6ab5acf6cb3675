"""The invariance metric of Ericsson, Gouk & Hospedales (BMVC 2022, arXiv 2111.11398).

"Why Do Self-Supervised Models Transfer? On the Impact of Invariance on Downstream Tasks"
measures how invariant a frozen feature extractor ``f`` is to a transformation ``T`` as the
cosine similarity of the features of ``x`` and ``T(x)`` after Mahalanobis whitening with
the feature statistics of clean images::

    μ, Σ  = mean and covariance of f(x) over clean images
    L     = Cholesky(Σ⁻¹)                  (so that Σ⁻¹ = L Lᵀ)
    inv(T, x) = cos((f(x) − μ) L, (f(T(x)) − μ) L)

averaged over images (and, by the caller, over a range of T's amplitudes). Whitening makes
every feature direction count by how much it varies on real data, so a model cannot look
invariant just because a few high-variance directions are unchanged.

Stability: with fewer images than feature dimensions (or collapsed directions) Σ is
singular. We add a ridge ``ε·mean(diag Σ)·I`` (``ε = 1e-5`` by default, scale-free) before
inverting; it changes nothing measurable when Σ is well conditioned.

Pure numpy functions; no model, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bioaug.errors import ConfigError

DEFAULT_RIDGE = 1e-5


@dataclass(frozen=True)
class Whitening:
    """Feature mean ``mu`` (D,) and whitening factor ``L`` (D, D) with Σ⁻¹ = L Lᵀ."""

    mu: np.ndarray
    L: np.ndarray
    ridge: float

    def transform(self, features: np.ndarray) -> np.ndarray:
        """``(f − μ) L`` for rows of ``features``.

        Examples
        --------
        Whitening makes both feature directions count the same:

        >>> import numpy as np
        >>> from bioaug.study.invariance_metric import fit_whitening
        >>> clean = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0], [0.0, -2.0]])
        >>> white = fit_whitening(clean, ridge=0.0).transform(clean)
        >>> np.round(white ** 2, 6).tolist()
        [[1.5, 0.0], [0.0, 1.5], [1.5, 0.0], [0.0, 1.5]]
        """
        return (np.asarray(features, dtype=np.float64) - self.mu) @ self.L


def fit_whitening(clean: np.ndarray, ridge: float = DEFAULT_RIDGE) -> Whitening:
    """μ and L = Cholesky(Σ⁻¹) of clean features ``(N, D)``, with a relative ridge on Σ.

    Examples
    --------
    Four 2-D features with mean 0 and covariance ``diag(2/3, 8/3)``, so
    ``L = diag(sqrt(1.5), sqrt(0.375))``:

    >>> import numpy as np
    >>> from bioaug.study.invariance_metric import fit_whitening
    >>> clean = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0], [0.0, -2.0]])
    >>> w = fit_whitening(clean, ridge=0.0)
    >>> w.mu.tolist(), np.round(w.L ** 2, 6).tolist()
    ([0.0, 0.0], [[1.5, 0.0], [0.0, 0.375]])
    >>> fit_whitening(np.ones((4, 2)))
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: the clean features are constant: ... invariance is undefined
    """
    x = np.asarray(clean, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ConfigError(f"need clean features of shape (N ≥ 2, D), got {list(x.shape)}")
    if not np.isfinite(x).all():
        raise ConfigError("the clean features contain NaN or inf")
    if ridge < 0:
        raise ConfigError(f"the ridge must be ≥ 0, got {ridge}")
    mu = x.mean(axis=0)
    cov = np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])
    scale = float(np.mean(np.diag(cov)))
    if scale <= 0:
        raise ConfigError("the clean features are constant: the model's output does not "
                          "depend on its input, so invariance is undefined")
    cov = cov + ridge * scale * np.eye(cov.shape[0])
    precision = np.linalg.inv(cov)
    precision = (precision + precision.T) / 2.0
    L = np.linalg.cholesky(precision)
    return Whitening(mu=mu, L=L, ridge=ridge)


def check_feature_pair(clean: np.ndarray, transformed: np.ndarray,
                       whitening: Whitening | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Both feature arrays as float ``(N, D)`` arrays of one shape, or a ConfigError.

    With ``whitening`` given, ``D`` must also be the number of features it was fitted on.

    Examples
    --------
    >>> import numpy as np
    >>> from bioaug.study.invariance_metric import check_feature_pair
    >>> a, b = check_feature_pair(np.zeros((4, 2)), np.ones((4, 2)))
    >>> a.shape, b.dtype
    ((4, 2), dtype('float64'))
    >>> check_feature_pair(np.zeros((4, 2)), np.zeros((4, 1)))
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: clean and transformed features differ in shape: [4, 2] vs [4, 1]...
    >>> check_feature_pair(np.zeros(2), np.zeros(2))
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: the clean features must be a 2-D array (N images, D features), ...
    """
    a = _as_features(clean, "clean")
    b = _as_features(transformed, "transformed")
    if a.shape != b.shape:
        raise ConfigError(f"clean and transformed features differ in shape: "
                          f"{list(a.shape)} vs {list(b.shape)}; both must be (N images, "
                          "D features) with the same N and D")
    n_fitted = whitening.mu.shape[0] if whitening is not None else a.shape[1]
    if a.shape[1] != n_fitted:
        raise ConfigError(f"the features have {a.shape[1]} dimension"
                          f"{'s' if a.shape[1] != 1 else ''} but the whitening was fitted on "
                          f"{n_fitted}; use features of the same model and layer")
    return a, b


def _as_features(features: np.ndarray, which: str) -> np.ndarray:
    """``features`` as a float64 array, or a ConfigError unless it is 2-D."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ConfigError(f"the {which} features must be a 2-D array (N images, D features), "
                          f"got shape {list(x.shape)}")
    return x


def invariance_scores(clean: np.ndarray, transformed: np.ndarray,
                      whitening: Whitening) -> np.ndarray:
    """Per-image invariance: cos((f(x) − μ)L, (f(T(x)) − μ)L), shape ``(N,)``.

    Examples
    --------
    An identity map scores 1, a sign flip −1, a quarter turn of the whitened features 0:

    >>> import numpy as np
    >>> from bioaug.study.invariance_metric import fit_whitening, invariance_scores
    >>> clean = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0], [0.0, -2.0]])
    >>> w = fit_whitening(clean, ridge=0.0)
    >>> invariance_scores(clean, clean, w).tolist(), invariance_scores(clean, -clean, w).tolist()
    ([1.0, 1.0, 1.0, 1.0], [-1.0, -1.0, -1.0, -1.0])
    >>> invariance_scores(clean, clean[[1, 2, 3, 0]], w).tolist()
    [0.0, 0.0, 0.0, 0.0]
    >>> invariance_scores(clean, clean[:3], w)
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: clean and transformed features differ in shape: [4, 2] vs [3, 2]...
    """
    a, b = check_feature_pair(clean, transformed, whitening)
    a = whitening.transform(a)
    b = whitening.transform(b)
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    denom = np.maximum(na * nb, np.finfo(np.float64).tiny)
    return np.clip(np.sum(a * b, axis=1) / denom, -1.0, 1.0)


def invariance(clean: np.ndarray, transformed: np.ndarray,
               whitening: Whitening | None = None) -> float:
    """Mean invariance over images (whitening fitted on ``clean`` unless given).

    Examples
    --------
    >>> import numpy as np
    >>> from bioaug.study.invariance_metric import invariance
    >>> clean = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0], [0.0, -2.0]])
    >>> invariance(clean, clean), invariance(clean, 2 * clean), invariance(clean, -clean)
    (1.0, 1.0, -1.0)

    Two images unchanged (1), two sign-flipped (−1): the mean is 0.

    >>> invariance(clean, np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 0.0], [0.0, 2.0]]))
    0.0
    """
    check_feature_pair(clean, transformed, whitening)
    w = whitening if whitening is not None else fit_whitening(clean)
    return float(np.mean(invariance_scores(clean, transformed, w)))
