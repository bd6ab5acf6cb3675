"""Linear evaluation: multinomial logistic regression on frozen embeddings.

The standard probe of self-supervised representations (the "No Free Lunch" paper reports
overall and *per-class* linear accuracy; Ericsson et al. 2022 use multinomial logistic
regression). Features are standardised on the training split; the held-out split is
stratified by class, and *grouped* when a group column is given (on BBBC021 the compound:
no compound is on both sides, otherwise the probe could recognise a compound instead of
its mechanism of action).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from bioaug.errors import DataError


def split_indices(labels: np.ndarray, groups: np.ndarray | None = None, *,
                  test_size: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Train/test indices: stratified, grouped by ``groups`` when given.

    Grouped splits use ``StratifiedGroupKFold`` with ``round(1/test_size)`` folds and keep
    the first fold as the test set, so every group is entirely on one side.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedShuffleSplit

    labels = np.asarray(labels)
    idx = np.arange(len(labels))
    if groups is not None:
        n_groups = len(np.unique(groups))
        n_splits = max(2, min(round(1.0 / test_size), n_groups))
        if n_groups < 2:
            raise DataError("a grouped split needs at least two groups; found one")
        cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        with warnings.catch_warnings():  # "least populated class has fewer than n_splits"
            warnings.simplefilter("ignore", UserWarning)
            train, test = next(cv.split(idx, labels, groups))
        return np.sort(train), np.sort(test)
    _, counts = np.unique(labels, return_counts=True)
    if counts.min() < 2:
        # classes of one item cannot be stratified: fall back to a plain seeded split
        rng = np.random.default_rng(seed)
        perm = rng.permutation(len(labels))
        n_test = max(1, round(test_size * len(labels)))
        return np.sort(perm[n_test:]), np.sort(perm[:n_test])
    sss = StratifiedShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    train, test = next(sss.split(idx, labels))
    return np.sort(train), np.sort(test)


def fit_probe(x_train: np.ndarray, y_train: np.ndarray, *, c: float = 1.0,
              max_iter: int = 300, seed: int = 0) -> Any:
    """Standardise + multinomial logistic regression (lbfgs), fitted on the training split."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(),
                          LogisticRegression(C=c, max_iter=max_iter, random_state=seed))
    with warnings.catch_warnings():  # reported as model.converged instead
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(np.asarray(x_train, dtype=np.float32), y_train)
    return model


def per_class_accuracy(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]
                       ) -> dict[str, float | None]:
    """Recall of each class (accuracy on the test items of that class); None if absent."""
    out: dict[str, float | None] = {}
    for c in classes:
        m = y_true == c
        out[c] = float((y_pred[m] == c).mean()) if m.any() else None
    return out


def linear_probe(x: np.ndarray, labels: np.ndarray, groups: np.ndarray | None = None, *,
                 test_size: float = 0.2, seed: int = 0, c: float = 1.0,
                 max_iter: int = 300, max_train: int | None = 50_000,
                 group_column: str | None = None) -> dict[str, Any]:
    """Held-out linear accuracy, per-class accuracy and confusion matrix.

    ``max_train`` caps the training items (a seeded uniform subsample) so the probe stays
    fast on 10⁵ items; ``n_train`` reports what was used. With ``groups``, classes made of
    a single group (e.g. the DMSO control, one compound) cannot be split and are left out
    (``excluded_classes``).
    """
    from sklearn.metrics import confusion_matrix

    y = np.asarray(labels).astype(str)
    x = np.asarray(x)
    excluded: list[str] = []
    if groups is not None:
        # a class made of one group (e.g. the DMSO control, one compound) can only sit on one
        # side of a grouped split: it cannot be probed honestly, so it is left out (reported)
        g_all = np.asarray(groups).astype(str)
        per_class_groups = pd.Series(g_all).groupby(y).nunique()
        excluded = sorted(per_class_groups.index[per_class_groups < 2].tolist())
        if excluded:
            keep = ~np.isin(y, excluded)
            x, y, groups = x[keep], y[keep], g_all[keep]
    classes = sorted(np.unique(y).tolist())
    if len(classes) < 2:
        raise DataError(f"the linear probe needs two classes with items; found {classes}"
                        + (f" after leaving out single-group classes {excluded}" if excluded
                           else ""))
    train, test = split_indices(y, groups, test_size=test_size, seed=seed)
    n_train_total = len(train)
    if max_train is not None and len(train) > max_train:
        rng = np.random.default_rng(seed)
        train = np.sort(rng.choice(train, size=max_train, replace=False))
    train_classes = sorted(np.unique(y[train]).tolist())
    if len(train_classes) < 2:
        raise DataError("the training split holds a single class; a linear probe needs two",
                        hint="use more items per class or a smaller test fraction")
    model = fit_probe(x[train], y[train], c=c, max_iter=max_iter, seed=seed)
    pred = model.predict(np.asarray(x[test], dtype=np.float32))
    cm = confusion_matrix(y[test], pred, labels=classes)
    out: dict[str, Any] = {
        "accuracy": float((pred == y[test]).mean()),
        "balanced_accuracy": _balanced(y[test], pred),
        "per_class": per_class_accuracy(y[test], pred, classes),
        "per_class_n_test": {k: int((y[test] == k).sum()) for k in classes},
        "classes": classes,
        "confusion_matrix": cm.tolist(),
        "n_train": len(train),
        "n_train_available": int(n_train_total),
        "n_test": len(test),
        "n_items": len(test),
        "n_classes": len(classes),
        "n_classes_test": len(np.unique(y[test])),
        "classes_missing_from_train": [k for k in classes if k not in train_classes],
        "excluded_classes": excluded,
        "split": {"test_size": test_size,
                  "grouped_by": group_column if groups is not None else None,
                  "seed": seed},
        "model": {"type": "LogisticRegression(multinomial, lbfgs)", "C": c,
                  "max_iter": max_iter, "standardised": True,
                  "converged": bool(np.max(model[-1].n_iter_) < max_iter)},
    }
    if groups is not None:
        g = np.asarray(groups).astype(str)
        out["split"]["n_groups_train"] = len(np.unique(g[train]))
        out["split"]["n_groups_test"] = len(np.unique(g[test]))
        out["split"]["groups_on_both_sides"] = len(np.intersect1d(g[train], g[test]))
    return out


def _balanced(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean per-class recall over the classes present in the test split."""
    from sklearn.metrics import balanced_accuracy_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return float(balanced_accuracy_score(y_true, y_pred))


def default_group_column(obs: pd.DataFrame, label: str) -> str | None:
    """The column to group the split by: the compound for MoA labels (BBBC021), else none."""
    if "compound" in obs.columns and label != "compound":
        return "compound"
    return None
