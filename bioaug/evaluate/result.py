"""The evaluation result as a typed object (pydantic), and its ``report.json`` form.

:func:`bioaug.evaluate.evaluate` returns an :class:`EvaluationReport`: attribute access
(``report.clustering.leiden.ami``), the registered metrics by their one name
(``report.metrics()["leiden_ami"]``, see :mod:`bioaug.evaluate.metrics`), ``to_dict()`` for
the JSON file and :meth:`EvaluationReport.read` to load one back. Blocks also read like the
dict they serialise to (``report["clustering"]["leiden"]["ami"]``), so a notebook may treat
the object and a loaded ``report.json`` the same way. Blocks keep any further keys a stage
reports (``extra="allow"``); the fields named here are the ones other code relies on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bioaug.errors import DataError, validation_error
from bioaug.evaluate.metrics import metric_values


class Block(BaseModel):
    """A report block: typed fields, extra keys kept, read-only mapping access."""

    model_config = ConfigDict(extra="allow")

    def __getitem__(self, key: str) -> Any:
        if key in type(self).model_fields or key in (self.model_extra or {}):
            return getattr(self, key)
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            value = self[key]
        except KeyError:
            return default
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (key in type(self).model_fields
                                         or key in (self.model_extra or {}))

    def keys(self) -> list[str]:
        return [*type(self).model_fields, *(self.model_extra or {})]

    def items(self) -> Iterator[tuple[str, Any]]:
        return ((k, self[k]) for k in self.keys())

    def to_dict(self) -> dict[str, Any]:
        """The block as plain JSON-ready data."""
        return self.model_dump()


class ClusterScores(Block):
    """Agreement of one clustering with the label."""

    ami: float
    ari: float
    n_items: int
    n_classes: int


class LeidenScores(ClusterScores):
    resolution: float
    n_clusters: int
    target_clusters: int
    exact: bool
    tries: int


class KMeansScores(ClusterScores):
    k: int


class Silhouette(Block):
    value: float | None
    n_items: int
    n_classes: int


class Clustering(Block):
    """Leiden and k-means AMI/ARI and the label silhouette (``report.clustering``)."""

    n_items: int
    n_classes: int
    representation: dict[str, Any]
    n_neighbors: int
    leiden: LeidenScores
    kmeans: KMeansScores
    silhouette: Silhouette


class LinearProbe(Block):
    """Held-out logistic-regression probe (``report.linear``)."""

    accuracy: float
    balanced_accuracy: float
    per_class: dict[str, float | None]
    per_class_n_test: dict[str, int]
    classes: list[str]
    confusion_matrix: list[list[int]]
    n_train: int
    n_test: int
    n_classes: int
    excluded_classes: list[str] = Field(default_factory=list)
    split: dict[str, Any] = Field(default_factory=dict)


class RuleScores(Block):
    """1-NN MoA accuracy (and mAP) of treatment profiles under the NSC or NSCB rule."""

    rule: str
    accuracy: float | None
    #: scored queries answered right; a query whose nearest references tie counts as the
    #: fraction of them with its label, so this may be fractional
    n_correct: float
    n_tied_queries: int = 0
    n_treatments: int
    n_scored: int
    n_unscorable: int
    unscorable: list[str] = Field(default_factory=list)
    n_classes: int
    map: float | None = None
    map_n_queries: int = 0
    per_class: dict[str, dict[str, Any]] = Field(default_factory=dict)
    dropped_classes: list[str] = Field(default_factory=list)


class Retrieval(Block):
    """Mean average precision per query group with permutation p-values (copairs style)."""

    task: str
    map: float | None
    n_groups: int
    n_profiles: int
    fraction_retrieved: float | None
    fraction_retrieved_uncorrected: float | None = None
    threshold: float = 0.05
    null_size: int = 0
    groups: list[dict[str, Any]] = Field(default_factory=list)


class Profiling(Block):
    """BBBC021 profiling: NSC / NSCB and retrieval mAP (``report.profiling``).

    ``nsc`` and ``nscb`` are None, with a ``skipped`` reason, when the data cannot be
    profiled (no BBBC021 metadata, profiling turned off, too few annotated treatments).
    """

    nsc: RuleScores | None = None
    nscb: RuleScores | None = None
    replicate: Retrieval | None = None
    moa: Retrieval | None = None
    skipped: str | None = None
    label: str | None = None


class EvaluationInput(Block):
    """What was evaluated (``report.input``)."""

    path: str | None
    rep: str
    label: str
    n_items: int
    n_items_without_label: int = 0
    excluded_labels: list[str] = Field(default_factory=list)
    n_items_excluded: int = 0
    dims: int
    n_classes: int
    class_counts: dict[str, int] = Field(default_factory=dict)
    embedding_provenance: dict[str, Any] | None = None


class EvaluationReport(Block):
    """The result of :func:`bioaug.evaluate.evaluate`.

    ``profiling_corrected`` holds the same profiling block computed on corrected profiles
    (``evaluate(..., profile=...)``), with ``profile_steps`` the correction applied.

    Examples
    --------
    A report written with ``out`` reads back the same:

    >>> import tempfile
    >>> import anndata as ad
    >>> import numpy as np
    >>> import pandas as pd
    >>> import bioaug
    >>> from bioaug.evaluate import EvaluationReport
    >>> rng = np.random.default_rng(0)
    >>> cells = ad.AnnData(obs=pd.DataFrame({"label": ["a"] * 10 + ["b"] * 10},
    ...                                     index=[str(i) for i in range(20)]))
    >>> cells.obsm["X_bioaug"] = np.concatenate([rng.normal(0, 0.1, (10, 4)),
    ...                                          rng.normal(2, 0.1, (10, 4))]).astype(np.float32)
    >>> out = tempfile.mkdtemp()
    >>> report = bioaug.evaluate(cells, label="label", out=out, plot=False)
    >>> back = EvaluationReport.read(f"{out}/report.json")
    >>> back.input.n_classes, back.metrics(["kmeans_ami"]) == report.metrics(["kmeans_ami"])
    (2, True)
    """

    input: EvaluationInput
    seed: int
    clustering: Clustering | None = None
    profiling: Profiling
    profiling_corrected: Profiling | None = None
    profile_steps: list[dict[str, Any]] | None = None
    linear: LinearProbe | None = None
    figures: dict[str, str] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)
    provenance: dict[str, Any] = Field(default_factory=dict)

    def metrics(self, names: list[str] | None = None) -> dict[str, float | None]:
        """The registered metrics by name (see :data:`bioaug.evaluate.metrics.METRICS`)."""
        return metric_values(self, names)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str | Path | None = None
                  ) -> EvaluationReport:
        """Validate a ``report.json`` dict; a clear error names the first bad key."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise validation_error(exc, cls, what="not a bioaug evaluation report",
                                   where=where, error=DataError) from None

    @classmethod
    def read(cls, path: str | Path) -> EvaluationReport:
        """Load a ``report.json`` written by :func:`bioaug.evaluate.evaluate`."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"cannot read the evaluation report: {exc}", where=path) from None
        if not isinstance(data, dict):
            raise DataError("not a bioaug evaluation report (not a JSON object)", where=path)
        return cls.from_dict(data, where=path)
