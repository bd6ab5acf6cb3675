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
    """``report[k0][k1]…`` or None (see :func:`bioaug.evaluate.metrics.dig`)."""
    return metrics_mod.dig(report, keys)


def cell_value(value: Any) -> Any:
    """A CSV-friendly form of an axis value (lists and dicts as JSON text)."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return value


def overall_metrics(report: Mapping[str, Any]) -> dict[str, Any]:
    """The registered metrics of a report, plus its item, class and test counts."""
    report = _plain(report)
    out: dict[str, Any] = dict(metrics_mod.metric_values(report))
    inp = report.get("input") if isinstance(report.get("input"), Mapping) else {}
    linear = report.get("linear") if isinstance(report.get("linear"), Mapping) else {}
    out["n_items"] = inp.get("n_items")
    out["n_classes"] = inp.get("n_classes")
    out["linear_n_test"] = linear.get("n_test")
    return out


def per_class_accuracy(report: Mapping[str, Any]) -> dict[str, float]:
    report = _plain(report)
    per_class = dig_raw(report, ("linear", "per_class"))
    if not isinstance(per_class, Mapping) or not per_class:
        raise ConfigError("the evaluation report has no linear.per_class accuracies")
    out: dict[str, float] = {}
    for cls, val in per_class.items():
        if isinstance(val, Mapping):
            val = val.get("accuracy", val.get("value"))
        out[str(cls)] = float(val) if val is not None else float("nan")
    return out


def dig_raw(report: Mapping[str, Any], keys: Sequence[str]) -> Any:
    node: Any = report
    for k in keys:
        if not isinstance(node, Mapping) or k not in node:
            return None
        node = node[k]
    return node


def point_rows(point: int, seed: int, params: Mapping[str, Any],
               report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The results rows of one finished point."""
    report = _plain(report)
    base: dict[str, Any] = {"point": point, "seed": seed}
    base.update({path: cell_value(v) for path, v in params.items()})
    base.update(overall_metrics(report))
    linear = report.get("linear") if isinstance(report.get("linear"), Mapping) else {}
    counts = linear.get("per_class_n_test") or {}
    return [{**base, "class": cls, "class_accuracy": acc, "class_n_test": counts.get(cls)}
            for cls, acc in per_class_accuracy(report).items()]


def gather(points: Sequence[tuple[int, int, Mapping[str, Any], Path]]) -> pd.DataFrame:
    """Rows for every ``(point, seed, params, report.json path)`` given."""
    rows: list[dict[str, Any]] = []
    for point, seed, params, report_path in points:
        try:
            report = json.loads(Path(report_path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read the report of point {point}: {exc}",
                              where=report_path) from exc
        rows.extend(point_rows(point, seed, params, report))
    return pd.DataFrame(rows)
