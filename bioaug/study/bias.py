"""Class-level bias of transformation choices (Bendidi et al., "No Free Lunch in
Self-Supervised Representation Learning", arXiv 2304.11718).

The paper's first research question: changing a transformation's amplitude or probability
shifts *per-class* accuracy a lot even when overall accuracy hardly moves, and shifts
different classes in different directions. This module turns a sweep's tidy results
(``results.csv``: one row per point × class) into

- the per-class table: accuracy of every class at every parameter value, mean ± std over
  seeds (:func:`per_class_table`);
- the trends: which classes gain and which lose as a parameter grows — least-squares slope
  of class accuracy against the parameter, and the change from its lowest to its highest
  value (:func:`class_trends`);
- the inter-class bias matrix: the Pearson correlation, across sweep points (each trained
  model), between the per-class accuracies of every pair of classes (:func:`bias_matrix`).
  Negative entries are the paper's point — a choice that helps one class hurts the other;
- the overall-vs-per-class spread: how far overall accuracy moves across the sweep compared
  with the largest per-class move (:func:`spread_summary`).

All functions are pure (DataFrame in, DataFrame out); :mod:`bioaug.study.bias_report`
draws and writes them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from bioaug.errors import ConfigError

#: Columns every results table has (see :mod:`bioaug.study.results`).
REQUIRED = ("point", "seed", "class", "class_accuracy", "linear_accuracy")


def check_results(results: pd.DataFrame, axes: Sequence[str]) -> None:
    """Raise a :class:`ConfigError` unless ``results`` has the columns of a results table
    (:data:`REQUIRED` and one per axis) and at least one row.

    Examples
    --------
    >>> import pandas as pd
    >>> from bioaug.study.bias import check_results
    >>> results = pd.DataFrame({"point": [0], "seed": [0], "class": ["a"],
    ...                         "class_accuracy": [0.5], "linear_accuracy": [0.5]})
    >>> check_results(results, [])
    >>> check_results(results, ["p"])
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: the results table lacks column(s) ['p']; it has ['point', ...]
    >>> check_results(pd.DataFrame(), ["p"])
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: the results table is empty: no sweep point has finished
    """
    if results.empty:
        raise ConfigError("the results table is empty: no sweep point has finished")
    missing = [c for c in (*REQUIRED, *axes) if c not in results.columns]
    if missing:
        raise ConfigError(f"the results table lacks column(s) {missing}; it has "
                          f"{list(results.columns)}")


def axis_positions(values: Sequence[Any]) -> tuple[np.ndarray, list[str], bool]:
    """Numeric x positions for axis values, their labels, and whether the axis is numeric.

    Numbers are used as they are; anything else (a range ``[lo, hi]`` stored as JSON text,
    a boolean, a name) becomes its rank in order of first appearance.

    Examples
    --------
    >>> from bioaug.study.bias import axis_positions
    >>> xs, labels, numeric = axis_positions([0.5, 1, 2])
    >>> xs.tolist(), labels, numeric
    ([0.5, 1.0, 2.0], ['0.5', '1', '2'], True)
    >>> xs, labels, numeric = axis_positions(["[0, 1]", "[1, 2]", "[0, 1]"])
    >>> xs.tolist(), numeric
    ([0.0, 1.0, 0.0], False)
    >>> axis_positions([True, False])[0].tolist()
    [0.0, 1.0]
    """
    labels = [str(v) for v in values]
    try:
        xs = np.array([float(v) for v in values], dtype=float)
        if not any(isinstance(v, bool) for v in values) and np.isfinite(xs).all():
            return xs, labels, True
    except (TypeError, ValueError):
        pass
    order = list(dict.fromkeys(labels))
    return np.array([order.index(s) for s in labels], dtype=float), labels, False


def sort_key(value: Any) -> tuple[int, Any]:
    """Sort numbers numerically, then JSON lists by their content, then text.

    Examples
    --------
    >>> from bioaug.study.bias import sort_key
    >>> sorted(["x", "[1, 2]", "10", 2, "[0, 5]"], key=sort_key)
    [2, '10', '[0, 5]', '[1, 2]', 'x']
    """
    try:
        return (0, float(value))
    except (TypeError, ValueError):
        pass
    try:
        parsed = json.loads(value) if isinstance(value, str) else value
        if isinstance(parsed, list):
            return (1, tuple(float(v) for v in parsed))
    except (TypeError, ValueError):
        pass
    return (2, str(value))


def per_point(results: pd.DataFrame) -> pd.DataFrame:
    """One row per point (overall metrics only).

    Examples
    --------
    Two classes, an axis ``p`` at 0 and 1, two seeds each (four runs): class ``a``
    gains as ``p`` grows, class ``b`` loses.

    >>> import pandas as pd
    >>> from bioaug.study.bias import per_point
    >>> results = pd.DataFrame({
    ...     "point": [0, 0, 1, 1, 2, 2, 3, 3], "seed": [0, 0, 1, 1] * 2,
    ...     "p": [0.0] * 4 + [1.0] * 4, "class": ["a", "b"] * 4,
    ...     "class_accuracy": [0.6, 0.8, 0.8, 0.8, 0.9, 0.5, 0.9, 0.7],
    ...     "linear_accuracy": [0.7, 0.7, 0.8, 0.8, 0.7, 0.7, 0.8, 0.8]})
    >>> print(per_point(results).to_string())
       point  seed    p  linear_accuracy
    0      0     0  0.0              0.7
    1      1     1  0.0              0.8
    2      2     0  1.0              0.7
    3      3     1  1.0              0.8
    """
    keep = [c for c in results.columns if c not in ("class", "class_accuracy", "class_n_test")]
    return results[keep].drop_duplicates(subset=["point"]).reset_index(drop=True)


def per_class_table(results: pd.DataFrame, axes: Sequence[str]) -> pd.DataFrame:
    """Class accuracy per parameter setting: mean, std, min, max over seeds, n_seeds.

    ``std`` is NaN (printed blank) for a setting run with a single seed: a spread of one
    value is not a measurement.

    Examples
    --------
    Two classes, an axis ``p`` at 0 and 1, two seeds each (four runs): class ``a``
    gains as ``p`` grows, class ``b`` loses.

    >>> import pandas as pd
    >>> from bioaug.study.bias import per_class_table
    >>> results = pd.DataFrame({
    ...     "point": [0, 0, 1, 1, 2, 2, 3, 3], "seed": [0, 0, 1, 1] * 2,
    ...     "p": [0.0] * 4 + [1.0] * 4, "class": ["a", "b"] * 4,
    ...     "class_accuracy": [0.6, 0.8, 0.8, 0.8, 0.9, 0.5, 0.9, 0.7],
    ...     "linear_accuracy": [0.7, 0.7, 0.8, 0.8, 0.7, 0.7, 0.8, 0.8]})
    >>> print(per_class_table(results, ["p"]).round(3).to_string())
         p class  mean    std  min  max  n_seeds
    0  0.0     a   0.7  0.141  0.6  0.8        2
    1  0.0     b   0.8  0.000  0.8  0.8        2
    2  1.0     a   0.9  0.000  0.9  0.9        2
    3  1.0     b   0.6  0.141  0.5  0.7        2
    """
    check_results(results, axes)
    keys = [*axes, "class"]
    g = results.groupby(keys, sort=False, dropna=False)["class_accuracy"]
    table = g.agg(mean="mean", std="std", min="min", max="max", n_seeds="count").reset_index()
    order = sorted(range(len(table)), key=lambda i: (
        *[sort_key(table.loc[i, a]) for a in axes], str(table.loc[i, "class"])))
    return table.iloc[order].reset_index(drop=True)


def overall_table(results: pd.DataFrame, axes: Sequence[str],
                  metrics: Sequence[str] = ("linear_accuracy", "leiden_ami", "kmeans_ami",
                                            "nsc", "nscb")) -> pd.DataFrame:
    """Overall metrics per parameter setting: mean and std over seeds (NaN with one seed).

    Only the ``metrics`` the table has (with at least one value) get columns.

    Examples
    --------
    Two classes, an axis ``p`` at 0 and 1, two seeds each (four runs): class ``a``
    gains as ``p`` grows, class ``b`` loses.

    >>> import pandas as pd
    >>> from bioaug.study.bias import overall_table
    >>> results = pd.DataFrame({
    ...     "point": [0, 0, 1, 1, 2, 2, 3, 3], "seed": [0, 0, 1, 1] * 2,
    ...     "p": [0.0] * 4 + [1.0] * 4, "class": ["a", "b"] * 4,
    ...     "class_accuracy": [0.6, 0.8, 0.8, 0.8, 0.9, 0.5, 0.9, 0.7],
    ...     "linear_accuracy": [0.7, 0.7, 0.8, 0.8, 0.7, 0.7, 0.8, 0.8]})
    >>> print(overall_table(results, ["p"]).round(3).to_string())
         p  n_seeds  linear_accuracy_mean  linear_accuracy_std
    0  0.0        2                  0.75                0.071
    1  1.0        2                  0.75                0.071
    """
    check_results(results, axes)
    pts = per_point(results)
    present = [m for m in metrics if m in pts.columns and pts[m].notna().any()]
    if not axes:
        pts = pts.assign(_all="all")
        axes = ["_all"]
    agg = {f"{m}_{s}": (m, s) for m in present for s in ("mean", "std")}
    table = pts.groupby(list(axes), sort=False, dropna=False).agg(
        n_seeds=("seed", "count"), **agg).reset_index()
    table = table.drop(columns=["_all"], errors="ignore")
    order = sorted(range(len(table)), key=lambda i: tuple(
        sort_key(table.loc[i, a]) for a in axes if a in table.columns))
    return table.iloc[order].reset_index(drop=True)


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    if len(np.unique(x)) < 2:
        return float("nan")
    xc = x - x.mean()
    return float(np.sum(xc * (y - y.mean())) / np.sum(xc * xc))


def trend_direction(change: float, tolerance: float) -> str:
    """"gains" / "loses" past ``tolerance``, "flat" within it, "unknown" for NaN.

    Examples
    --------
    >>> from bioaug.study.bias import trend_direction
    >>> [trend_direction(c, 0.01) for c in (0.2, -0.2, 0.005, float("nan"))]
    ['gains', 'loses', 'flat', 'unknown']
    """
    if not np.isfinite(change):
        return "unknown"
    if change > tolerance:
        return "gains"
    return "loses" if change < -tolerance else "flat"


def class_trends(results: pd.DataFrame, axis: str, *, tolerance: float = 0.01) -> pd.DataFrame:
    """For each class: slope of accuracy against ``axis`` and the low-to-high change.

    Every run contributes one (x, accuracy) pair, so other axes and seeds are averaged in
    the least-squares fit. ``direction`` is "gains" / "loses" when the change between the
    axis' lowest and highest value (means over runs) exceeds ``tolerance`` in accuracy,
    "flat" when it does not, and "unknown" when the class has no accuracy at one of those
    two values (change NaN). Non-numeric axes use the rank of each value.

    Examples
    --------
    Two classes, an axis ``p`` at 0 and 1, two seeds each (four runs): class ``a``
    gains as ``p`` grows, class ``b`` loses.

    >>> import pandas as pd
    >>> from bioaug.study.bias import class_trends
    >>> results = pd.DataFrame({
    ...     "point": [0, 0, 1, 1, 2, 2, 3, 3], "seed": [0, 0, 1, 1] * 2,
    ...     "p": [0.0] * 4 + [1.0] * 4, "class": ["a", "b"] * 4,
    ...     "class_accuracy": [0.6, 0.8, 0.8, 0.8, 0.9, 0.5, 0.9, 0.7],
    ...     "linear_accuracy": [0.7, 0.7, 0.8, 0.8, 0.7, 0.7, 0.8, 0.8]})
    >>> trends = class_trends(results, "p")
    >>> columns = ["class", "slope", "accuracy_at_min", "accuracy_at_max", "direction"]
    >>> print(trends[columns].round(3).to_string())
      class  slope  accuracy_at_min  accuracy_at_max direction
    0     a    0.2              0.7              0.9     gains
    1     b   -0.2              0.8              0.6     loses

    A class never measured at the highest value has no change to report:

    >>> partial = results[~((results["class"] == "b") & (results["p"] == 1.0))]
    >>> print(class_trends(partial, "p")[["class", "change", "direction"]].to_string())
      class  change direction
    0     a     0.2     gains
    1     b     NaN   unknown
    """
    check_results(results, [axis])
    values = sorted(results[axis].drop_duplicates().tolist(), key=sort_key)
    xs_all, _, numeric = axis_positions(values)
    pos = dict(zip([str(v) for v in values], xs_all, strict=True))
    rows = []
    for cls, sub in results.groupby("class", sort=True):
        x = np.array([pos[str(v)] for v in sub[axis]], dtype=float)
        y = sub["class_accuracy"].to_numpy(dtype=float)
        means = sub.groupby(sub[axis].astype(str))["class_accuracy"].mean()
        lo, hi = means.get(str(values[0]), np.nan), means.get(str(values[-1]), np.nan)
        change = float(hi - lo)
        direction = trend_direction(change, tolerance)
        rows.append({"axis": axis, "class": cls, "slope": _slope(x, y),
                     "slope_unit": "per unit" if numeric else "per step",
                     f"accuracy_at_{'min' if numeric else 'first'}": float(lo),
                     f"accuracy_at_{'max' if numeric else 'last'}": float(hi),
                     "change": change, "direction": direction, "n_runs": len(sub)})
    return pd.DataFrame(rows).sort_values("change", ascending=False).reset_index(drop=True)


def accuracy_matrix(results: pd.DataFrame) -> pd.DataFrame:
    """Runs × classes matrix of per-class accuracy (index: point).

    Examples
    --------
    Two classes, an axis ``p`` at 0 and 1, two seeds each (four runs): class ``a``
    gains as ``p`` grows, class ``b`` loses.

    >>> import pandas as pd
    >>> from bioaug.study.bias import accuracy_matrix
    >>> results = pd.DataFrame({
    ...     "point": [0, 0, 1, 1, 2, 2, 3, 3], "seed": [0, 0, 1, 1] * 2,
    ...     "p": [0.0] * 4 + [1.0] * 4, "class": ["a", "b"] * 4,
    ...     "class_accuracy": [0.6, 0.8, 0.8, 0.8, 0.9, 0.5, 0.9, 0.7],
    ...     "linear_accuracy": [0.7, 0.7, 0.8, 0.8, 0.7, 0.7, 0.8, 0.8]})
    >>> accuracy_matrix(results).to_numpy().tolist()
    [[0.6, 0.8], [0.8, 0.8], [0.9, 0.5], [0.9, 0.7]]
    """
    classes = sorted(results["class"].astype(str).unique())
    mat = results.assign(**{"class": results["class"].astype(str)}).pivot_table(
        index="point", columns="class", values="class_accuracy", aggfunc="mean",
        dropna=False)
    return mat.reindex(columns=classes)


def bias_matrix(results: pd.DataFrame) -> pd.DataFrame:
    """Inter-class bias: Pearson correlation across runs of per-class accuracies.

    Entry (a, b) near +1: the runs that are good for class a are good for class b too;
    near −1: a choice that helps a hurts b. A class whose accuracy never changes has no
    defined correlation (NaN). Needs at least 2 runs.

    Examples
    --------
    Three runs: class ``b`` loses exactly what ``a`` gains, ``c`` never changes:

    >>> import pandas as pd
    >>> from bioaug.study.bias import bias_matrix
    >>> results = pd.DataFrame({
    ...     "point": [0, 0, 0, 1, 1, 1, 2, 2, 2], "class": ["a", "b", "c"] * 3,
    ...     "class_accuracy": [0.5, 0.9, 0.7, 0.7, 0.7, 0.7, 0.9, 0.5, 0.7]})
    >>> print(bias_matrix(results).round(3).to_string())
             a    b   c
    class
    a      1.0 -1.0 NaN
    b     -1.0  1.0 NaN
    c      NaN  NaN NaN
    >>> bias_matrix(results[results["point"] == 0])
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: the bias matrix needs at least 2 finished sweep points, got 1
    """
    mat = accuracy_matrix(results)
    if len(mat) < 2:
        raise ConfigError(f"the bias matrix needs at least 2 finished sweep points, got "
                          f"{len(mat)}")
    corr = mat.corr(method="pearson", min_periods=2)
    corr.index.name = "class"
    corr.columns.name = None
    return corr


def spread_summary(results: pd.DataFrame, axes: Sequence[str]) -> dict[str, Any]:
    """How far overall vs per-class accuracy move across the sweep (max − min of means).

    Means are over seeds at each parameter setting when seeds repeat, otherwise per run.

    Examples
    --------
    Two classes, an axis ``p`` at 0 and 1, two seeds each (four runs): class ``a``
    gains as ``p`` grows, class ``b`` loses.

    >>> import pandas as pd
    >>> from bioaug.study.bias import spread_summary
    >>> results = pd.DataFrame({
    ...     "point": [0, 0, 1, 1, 2, 2, 3, 3], "seed": [0, 0, 1, 1] * 2,
    ...     "p": [0.0] * 4 + [1.0] * 4, "class": ["a", "b"] * 4,
    ...     "class_accuracy": [0.6, 0.8, 0.8, 0.8, 0.9, 0.5, 0.9, 0.7],
    ...     "linear_accuracy": [0.7, 0.7, 0.8, 0.8, 0.7, 0.7, 0.8, 0.8]})
    >>> spread = spread_summary(results, ["p"])
    >>> spread["overall_min"], spread["overall_max"], spread["overall_range"]
    (0.75, 0.75, 0.0)
    >>> {name: round(move, 3) for name, move in spread["class_ranges"].items()}
    {'a': 0.2, 'b': 0.2}
    """
    check_results(results, axes)
    keys = list(axes) or ["point"]
    overall = per_point(results).groupby(keys, dropna=False)["linear_accuracy"].mean()
    cls = results.groupby([*keys, "class"], dropna=False)["class_accuracy"].mean()
    per_class_range = cls.groupby(level="class").agg(lambda s: float(s.max() - s.min()))
    top = per_class_range.sort_values(ascending=False)
    return {
        "overall_range": float(overall.max() - overall.min()) if len(overall) else float("nan"),
        "overall_min": float(overall.min()), "overall_max": float(overall.max()),
        "max_class_range": float(top.iloc[0]) if len(top) else float("nan"),
        "max_class": str(top.index[0]) if len(top) else None,
        "median_class_range": float(top.median()) if len(top) else float("nan"),
        "class_ranges": {str(k): float(v) for k, v in top.items()},
    }


def binomial_noise(results: pd.DataFrame) -> float | None:
    """Median over runs and classes of 2 standard errors of a per-class accuracy.

    A per-class accuracy measured on ``n`` test items has binomial noise
    ``sqrt(a (1 − a) / n)``; changes smaller than about twice that are not evidence of bias,
    whatever the seeds say. None when the test counts are unknown.

    Examples
    --------
    Accuracy 0.5 on 100 test items: ``2 * sqrt(0.5 * 0.5 / 100) = 0.1``.

    >>> import pandas as pd
    >>> from bioaug.study.bias import binomial_noise
    >>> results = pd.DataFrame({"class": ["a", "b"], "class_accuracy": [0.5, 0.5]})
    >>> binomial_noise(results.assign(class_n_test=100))
    0.1
    >>> binomial_noise(results) is None
    True
    """
    if "class_n_test" not in results.columns:
        return None
    n = pd.to_numeric(results["class_n_test"], errors="coerce")
    a = pd.to_numeric(results["class_accuracy"], errors="coerce")
    ok = (n > 0) & a.notna()
    if not ok.any():
        return None
    se = np.sqrt(a[ok] * (1 - a[ok]) / n[ok])
    return float(2 * se.median())
