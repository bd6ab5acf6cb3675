"""Phenotype evaluation of embeddings: clustering + AMI, BBBC021 NSC/NSCB, linear probes.

``evaluate(adata_or_path, label="moa", rep="X_bioaug", out=None)`` returns a report dict and
writes ``report.json``, ``report.md`` and PNG pictures into ``out``.
"""

from __future__ import annotations

from bioaug.evaluate.report import evaluate, format_table, summary_rows

__all__ = ["evaluate", "format_table", "summary_rows"]
