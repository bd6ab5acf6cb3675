"""Phenotype evaluation of embeddings: clustering + AMI, BBBC021 NSC/NSCB, mAP, linear probes.

``evaluate(adata_or_path, label="moa", rep="X_bioaug", out=None)`` returns an
:class:`EvaluationReport` and writes ``report.json``, ``report.md`` and PNG pictures into
``out``. Metric names come from one registry (:data:`METRICS`).
"""

from __future__ import annotations

from bioaug.callable_package import make_callable
from bioaug.evaluate.metrics import METRICS, Metric, metric_names, metric_values
from bioaug.evaluate.render import format_table, summary_rows
from bioaug.evaluate.report import evaluate
from bioaug.evaluate.result import EvaluationReport

__all__ = ["METRICS", "EvaluationReport", "Metric", "evaluate", "format_table", "metric_names",
           "metric_values", "summary_rows"]


make_callable(__name__, evaluate)
