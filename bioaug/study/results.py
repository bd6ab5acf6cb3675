"""Gather a sweep's per-point evaluation reports into one tidy table.

``results.csv`` has one row per sweep point × class. A point is one parameter setting
with one seed, so the table is also "one row per setting × seed × class". Columns::

    point, seed, <one column per axis, named by its key path>,
    <one column per registered metric: leiden_ami, kmeans_ami, …, nsc, nscb, …>,
    n_items, n_classes, linear_n_test, class, class_accuracy, class_n_test

Metric columns and their names come from :data:`bioaug.evaluate.metrics.METRICS`, the
names every bioaug table uses. Metrics a report does not have (NSC/NSCB outside BBBC021)
are left empty. Axis values that
are lists (a range ``[lo, hi]``) are written as JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from bioaug.errors import ConfigError
from bioaug.evaluate import metrics as metrics_mod


def _plain(report: Any) -> Mapping[str, Any]:
    """A report object (:class:`~bioaug.evaluate.EvaluationReport`) as its JSON dict."""
    return report.to_dict() if hasattr(report, "to_dict") else report


def dig(report: Mapping[str, Any], keys: Sequence[str]) -> Any:
    """``report[k0][k1]…`` or None (see :func:`bioaug.evaluate.metrics.dig`).

    Examples
    --------
    >>> from bioaug.study.results import dig
    >>> report = {"linear": {"accuracy": 0.75}}
    >>> dig(report, ["linear", "accuracy"]), dig(report, ["linear", "n_test"])
    (0.75, None)
    """
    return metrics_mod.dig(report, keys)


def cell_value(value: Any) -> Any:
    """A CSV-friendly form of an axis value (lists and dicts as JSON text).

    Examples
    --------
    >>> from bioaug.study.results import cell_value
    >>> cell_value([0.1, 2.0]), cell_value((1, 2)), cell_value({"a": 1}), cell_value(0.5)
    ('[0.1, 2.0]', '[1, 2]', '{"a": 1}', 0.5)
    """
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return value


def overall_metrics(report: Mapping[str, Any]) -> dict[str, Any]:
    """The registered metrics of a report, plus its item, class and test counts.

    Examples
    --------
    >>> from bioaug.study.results import overall_metrics
    >>> report = {"input": {"n_items": 40, "n_classes": 2},
    ...           "clustering": {"leiden": {"ami": 0.5}},
    ...           "linear": {"accuracy": 0.75, "n_test": 20, "per_class": {"a": 0.9, "b": 0.6},
    ...                      "per_class_n_test": {"a": 10, "b": 10}}}
    >>> values = overall_metrics(report)
    >>> values["leiden_ami"], values["linear_accuracy"], values["nsc"]
    (0.5, 0.75, None)
    >>> values["n_items"], values["n_classes"], values["linear_n_test"]
    (40, 2, 20)
    """
    report = _plain(report)
    out: dict[str, Any] = dict(metrics_mod.metric_values(report))
    inp = report.get("input") if isinstance(report.get("input"), Mapping) else {}
    linear = report.get("linear") if isinstance(report.get("linear"), Mapping) else {}
    out["n_items"] = inp.get("n_items")
    out["n_classes"] = inp.get("n_classes")
    out["linear_n_test"] = linear.get("n_test")
    return out


def per_class_accuracy(report: Mapping[str, Any]) -> dict[str, float]:
    """Class → linear-probe accuracy (``linear.per_class``; NaN where a class has none).

    A class entry is a number or a mapping with ``accuracy`` (or ``value``); a report
    without per-class accuracies is a :class:`ConfigError`.

    Examples
    --------
    >>> from bioaug.study.results import per_class_accuracy
    >>> per_class_accuracy({"linear": {"per_class": {"a": 0.9, "b": {"accuracy": 0.6},
    ...                                              "c": None}}})
    {'a': 0.9, 'b': 0.6, 'c': nan}
    >>> per_class_accuracy({"linear": {"accuracy": 0.75}})
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: the evaluation report has no linear.per_class accuracies
    >>> per_class_accuracy({"linear": {"per_class": {"a": 0.9, "b": "n/a"}}})
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: linear.per_class.b is 'n/a', not a number; ...
    """
    report = _plain(report)
    per_class = dig_raw(report, ("linear", "per_class"))
    if not isinstance(per_class, Mapping) or not per_class:
        raise ConfigError("the evaluation report has no linear.per_class accuracies")
    return {str(cls): class_accuracy(str(cls), val) for cls, val in per_class.items()}


def class_accuracy(cls: str, entry: Any) -> float:
    """One ``linear.per_class`` entry as a float: NaN for null, else a number.

    Examples
    --------
    >>> from bioaug.study.results import class_accuracy
    >>> class_accuracy("a", 0.5), class_accuracy("a", {"accuracy": 1}), class_accuracy("a", None)
    (0.5, 1.0, nan)
    >>> class_accuracy("DNA damage", [0.5])
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: linear.per_class.DNA damage is [0.5], not a number; ...
    """
    value = entry.get("accuracy", entry.get("value")) if isinstance(entry, Mapping) else entry
    if value is None:
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"linear.per_class.{cls} is {value!r}, not a number; a class "
                          "accuracy is a number from 0 to 1, or null when the class has no "
                          "test items") from None


def dig_raw(report: Mapping[str, Any], keys: Sequence[str]) -> Any:
    """``report[k0][k1]…`` of a plain nested mapping, or None when a key is missing.

    Examples
    --------
    >>> from bioaug.study.results import dig_raw
    >>> report = {"linear": {"per_class": {"a": 0.9}}}
    >>> dig_raw(report, ("linear", "per_class")), dig_raw(report, ("clustering", "leiden"))
    ({'a': 0.9}, None)
    """
    node: Any = report
    for k in keys:
        if not isinstance(node, Mapping) or k not in node:
            return None
        node = node[k]
    return node


def point_rows(point: int, seed: int, params: Mapping[str, Any],
               report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The results rows of one finished point.

    Examples
    --------
    Point 3 (seed 1) of a sweep over a blur range, evaluated on two classes:

    >>> from bioaug.study.results import point_rows
    >>> report = {"input": {"n_items": 40, "n_classes": 2},
    ...           "clustering": {"leiden": {"ami": 0.5}},
    ...           "linear": {"accuracy": 0.75, "n_test": 20, "per_class": {"a": 0.9, "b": 0.6},
    ...                      "per_class_n_test": {"a": 10, "b": 10}}}
    >>> rows = point_rows(3, 1, {"views[*].steps.gaussian_blur.sigma": [0.1, 2.0]}, report)
    >>> for row in rows:
    ...     print(row["point"], row["seed"], row["views[*].steps.gaussian_blur.sigma"],
    ...           row["linear_accuracy"], row["class"], row["class_accuracy"],
    ...           row["class_n_test"])
    3 1 [0.1, 2.0] 0.75 a 0.9 10
    3 1 [0.1, 2.0] 0.75 b 0.6 10
    """
    report = _plain(report)
    base: dict[str, Any] = {"point": point, "seed": seed}
    base.update({path: cell_value(v) for path, v in params.items()})
    base.update(overall_metrics(report))
    linear = report.get("linear") if isinstance(report.get("linear"), Mapping) else {}
    counts = linear.get("per_class_n_test") or {}
    return [{**base, "class": cls, "class_accuracy": acc, "class_n_test": counts.get(cls)}
            for cls, acc in per_class_accuracy(report).items()]


