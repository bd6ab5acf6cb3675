"""Which metrics score what a model's training was given.

A model trained with positives that share a treatment (or a well) pulls those cells
together, so any metric that keeps the query's compound in play (clustering AMI, a probe
not split by compound, replicate retrieval) scores the training signal itself. NSC / NSCB
and MoA mAP leave the compound out (as WS-DINO, Cross et al. 2022, is scored). The
embedding's provenance (or the run's ``config.yaml`` beside its checkpoint) says which obs
columns each model's positives shared.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from bioaug.errors import ConfigError, DataError
from bioaug.evaluate.inputs import plain
from bioaug.evaluate.metrics import metric_title
from bioaug.io import read_yaml_mapping

#: Metrics that keep the query's compound among its neighbours, clusters or training
#: items: a model whose positives shared the label (or something finer) is scored on what
#: it was told. NSC / NSCB / MoA mAP leave the compound out and are not listed.
SAME_COMPOUND_METRICS: tuple[str, ...] = ("leiden_ami", "leiden_ari", "kmeans_ami",
                                          "kmeans_ari", "silhouette")
LINEAR_METRICS: tuple[str, ...] = ("linear_accuracy", "linear_balanced_accuracy")


def training_sampling(adata: Any) -> list[dict[str, Any]]:
    """Per trained model of the embedding: its positives and the obs columns they shared
    (from the embedding's provenance, else the run's ``config.yaml`` beside its checkpoint)."""
    prov = adata.uns.get("bioaug") if hasattr(adata, "uns") else None
    models = prov.get("models") if isinstance(prov, dict) else None
    out = []
    for key, info in (models if isinstance(models, dict) else {}).items():
        if not isinstance(info, dict):
            continue
        record = info.get("sampling") or _sampling_from_run(info.get("checkpoint"))
        # read back from .h5ad, the column lists are arrays: test their length
        if record and any(_size(record.get(k)) for k in ("obs_columns", "positive_columns")):
            out.append({"model": str(key), **{k: plain(v) for k, v in record.items()}})
    return out


def _size(value: Any) -> int:
    """Length of a list or array (0 for None)."""
    return 0 if value is None else len(value)


def _sampling_from_run(checkpoint: Any) -> dict[str, Any] | None:
    path = Path(str(checkpoint)).parent / "config.yaml" if checkpoint else None
    if path is None or not path.is_file():
        return None
    from bioaug.train.batches import sampling_record

    try:
        return sampling_record(read_yaml_mapping(path, "run config", "options"))
    except (ConfigError, DataError):
        return None


def _determined_by(obs: pd.DataFrame, columns: Sequence[str], target: str) -> bool:
    """True when ``target`` has one value within every group of ``columns``."""
    if target in columns:
        return True
    if target not in obs.columns or any(c not in obs.columns for c in columns):
        return False
    keys = obs[list(columns)].astype(str)
    return bool(obs[target].groupby([keys[c] for c in columns]).nunique().max() <= 1)


def leakage_warnings(obs: pd.DataFrame, label: str, trained: Sequence[dict[str, Any]],
                     linear_grouped_by: str | None, *, replicate: bool = False) -> list[str]:
    """Warnings for metrics that score the label a model's positives were built from (see
    the module docstring)."""
    out = []
    for rec in trained:
        cols = [str(c) for c in rec.get("positive_columns") or []]
        if not cols or not _determined_by(obs, cols, label):
            continue
        flagged = list(SAME_COMPOUND_METRICS)
        if not (linear_grouped_by and _determined_by(obs, cols, linear_grouped_by)):
            flagged += LINEAR_METRICS
        if replicate and _determined_by(obs, cols, "compound"):
            flagged.append("replicate_map")
        out.append(f"model {rec['model']} was trained with --positives {rec['positives']}: "
                   f"its pairs share {', '.join(cols)}, and '{label}' is one value within "
                   f"each such group, so {', '.join(metric_title(m) for m in flagged)} (which "
                   "do not leave compounds out) score what training was given; read NSC, "
                   "NSCB and MoA mAP, which do")
    return out
