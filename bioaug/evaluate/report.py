"""One call that scores an embedding: clustering, BBBC021 profiling, linear probe, pictures.

:func:`evaluate` reads an AnnData (or an ``.h5ad`` path) made by :func:`bioaug.embed.embed`,
checks it, runs every applicable stage and, given ``out``, writes ``report.json``,
``report.md`` and PNG pictures there. Every metric carries the number of items and classes it
was computed on. The evaluation is dataset-agnostic: the BBBC021 profiling block runs only
when the plate / well / compound / concentration / batch columns are present.

The work is split by job: :mod:`bioaug.evaluate.inputs` loads and checks the input and the
options, :mod:`bioaug.evaluate.scoring` runs the metrics, :mod:`bioaug.evaluate.render`
and :func:`bioaug.evaluate.plots.report_figures` write the report; this module runs them
in order.

An embedding written with ``bioaug embed --layer all`` holds one representation per layer
(``X_bioaug`` the default layer, ``X_bioaug_<layer>`` each probed stage or block, listed in
``uns["bioaug"]["layers"]``): evaluating ``X_bioaug`` then also scores every layer, and the
report gains ``layers`` (metric per layer, metric names from the registry), a table in
``report.md`` and ``layers.png`` (an intermediate layer often embeds best: Kraus et al.
2024, "ViTally Consistent").
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bioaug.evaluate import clustering, plots, profiling
from bioaug.evaluate.inputs import (
    EvaluateOptions,
    embedding_layers,
    load_adata,
    make_report_dir,
    recipe_of,
    recorded_correction,
    report_dir,
    select_items,
)
from bioaug.evaluate.metrics import metric_values
from bioaug.evaluate.render import before_after_rows, report_markdown
from bioaug.evaluate.result import EvaluationReport
from bioaug.evaluate.scoring import score
from bioaug.io import atomic_write_json, atomic_write_text, provenance

__all__ = ["before_after_rows", "evaluate", "score_layers", "write_report"]


@contextmanager
def timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    """Record the seconds the block takes as ``timings[stage]``."""
    t0 = time.perf_counter()
    yield
    timings[stage] = time.perf_counter() - t0


def evaluate(adata_or_path: Any, *, label: str = "moa", rep: str = "X_bioaug",
             out: str | os.PathLike | None = None, seed: int = 0,
             profiling_mode: str = "auto", linear_group: str | None = "auto",
             test_size: float = 0.2, max_dims: int = clustering.DEFAULT_MAX_DIMS,
             n_neighbors: int = 15, silhouette_sample: int = clustering.DEFAULT_SILHOUETTE_SAMPLE,
             umap_points: int = plots.DEFAULT_UMAP_POINTS, max_train: int | None = 50_000,
             plot: bool = True, leiden_max_tries: int = 20,
             exclude: Sequence[str] = (), profile: Any = None,
             null_size: int = profiling.DEFAULT_NULL_SIZE) -> EvaluationReport:
    """Score ``obsm[rep]`` against a label: clustering (Leiden, k-means; AMI/ARI,
    silhouette), BBBC021 NSC / NSCB and retrieval mAP, a linear probe; options checked first.

    Parameters
    ----------
    adata_or_path
        An AnnData, an ``.h5ad`` path, or a ``Metadata_*`` ``.parquet`` / ``.csv`` table.
    label
        ``obs`` column of the classes (``moa`` on BBBC021, ``label`` for natural images).
    rep
        ``obsm`` key of the representation (``X_bioaug``, ``X_bioaug_fused``, ``X``).
    out
        Report directory (``report.json``, ``report.md``, PNGs), checked first; None: none.
    seed
        Seed of every random step (0 … 2**32 - 1).
    profiling_mode
        ``auto`` (when the BBBC021 columns exist), ``on`` (else an error up front), ``off``.
    linear_group
        Column grouping the probe's split (``auto``: the compound); None: stratified.
    test_size
        Held-out fraction of the linear probe.
    max_dims
        PCA width before the kNN graph and k-means.
    n_neighbors
        Neighbours of scanpy's kNN graph.
    silhouette_sample
        Items used for the silhouette.
    umap_points
        Items drawn for the UMAP pictures.
    max_train
        Cap on the probe's training items.
    plot
        Write the PNG pictures (with ``out``).
    leiden_max_tries
        Leiden runs allowed to find the resolution giving as many clusters as classes.
    exclude
        Label values left out of clustering and the probe (e.g. ``["DMSO"]``).
    profile
        Correction (step names, ProfileConfig, YAML) to profile after: ``profiling_corrected``.
    null_size
        Permutations of the mAP null (drawn in chunks: memory stays bounded).

    Returns
    -------
    EvaluationReport
        The :class:`~bioaug.evaluate.result.EvaluationReport`; ``report.metrics()`` by name.

    Examples
    --------
    Two well-separated classes of 20 items each are found exactly:

    >>> import anndata as ad
    >>> import numpy as np
    >>> import pandas as pd
    >>> import bioaug
    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.normal(0, 0.1, (20, 8)), rng.normal(3, 0.1, (20, 8))])
    >>> cells = ad.AnnData(obs=pd.DataFrame({"label": ["a"] * 20 + ["b"] * 20},
    ...                                     index=[str(i) for i in range(40)]))
    >>> cells.obsm["X_bioaug"] = x.astype(np.float32)
    >>> report = bioaug.evaluate(cells, label="label")
    >>> metrics = report.metrics()
    >>> metrics["leiden_ami"], metrics["kmeans_ami"], metrics["linear_accuracy"]
    (1.0, 1.0, 1.0)
    >>> round(metrics["silhouette"], 2)
    0.95

    Metrics that need BBBC021's columns (treatments, MoAs) are None here:

    >>> metrics["nsc"] is None
    True
    """
    # 80+ lines only through its documentation (parameters and a running example), not its code.
    t_start = time.perf_counter()
    opts = EvaluateOptions(
        label=label, seed=seed, profiling_mode=profiling_mode, linear_group=linear_group,
        test_size=test_size, max_dims=max_dims, n_neighbors=n_neighbors,
        silhouette_sample=silhouette_sample, max_train=max_train,
        leiden_max_tries=leiden_max_tries, exclude=exclude, profile=profile,
        null_size=null_size).checked()
    recipe, out_dir, timings = recipe_of(profile), report_dir(out, adata_or_path), {}
    with timed(timings, "load"):
        adata, path = load_adata(adata_or_path)
    items = select_items(adata, path, rep=rep, label=label, exclude=exclude,
                         linear_group=linear_group)
    report = score(items, opts, adata=adata, path=path, rep=rep, recipe=recipe,
                   recorded=recorded_correction(adata, rep, recipe, path), timings=timings)
    make_report_dir(out_dir)
    if len(layer_reps := embedding_layers(adata, rep)) > 1:
        with timed(timings, "layers"):
            report.layers = score_layers(adata, layer_reps, report, opts.as_kwargs())
    if out_dir is not None and plot:
        with timed(timings, "plots"):
            report.figures = plots.report_figures(
                items.x, items.obs, items.y, report, out_dir, seed=seed, max_dims=max_dims,
                umap_points=umap_points, label=label)
    return _finish(report, timings, t_start, out_dir)


def _finish(report: EvaluationReport, timings: dict[str, float], t_start: float,
            out_dir: Path | None) -> EvaluationReport:
    """The report with its timings and provenance, written to ``out_dir`` when given."""
    timings["total"] = time.perf_counter() - t_start
    report.timings = {k: round(v, 3) for k, v in timings.items()}
    report.provenance = provenance(stage="evaluate")
    if out_dir is not None:
        write_report(report, out_dir)
    return report


def score_layers(adata: Any, reps: dict[str, str], report: EvaluationReport,
                 options: dict[str, Any]) -> dict[str, Any]:
    """Every layer of ``reps`` evaluated with the same ``options`` (the first, ``rep``
    itself, is ``report``; the others are ``X_bioaug_<layer>``, which score alone): ``{"default", "reps", "metrics": [names], "scores":
    {layer: {metric: value}}}``; metrics no layer has are left out."""
    reports = {}
    for i, (layer, key) in enumerate(reps.items()):
        if i == 0:
            reports[layer] = report
            continue
        with warnings.catch_warnings():  # the leakage warnings were given for rep already
            warnings.simplefilter("ignore", UserWarning)
            reports[layer] = evaluate(adata, rep=key, out=None, plot=False, **options)
    values = {layer: metric_values(r) for layer, r in reports.items()}
    names = [m for m in next(iter(values.values()))
             if any(v[m] is not None for v in values.values())]
    return {"default": next(iter(reps)), "reps": dict(reps), "metrics": names,
            "scores": {layer: {m: v[m] for m in names} for layer, v in values.items()}}


def write_report(report: EvaluationReport, out_dir: str | os.PathLike) -> None:
    """Write ``report.md`` then ``report.json`` (last: its presence means complete)."""
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "report.md", report_markdown(report))
    atomic_write_json(out_dir / "report.json", report.to_dict())