def gather(points: Sequence[tuple[int, int, Mapping[str, Any], Path]]) -> pd.DataFrame:
    """Rows for every ``(point, seed, params, report.json path)`` given.

    An unreadable report is a :class:`ConfigError` naming the file and the point.

    Examples
    --------
    >>> import json
    >>> import tempfile
    >>> from pathlib import Path
    >>> from bioaug.study.results import gather
    >>> folder = Path(tempfile.mkdtemp())
    >>> report = {"linear": {"accuracy": 0.75, "per_class": {"a": 0.9, "b": 0.6}}}
    >>> _ = (folder / "report.json").write_text(json.dumps(report))
    >>> table = gather([(0, 0, {"views[*].crop_size": 32}, folder / "report.json")])
    >>> columns = ["point", "seed", "views[*].crop_size", "linear_accuracy", "class",
    ...            "class_accuracy"]
    >>> table[columns].to_numpy().tolist()
    [[0, 0, 32, 0.75, 'a', 0.9], [0, 0, 32, 0.75, 'b', 0.6]]
    >>> gather([(1, 0, {}, folder / "missing.json")])
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: .../missing.json: cannot read ... point 1: No such file or directory
    """
    rows: list[dict[str, Any]] = []
    for point, seed, params, report_path in points:
        report = read_report(point, Path(report_path))
        try:
            rows.extend(point_rows(point, seed, params, report))
        except ConfigError as exc:
            raise ConfigError(f"the report of point {point}: {exc.message}", where=report_path,
                              hint=exc.hint) from None
    return pd.DataFrame(rows)


def read_report(point: int, path: Path) -> Any:
    """The parsed ``report.json`` of ``point``; a ConfigError naming the file (once) if not.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from bioaug.study.results import read_report
    >>> path = Path(tempfile.mkdtemp()) / "report.json"
    >>> _ = path.write_text('{"linear": ')
    >>> read_report(2, path)
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: .../report.json: cannot read the report of point 2: not valid JSON
    (Expecting value at line 1 column 12)
    """
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the report of point {point}: {_read_problem(exc)}",
                          where=path) from None


def _read_problem(exc: Exception) -> str:
    """What went wrong reading a file, without its name (the caller gives it once)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text ({exc.reason} at byte {exc.start})"
    return getattr(exc, "strerror", None) or str(exc)
