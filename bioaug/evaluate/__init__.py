"""Phenotype evaluation of embeddings: clustering + AMI, BBBC021 NSC/NSCB, mAP, linear probes.

``evaluate(adata_or_path, label="moa", rep="X_bioaug", out=None)`` returns an
:class:`EvaluationReport` and writes ``report.json``, ``report.md`` and PNG pictures into
``out``. Metric names come from one registry (:data:`METRICS`).
"""

from __future__ import annotations

import inspect
import sys
import types
from typing import Any

from bioaug.evaluate.metrics import METRICS, Metric, metric_names, metric_values
from bioaug.evaluate.report import evaluate, format_table, summary_rows
from bioaug.evaluate.result import EvaluationReport

__all__ = ["METRICS", "EvaluationReport", "Metric", "evaluate", "format_table", "metric_names",
           "metric_values", "summary_rows"]


class _CallablePackage(types.ModuleType):
    """Importing this package sets ``bioaug.evaluate`` to the package, hiding the function of
    the same name that ``bioaug`` exports; calling the package calls that function, so
    ``bioaug.evaluate(...)`` works before and after the import, with the same signature."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return evaluate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
__signature__ = inspect.signature(evaluate)
