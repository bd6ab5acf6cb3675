"""The metric registry: one name, one title and one place in the report per metric.

Every table bioaug writes (a sweep's ``results.csv``, a comparison's ``comparison.csv``,
the demo's ``summary.csv``, the CLI summary) takes its metric columns from :data:`METRICS`,
so a metric has the same name everywhere. A metric is read from an evaluation report
(:class:`bioaug.evaluate.result.EvaluationReport` or its ``report.json`` dict) by its key
path; a metric the report does not have (NSC outside BBBC021) reads as None.

Adding a metric is one entry here; every table gains the column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Metric:
    """A scalar of the evaluation report.

    Parameters
    ----------
    name
        Column name in every table (``snake_case``, the object first: ``leiden_ami``).
    title
        Human-readable name (terminal and Markdown tables).
    path
        Key path of the value in the report dict.
    description
        One line: what it measures and on what.

    Examples
    --------
    >>> from bioaug.evaluate import METRICS
    >>> metric = METRICS["nscb"]
    >>> metric.title, metric.path
    ('NSCB', ('profiling', 'nscb', 'accuracy'))
    """

    name: str
    title: str
    path: tuple[str, ...]
    description: str


def _m(name: str, title: str, path: str, description: str) -> Metric:
    return Metric(name, title, tuple(path.split(".")), description)


#: name → metric, in table order.
METRICS: dict[str, Metric] = {m.name: m for m in (
    _m("leiden_ami", "Leiden AMI", "clustering.leiden.ami",
       "adjusted mutual information of Leiden clusters (as many as classes) and the label"),
    _m("leiden_ari", "Leiden ARI", "clustering.leiden.ari",
       "adjusted Rand index of the same Leiden clusters"),
    _m("kmeans_ami", "k-means AMI", "clustering.kmeans.ami",
       "adjusted mutual information of k-means (k = classes) and the label"),
    _m("kmeans_ari", "k-means ARI", "clustering.kmeans.ari",
       "adjusted Rand index of the same k-means clusters"),
    _m("silhouette", "silhouette", "clustering.silhouette.value",
       "silhouette of the label classes (Euclidean)"),
    _m("linear_accuracy", "linear accuracy", "linear.accuracy",
       "held-out accuracy of a logistic-regression probe"),
    _m("linear_balanced_accuracy", "linear balanced acc.", "linear.balanced_accuracy",
       "mean per-class recall of the same probe"),
    _m("nsc", "NSC", "profiling.nsc.accuracy",
       "1-NN MoA accuracy of treatment profiles, other compounds only"),
    _m("nscb", "NSCB", "profiling.nscb.accuracy",
       "1-NN MoA accuracy of treatment profiles, other compounds and batches only"),
    _m("nsc_map", "NSC mAP", "profiling.nsc.map",
       "mean average precision of MoA retrieval under the NSC exclusions"),
    _m("nscb_map", "NSCB mAP", "profiling.nscb.map",
       "mean average precision of MoA retrieval under the NSCB exclusions"),
    _m("replicate_map", "replicate mAP", "profiling.replicate.map",
       "mAP of retrieving a treatment's other wells against control wells"),
    _m("replicate_retrieved", "replicate retrieved", "profiling.replicate.fraction_retrieved",
       "fraction of treatments whose replicate mAP is significant (FDR-corrected p < 0.05)"),
    _m("moa_map", "MoA mAP", "profiling.moa.map",
       "mAP of retrieving same-MoA treatments (other compounds) among other MoAs"),
    _m("moa_retrieved", "MoA retrieved", "profiling.moa.fraction_retrieved",
       "fraction of MoAs whose retrieval mAP is significant (FDR-corrected p < 0.05)"),
)}

#: Metrics also reported after profile correction (``bioaug evaluate --profile``).
PROFILE_METRICS: tuple[str, ...] = ("nsc", "nscb", "nsc_map", "nscb_map", "replicate_map",
                                    "replicate_retrieved", "moa_map", "moa_retrieved")

#: Suffix of a metric computed on corrected profiles (``nscb`` → ``nscb_corrected``).
CORRECTED_SUFFIX = "_corrected"


def dig(report: Any, keys: Sequence[str]) -> Any:
    """``report[k0][k1]…`` or None when a key is missing (dicts or report objects)."""
    node: Any = report
    for k in keys:
        if hasattr(node, "model_dump") and not isinstance(node, Mapping):
            node = getattr(node, k, None)
        elif isinstance(node, Mapping):
            node = node.get(k)
        else:
            return None
        if node is None:
            return None
    return node


def _scalar(v: Any) -> float | None:
    if v is None or isinstance(v, (Mapping, list, tuple)) or hasattr(v, "model_dump"):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def metric_values(report: Any, names: Sequence[str] | None = None) -> dict[str, float | None]:
    """The registered metrics of an evaluation report (None where absent).

    Parameters
    ----------
    report
        An :class:`~bioaug.evaluate.result.EvaluationReport` or a ``report.json`` dict.
    names
        Metric names to read (default: every metric in :data:`METRICS`, and the
        ``*_corrected`` ones when the report has a corrected profiling block).

    Returns
    -------
    dict
        Metric name → value (None where the report does not have it).

    Examples
    --------
    >>> from bioaug.evaluate import metric_values
    >>> report = {"clustering": {"leiden": {"ami": 0.62, "ari": 0.5}},
    ...           "profiling": {"nsc": {"accuracy": 0.91}}}
    >>> metric_values(report, ["leiden_ami", "nsc", "nscb"])
    {'leiden_ami': 0.62, 'nsc': 0.91, 'nscb': None}
    >>> values = metric_values(report)
    >>> len(values), values["leiden_ari"]
    (15, 0.5)
    >>> metric_values(report, ["leiden_amy"])
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: unknown metric 'leiden_amy' (did you mean 'leiden_ami'?); known: ...
    """
    corrected = dig(report, ("profiling_corrected",)) is not None
    return {name: _scalar(dig(report, metric_path(name)))
            for name in (names if names is not None else metric_names(corrected))}


def metric_path(name: str) -> tuple[str, ...]:
    """Key path of a metric in the report; a ``*_corrected`` name reads the same path in
    ``profiling_corrected``. ConfigError for a name the registry does not have."""
    base = name.removesuffix(CORRECTED_SUFFIX)
    if base not in METRICS:
        from bioaug.errors import ConfigError, unknown_choice

        raise ConfigError(unknown_choice("metric", name, metric_names(True)))
    path = METRICS[base].path
    return ("profiling_corrected", *path[1:]) if name != base else path


def metric_names(corrected: bool = False) -> list[str]:
    """Every metric name, plus the ``*_corrected`` profiling metrics when asked.

    Parameters
    ----------
    corrected
        Also list the profiling metrics computed on corrected profiles (``nsc_corrected``
        …), which a report of ``evaluate(..., profile=...)`` holds.

    Returns
    -------
    list of str
        The names of :data:`METRICS` in table order, then the ``*_corrected`` ones.

    Examples
    --------
    >>> from bioaug.evaluate import metric_names
    >>> metric_names()[:4]
    ['leiden_ami', 'leiden_ari', 'kmeans_ami', 'kmeans_ari']
    >>> len(metric_names()), len(metric_names(corrected=True))
    (15, 23)
    >>> metric_names(corrected=True)[15]
    'nsc_corrected'
    """
    names = list(METRICS)
    if corrected:
        names += [f"{n}{CORRECTED_SUFFIX}" for n in PROFILE_METRICS]
    return names


def metric_title(name: str) -> str:
    """Human-readable title of a metric name (``nscb_corrected`` → ``NSCB (corrected)``)."""
    base = name.removesuffix(CORRECTED_SUFFIX)
    title = METRICS[base].title if base in METRICS else name
    return f"{title} (corrected)" if name != base else title
