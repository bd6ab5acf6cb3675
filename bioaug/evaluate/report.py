"""One call that scores an embedding: clustering, BBBC021 profiling, linear probe, pictures.

:func:`evaluate` reads an AnnData (or an ``.h5ad`` path) made by :func:`bioaug.embed.embed`,
checks it, runs every applicable stage and, given ``out``, writes ``report.json``,
``report.md`` and PNG pictures there. Every metric carries the number of items and classes it
was computed on. The evaluation is dataset-agnostic: the BBBC021 profiling block runs only
when the plate / well / compound / concentration / batch columns are present.

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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bioaug.errors import ConfigError, DataError, did_you_mean
from bioaug.evaluate import clustering, linear, plots, profiling
from bioaug.evaluate.metrics import CORRECTED_SUFFIX, PROFILE_METRICS, metric_title, metric_values
from bioaug.evaluate.result import EvaluationInput, EvaluationReport, Profiling
from bioaug.io import (
    atomic_write_json,
    atomic_write_text,
    check_output,
    provenance,
    read_yaml_mapping,
)


def load_adata(adata_or_path: Any) -> tuple[Any, str | None]:
    """The AnnData and its path (None for an in-memory object)."""
    import anndata as ad

    if isinstance(adata_or_path, ad.AnnData):
        return adata_or_path, None
    path = Path(adata_or_path)
    if path.suffix.lower() in (".parquet", ".pq", ".csv"):
        from bioaug.profile import read_table

        return read_table(path), str(path)
    if not path.is_file():
        raise DataError(f"no .h5ad file at {path}",
                        hint="make one with `bioaug embed --checkpoint RUN --data STORE --out "
                             "cells.h5ad`")
    try:
        return ad.read_h5ad(path), str(path)
    except Exception as exc:  # h5py / anndata raise many types for a damaged file
        raise DataError(f"cannot read {path} as an .h5ad file: {exc}") from exc


def get_rep(adata: Any, rep: str, where: str | None = None) -> np.ndarray:
    """``adata.obsm[rep]`` as float32, with clear errors for a missing rep or NaNs."""
    keys = list(adata.obsm.keys())
    if rep in adata.obsm:
        x = np.asarray(adata.obsm[rep])
    elif rep == "X" and adata.X is not None and adata.n_vars > 0:
        x = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
    else:
        raise DataError(f"representation '{rep}' not found{did_you_mean(rep, keys)}; "
                        f"obsm holds: {', '.join(keys) if keys else '(nothing)'}",
                        where=where, hint="choose one with --rep")
    if x.ndim != 2 or x.shape[0] != adata.n_obs:
        raise DataError(f"representation '{rep}' has shape {list(x.shape)}; expected "
                        f"({adata.n_obs}, dims)", where=where)
    x = x.astype(np.float32, copy=False)
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        first = adata.obs_names[np.flatnonzero(bad)[:5]].tolist()
        raise DataError(f"representation '{rep}' has NaN or infinite values in {int(bad.sum())} "
                        f"of {len(x)} rows (first: {', '.join(map(str, first))})", where=where,
                        hint="the model diverged or the input held NaNs; re-embed with a "
                             "finite checkpoint")
    return x


def get_labels(obs: pd.DataFrame, label: str, where: str | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """(labels as str, mask of rows that have a label); errors for a missing column/one class."""
    if label not in obs.columns:
        cols = [str(c) for c in obs.columns]
        raise DataError(f"label column '{label}' not found{did_you_mean(label, cols)}; "
                        f"obs columns: {', '.join(cols) if cols else '(none)'}", where=where,
                        hint="choose one with --label")
    col = obs[label]
    has = ~(col.isna() | col.astype(str).str.strip().isin(["", "nan"])).to_numpy()
    values = col.astype(str).to_numpy()
    classes = np.unique(values[has])
    if len(classes) < 2:
        raise DataError(f"label column '{label}' has {len(classes)} class"
                        f"{'' if len(classes) == 1 else 'es'} "
                        f"({', '.join(classes[:3]) if len(classes) else 'no labelled rows'}); "
                        "evaluation needs at least two", where=where)
    return values, has


#: Values of ``profiling_mode``: auto (when the BBBC021 columns exist), on, off.
PROFILING_MODES: tuple[str, ...] = ("auto", "on", "off")


def check_options(*, profiling_mode: str, test_size: float, seed: int, max_dims: int,
                  n_neighbors: int, null_size: int = 1) -> None:
    """Validate the plain options of :func:`evaluate` (before anything is loaded)."""
    if profiling_mode not in PROFILING_MODES:
        raise ConfigError(f"profiling_mode must be one of {', '.join(PROFILING_MODES)}, not "
                          f"{profiling_mode!r}{did_you_mean(str(profiling_mode), PROFILING_MODES)}")
    if not 0.0 < float(test_size) < 1.0:
        raise ConfigError(f"test_size must be between 0 and 1 (exclusive), not {test_size}")
    if int(seed) < 0:
        raise ConfigError(f"seed must be 0 or more, not {seed}")
    if int(max_dims) < 2:
        raise ConfigError(f"max_dims must be 2 or more, not {max_dims}")
    if int(n_neighbors) < 2:
        raise ConfigError(f"n_neighbors must be 2 or more, not {n_neighbors}")
    if int(null_size) < 1:
        raise ConfigError(f"null_size must be 1 or more, not {null_size}")


def check_exclude(exclude: Sequence[str], values: np.ndarray, has: np.ndarray, label: str,
                  where: str | None) -> list[str]:
    """``exclude`` as strings; each must be a value of the label column."""
    present = sorted(np.unique(values[has]).tolist())
    out = [exclude] if isinstance(exclude, str) else [str(e) for e in exclude]
    for e in out:
        if e not in present:
            shown = ", ".join(present[:20]) + (" …" if len(present) > 20 else "")
            raise DataError(f"--exclude {e!r}: no item has {label} = {e!r}"
                            f"{did_you_mean(e, present)}; values: {shown}", where=where)
    return out


def evaluate(adata_or_path: Any, *, label: str = "moa", rep: str = "X_bioaug",
             out: str | os.PathLike | None = None, seed: int = 0,
             profiling_mode: str = "auto", linear_group: str | None = "auto",
             test_size: float = 0.2, max_dims: int = clustering.DEFAULT_MAX_DIMS,
             n_neighbors: int = 15, silhouette_sample: int = clustering.DEFAULT_SILHOUETTE_SAMPLE,
             umap_points: int = plots.DEFAULT_UMAP_POINTS, max_train: int | None = 50_000,
             plot: bool = True, leiden_max_tries: int = 20,
             exclude: Sequence[str] = (), profile: Any = None,
             null_size: int = profiling.DEFAULT_NULL_SIZE) -> EvaluationReport:
    """Score embedding ``rep`` of an AnnData (or a profile table) against a label column.

    Clustering (Leiden at the class count and k-means; AMI/ARI; silhouette), BBBC021
    profiling (NSC / NSCB 1-NN accuracy, retrieval mAP with permutation p-values) and a
    linear probe. Every option is checked before any expensive step runs.

    Parameters
    ----------
    adata_or_path
        An :class:`~anndata.AnnData`, a path to an ``.h5ad`` file (``bioaug embed`` or
        ``bioaug profile``), or a ``.parquet`` / ``.csv`` profile table with ``Metadata_*``
        columns (pycytominer layout).
    label
        ``obs`` column holding the classes (``moa`` on BBBC021, ``label`` for natural
        images).
    rep
        ``obsm`` key of the representation (``X_bioaug``, ``X_bioaug_fused``, ``X``).
    out
        Report directory: ``report.json``, ``report.md`` and PNG pictures. Checked to be
        writable before the work starts. None writes nothing.
    seed
        Seed of every random step (PCA signs are fixed; Leiden, k-means, splits, UMAP).
    profiling_mode
        ``auto`` profiles when plate / well / compound / concentration / batch exist,
        and reports why when they cannot be scored; ``on`` makes that an error raised
        before clustering; ``off`` skips profiling.
    linear_group
        Column to group the probe's split by (``auto``: the compound when present);
        None for a plain stratified split.
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
        Label values left out of clustering and the probe (e.g. ``["DMSO"]``); each must
        exist. Profiling applies its own rules (the control is never a query).
    profile
        Correction to apply before profiling again (``bioaug.profile``): a list of step
        names (``["center", "sphere"]``), a :class:`~bioaug.profile.ProfileConfig` or a
        YAML path. The report then has ``profiling_corrected`` next to ``profiling``.
    null_size
        Permutations of the mAP null distribution (p-values are ``(k + 1) / (n + 1)``).

    Returns
    -------
    The :class:`~bioaug.evaluate.result.EvaluationReport`; ``report.metrics()`` gives the
    registered metrics by name. When ``rep`` is ``X_bioaug`` of a ``--layer all``
    embedding, every probed layer is scored too (``report.layers``, ``layers.png``;
    :func:`score_layers`).
    """
    t_start = time.perf_counter()
    check_options(profiling_mode=profiling_mode, test_size=test_size, seed=seed,
                  max_dims=max_dims, n_neighbors=n_neighbors, null_size=null_size)
    profile_config = _profile_config(profile) if profile is not None else None
    out_dir = None
    if out is not None:
        source = [adata_or_path] if isinstance(adata_or_path, (str, os.PathLike)) else []
        out_dir = check_output(out, "report", inputs=source, replace=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    adata, path = load_adata(adata_or_path)
    timings["load"] = time.perf_counter() - t0
    x_all = get_rep(adata, rep, path)
    obs_all = adata.obs
    x_before, recorded = _profiled_input(adata, rep, profile_config, path)
    values, has = get_labels(obs_all, label, path)
    exclude = check_exclude(exclude, values, has, label, path)
    n_unlabelled = int((~has).sum())
    excluded = np.isin(values, exclude) & has
    has = has & ~excluded
    if len(np.unique(values[has])) < 2:
        raise DataError(f"fewer than two '{label}' classes remain after excluding "
                        f"{exclude}", where=path)
    x, obs, y = x_all[has], obs_all.loc[has], values[has]
    group_col = (linear.default_group_column(obs, label) if linear_group == "auto"
                 else linear_group)
    if group_col is not None and group_col not in obs.columns:
        cols = [str(c) for c in obs.columns]
        raise DataError(f"group column '{group_col}' for the linear probe not found"
                        f"{did_you_mean(str(group_col), cols)}; obs columns: {', '.join(cols)}",
                        where=path)

    # profiling first: it is cheap, and a profile that cannot be scored is known up front
    t0 = time.perf_counter()
    prof, prof_corrected, steps = _profiling(
        x_all, obs_all, label=label, mode=profiling_mode, seed=seed, null_size=null_size,
        config=recorded if x_before is not None else profile_config, where=path,
        x_before=x_before)
    timings["profiling"] = time.perf_counter() - t0

    clust = clustering.cluster_and_score(
        x, y, seed=seed, max_dims=max_dims, n_neighbors=n_neighbors,
        max_tries=leiden_max_tries, silhouette_sample=silhouette_sample, timings=timings)

    t0 = time.perf_counter()
    groups = obs[group_col].astype(str).to_numpy() if group_col else None
    lin = linear.linear_probe(x, y, groups, test_size=test_size, seed=seed,
                              max_train=max_train, group_column=group_col)
    timings["linear"] = time.perf_counter() - t0
    embedding_provenance = _provenance_summary(adata)
    trained = _training_sampling(adata)
    if trained and embedding_provenance is not None:
        leaks = leakage_warnings(obs_all, label, trained, lin["split"].get("grouped_by"),
                                 replicate=prof.replicate is not None)
        embedding_provenance.update(training=trained, leakage_warnings=leaks)
        for text in leaks:
            warnings.warn(text, UserWarning, stacklevel=2)

    report = EvaluationReport(
        input=EvaluationInput(
            path=path, rep=rep, label=label, n_items=len(x), n_items_without_label=n_unlabelled,
            excluded_labels=exclude, n_items_excluded=int(excluded.sum()), dims=int(x.shape[1]),
            n_classes=len(np.unique(y)),
            class_counts={str(k): int(v) for k, v in
                          zip(*np.unique(y, return_counts=True), strict=True)},
            embedding_provenance=embedding_provenance),
        seed=seed, clustering=clust, profiling=prof, profiling_corrected=prof_corrected,
        profile_steps=steps, linear=lin)
    if out_dir is not None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create --out {out_dir}: {exc.strerror or exc}") from None
    layer_reps = embedding_layers(adata, rep)
    if len(layer_reps) > 1:
        t0 = time.perf_counter()
        report.layers = score_layers(adata, layer_reps, report, dict(
            label=label, seed=seed, profiling_mode=profiling_mode, linear_group=linear_group,
            test_size=test_size, max_dims=max_dims, n_neighbors=n_neighbors,
            silhouette_sample=silhouette_sample, max_train=max_train,
            leiden_max_tries=leiden_max_tries, exclude=exclude, profile=profile,
            null_size=null_size))
        timings["layers"] = time.perf_counter() - t0
    if out_dir is not None and plot:
        t0 = time.perf_counter()
        report.figures = _figures(x, obs, y, report, out_dir, seed=seed, max_dims=max_dims,
                                  umap_points=umap_points, label=label)
        timings["plots"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    report.timings = {k: round(v, 3) for k, v in timings.items()}
    report.provenance = provenance(stage="evaluate")
    if out_dir is not None:
        write_report(report, out_dir)
    return report


def embedding_layers(adata: Any, rep: str = "X_bioaug") -> dict[str, str]:
    """Layer → obsm key of a ``--layer all`` embedding (the default layer first, then the
    probed layers in depth order); empty unless ``rep`` is ``X_bioaug`` and ``uns``
    lists probed layers that obsm holds."""
    prov = adata.uns.get("bioaug") if hasattr(adata, "uns") else None
    if rep != "X_bioaug" or not isinstance(prov, dict):
        return {}
    probed = [str(v) for v in np.atleast_1d(prov.get("layers", [])) if str(v)]
    reps = {str(prov.get("layer") or "default"): "X_bioaug"}
    reps.update({layer: f"X_bioaug_{layer}" for layer in probed
                 if f"X_bioaug_{layer}" in adata.obsm and layer not in reps})
    return reps if len(reps) > 1 else {}


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


def layer_rows(report: Any) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the per-layer table: a row per layer (the default first, marked),
    a column per registered metric (titles from :data:`~bioaug.evaluate.metrics.METRICS`)."""
    block = report.get("layers") if hasattr(report, "get") else None
    if not block:
        return [], []
    header = ["layer", *(metric_title(m) for m in block["metrics"])]
    rows = [[f"{layer} ({block['reps'][layer]})" if layer == block["default"] else layer,
             *(_fmt(block["scores"][layer][m]) for m in block["metrics"])]
            for layer in block["scores"]]
    return header, rows


def format_layer_table(report: Any) -> str:
    """Fixed-width text form of :func:`layer_rows` (empty for a single layer)."""
    header, rows = layer_rows(report)
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths, strict=True)))
                     for r in [header, *rows])


def write_report(report: EvaluationReport, out_dir: str | os.PathLike) -> None:
    """Write ``report.md`` then ``report.json`` (last: its presence means complete)."""
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "report.md", report_markdown(report))
    atomic_write_json(out_dir / "report.json", report.to_dict())


def _profiled_input(adata: Any, rep: str, config: Any, where: str | None
                    ) -> tuple[np.ndarray | None, list[dict[str, Any]] | None]:
    """(uncorrected profiles, recorded steps) of a ``bioaug profile`` output, else Nones."""
    from bioaug.profile import UNCORRECTED, steps_from_uns

    steps = steps_from_uns(adata)
    if steps is None or rep + UNCORRECTED not in adata.obsm:
        return None, None
    if config is not None:
        raise ConfigError("this .h5ad is profiled already (corrected in obsm["
                          f"'{rep}'], uncorrected in obsm['{rep}{UNCORRECTED}']); evaluate "
                          "it without --profile to see before and after", where=where)
    return get_rep(adata, rep + UNCORRECTED, where), steps


def _profile_config(profile: Any) -> Any:
    from bioaug.profile import as_profile_config

    return as_profile_config(profile)


def _profiling(x: np.ndarray, obs: pd.DataFrame, *, label: str, mode: str, seed: int,
               null_size: int, config: Any, where: str | None,
               x_before: np.ndarray | None = None
               ) -> tuple[Profiling, Profiling | None, list[dict[str, Any]] | None]:
    """The profiling block(s): before and, with a correction ``config``, after it.

    ``x_before``: the uncorrected profiles of a profiled ``.h5ad`` (``x`` is corrected);
    ``config`` is then the list of steps it records.
    """
    if mode == "off":
        return Profiling(skipped="profiling_mode off"), None, None
    missing = [c for c in (*profiling.PROFILE_COLUMNS, label) if c not in obs.columns]
    if missing:
        reason = f"no BBBC021 metadata (missing columns: {', '.join(missing)})"
        if mode == "on" or (config is not None and x_before is None):
            raise DataError(f"profiling needs columns {missing}; the table has "
                            f"{', '.join(map(str, obs.columns))}", where=where)
        return Profiling(skipped=reason), None, None
    try:
        before = profiling.profile_scores(x, obs, label=label, seed=seed, null_size=null_size)
    except DataError as exc:
        if mode == "on" or (config is not None and x_before is None):
            raise DataError(f"profiling cannot be scored: {exc.message}", where=where,
                            hint="use --profiling off, or another --label") from None
        return Profiling(skipped=f"cannot be scored: {exc.message}"), None, None
    if config is None:
        return Profiling.model_validate(before), None, None
    if x_before is not None:  # a profiled .h5ad: rep is corrected, x_before is not
        before, after = profiling.profile_scores(x_before, obs, label=label, seed=seed,
                                                 null_size=null_size), before
        return Profiling.model_validate(before), Profiling.model_validate(after), config
    from bioaug.profile import profile_cells

    if config.output == "treatment":  # profiling aggregates wells itself
        config = config.model_copy(update={"output": "well"})
    profiled = profile_cells(x, obs, config, seed=seed, where=where)
    try:
        after = profiling.profile_scores(profiled.x, profiled.obs, label=label, seed=seed,
                                         null_size=null_size)
    except DataError as exc:
        raise DataError(f"corrected profiles cannot be scored: {exc.message}",
                        where=where) from None
    return (Profiling.model_validate(before), Profiling.model_validate(after),
            [{"step": r["step"], "level": r["level"], "dims_in": r["dims_in"],
              "dims_out": r["dims_out"]} for r in profiled.steps])


def _provenance_summary(adata: Any) -> dict[str, Any] | None:
    prov = adata.uns.get("bioaug") if hasattr(adata, "uns") else None
    if not isinstance(prov, dict):
        return None
    keep = ("kind", "layer", "store", "store_header_sha256", "aggregate")
    out = {k: _plain(prov[k]) for k in keep if k in prov}
    models = prov.get("models")
    if isinstance(models, dict):
        out["models"] = {k: {kk: _plain(vv) for kk, vv in v.items()
                             if kk in ("method", "backbone", "checkpoint_sha256", "run")}
                         for k, v in models.items() if isinstance(v, dict)}
    return out


#: Metrics that keep the query's compound among its neighbours, clusters or training
#: items: a model whose positives shared the label (or something finer) is scored on what
#: it was told. NSC / NSCB / MoA mAP leave the compound out and are not listed.
SAME_COMPOUND_METRICS: tuple[str, ...] = ("leiden_ami", "leiden_ari", "kmeans_ami",
                                          "kmeans_ari", "silhouette")
LINEAR_METRICS: tuple[str, ...] = ("linear_accuracy", "linear_balanced_accuracy")


def _training_sampling(adata: Any) -> list[dict[str, Any]]:
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
            out.append({"model": str(key), **{k: _plain(v) for k, v in record.items()}})
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
    """Warnings for metrics that score the label a model's positives were built from.

    A model trained with positives that share a treatment (or a well) pulls those cells
    together, so any metric that keeps the query's compound in play (clustering AMI, a
    probe not split by compound, replicate retrieval) scores the training signal itself.
    NSC / NSCB and MoA mAP leave the compound out (as WS-DINO, Cross et al. 2022, is scored).
    """
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


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def _figures(x: np.ndarray, obs: pd.DataFrame, y: np.ndarray, report: dict[str, Any],
             out_dir: Path, *, seed: int, max_dims: int, umap_points: int,
             label: str) -> dict[str, str]:
    figs: dict[str, str] = {}
    reduced, _ = clustering.reduce_dims(x, max_dims, seed)
    coords, idx = plots.umap_coords(reduced, max_points=umap_points, seed=seed)
    n = len(idx)
    figs["umap_label"] = plots.plot_embedding(
        coords, y[idx], out_dir / "umap_label.png",
        title=f"UMAP coloured by {label} ({n} of {len(x)} items)").name
    if "batch" in obs.columns:
        figs["umap_batch"] = plots.plot_embedding(
            coords, obs["batch"].astype(str).to_numpy()[idx], out_dir / "umap_batch.png",
            title=f"UMAP coloured by batch ({n} of {len(x)} items)").name
    lin = report["linear"]
    figs["confusion"] = plots.plot_confusion(
        np.asarray(lin["confusion_matrix"]), lin["classes"], out_dir / "confusion.png",
        title=f"Linear probe, test split ({lin['n_test']} items)").name
    figs["per_class"] = plots.plot_per_class(
        lin["per_class"], out_dir / "per_class_accuracy.png",
        title=f"Per-class linear accuracy ({lin['n_test']} test items)",
        overall=lin["accuracy"]).name
    block = report.get("layers")
    if block:
        figs["layers"] = plots.plot_layers(
            block["scores"], out_dir / "layers.png", default=block["default"],
            titles={m: metric_title(m) for m in block["metrics"]},
            title=f"Metric per layer ({len(block['scores']) - 1} probed layers)").name
    prof = report.get("profiling")
    if prof and prof.get("nsc"):
        acc = {k: v["accuracy"] for k, v in prof["nsc"]["per_class"].items()}
        figs["nsc_per_class"] = plots.plot_per_class(
            acc, out_dir / "nsc_per_moa.png",
            title=f"NSC 1-NN accuracy per MoA ({prof['nsc']['n_scored']} treatments)",
            overall=prof["nsc"]["accuracy"]).name
    return figs


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def _retrieval_note(blk: Any) -> str:
    return (f"{blk['n_groups']} groups, {blk['n_profiles']} profiles; "
            f"retrieved = FDR p < {blk['threshold']:g}, {blk['null_size']} permutations")


def _profiling_rows(prof: Any, suffix: str = "") -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    if not prof or not prof.get("nsc"):
        return rows
    values = {"nsc": prof["nsc"], "nscb": prof.get("nscb")}
    for key, blk in values.items():
        if blk:
            rows.append((metric_title(key + suffix), _fmt(blk["accuracy"]),
                         f"{blk['n_scored']} of {blk['n_treatments']} treatments, "
                         f"{blk['n_classes']} MoAs"))
            rows.append((metric_title(f"{key}_map{suffix}"), _fmt(blk["map"]),
                         f"{blk['map_n_queries']} queries"))
    for task in ("replicate", "moa"):
        blk = prof.get(task)
        if blk:
            rows.append((metric_title(f"{task}_map{suffix}"), _fmt(blk["map"]),
                         _retrieval_note(blk)))
            rows.append((metric_title(f"{task}_retrieved{suffix}"),
                         _fmt(blk["fraction_retrieved"]), ""))
    return rows


def summary_rows(report: Any) -> list[tuple[str, str, str]]:
    """(metric, value, computed on) rows: the short summary the CLI prints.

    Titles come from the metric registry (:data:`bioaug.evaluate.metrics.METRICS`).
    """
    c = report["clustering"]
    rows = [
        (metric_title("leiden_ami"), _fmt(c["leiden"]["ami"]),
         f"{c['n_items']} items, {c['n_classes']} classes, {c['leiden']['n_clusters']} "
         f"clusters @ res {c['leiden']['resolution']:.3g}"),
        (metric_title("leiden_ari"), _fmt(c["leiden"]["ari"]), ""),
        (metric_title("kmeans_ami"), _fmt(c["kmeans"]["ami"]), f"k = {c['kmeans']['k']}"),
        (metric_title("kmeans_ari"), _fmt(c["kmeans"]["ari"]), ""),
        (metric_title("silhouette"), _fmt(c["silhouette"]["value"]),
         f"{c['silhouette']['n_items']} items"),
    ]
    lin = report["linear"]
    rows.append((metric_title("linear_accuracy"), _fmt(lin["accuracy"]),
                 f"{lin['n_train']} train / {lin['n_test']} test, {lin['n_classes']} classes"
                 + (f", grouped by {lin['split']['grouped_by']}"
                    if lin["split"].get("grouped_by") else "")))
    rows.append((metric_title("linear_balanced_accuracy"), _fmt(lin["balanced_accuracy"]), ""))
    rows += _profiling_rows(report.get("profiling"))
    rows += _profiling_rows(report.get("profiling_corrected"), CORRECTED_SUFFIX)
    return rows


def format_table(rows: list[tuple[str, str, str]]) -> str:
    """Fixed-width text table of :func:`summary_rows`."""
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    return "\n".join(f"{a:<{w0}}  {b:>{w1}}  {c}".rstrip() for a, b, c in rows)


def before_after_rows(report: Any) -> list[tuple[str, str, str]]:
    """(metric, before, after) rows of the profiling metrics when a correction was applied."""
    if report.get("profiling_corrected") is None:
        return []
    values = metric_values(report, [*PROFILE_METRICS,
                                    *(f"{m}{CORRECTED_SUFFIX}" for m in PROFILE_METRICS)])
    return [(metric_title(m), _fmt(values[m]), _fmt(values[f"{m}{CORRECTED_SUFFIX}"]))
            for m in PROFILE_METRICS]


def _training_lines(prov: Any) -> list[str]:
    """Report lines: the obs columns each model's training read, and leakage warnings."""
    lines = [f"- model {t['model']} trained with --positives {t['positives']}, --batches "
             f"{t['batches']}; obs columns used: {', '.join(t.get('obs_columns') or []) or '—'}"
             for t in prov.get("training") or []]
    return lines + [f"- **warning**: {w}" for w in prov.get("leakage_warnings") or []]


def _layer_lines(report: Any) -> list[str]:
    """The ``## Layers`` section of ``report.md`` (nothing for a single layer)."""
    header, rows = layer_rows(report)
    if not rows:
        return []
    block = report["layers"]
    return ["", "## Layers", "",
            f"Each layer of the embedding scored the same way; `{block['default']}` is the "
            "default layer (`X_bioaug`, the sections below), the others "
            "`X_bioaug_<layer>`.", "",
            "| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1),
            *("| " + " | ".join(r) + " |" for r in rows)]


def report_markdown(report: Any) -> str:
    """The human-readable report (``report.md``)."""
    inp = report["input"]
    lines = [
        "# bioaug evaluation report", "",
        f"- input: `{inp['path'] or '(in memory)'}`, representation `{inp['rep']}` "
        f"({inp['dims']} dims), label `{inp['label']}`",
        f"- {inp['n_items']} items with a label ({inp['n_items_without_label']} without"
        + (f", {inp['n_items_excluded']} of {', '.join(inp['excluded_labels'])} left out"
           if inp["n_items_excluded"] else "") + "), "
        f"{inp['n_classes']} classes; seed {report['seed']}",
        *_training_lines(inp.get("embedding_provenance") or {}), "",
        "## Summary", "", "| metric | value | computed on |", "|---|---:|---|",
    ]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in summary_rows(report)]
    lines += _layer_lines(report)
    c = report["clustering"]
    rep = c["representation"]
    lines += ["", "## Clustering", "",
              f"kNN graph (`sc.pp.neighbors`, {c['n_neighbors']} neighbours) on "
              + (f"the first {rep['dims']} principal components of {rep['input_dims']} dims "
                 f"({rep['explained_variance']:.1%} of the variance)" if rep.get("pca")
                 else f"the {rep['dims']}-dim representation") + ".",
              f"Leiden (igraph, 2 iterations) resolution {c['leiden']['resolution']:.4g} gave "
              f"{c['leiden']['n_clusters']} clusters for {c['leiden']['target_clusters']} "
              f"classes ({'exact' if c['leiden']['exact'] else 'closest found'}, "
              f"{c['leiden']['tries']} runs). k-means with k = {c['kmeans']['k']}.",
              f"Silhouette of the label on {c['silhouette']['n_items']} items "
              f"(Euclidean, original representation)."]
    prof = report.get("profiling")
    if prof and prof.get("skipped"):
        lines += ["", f"Profiling (NSC / NSCB / mAP): not scored — {prof['skipped']}."]
    if report.get("profiling_corrected") is not None:
        lines += ["", "## Profiling before and after correction", "",
                  "Correction steps: " + " → ".join(
                      str(s.get("step")) for s in (report.get("profile_steps") or [])) + ".",
                  "", "| metric | before | after |", "|---|---:|---:|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in before_after_rows(report)]
    for task, what in (("replicate", "treatment"), ("moa", "MoA")):
        blk = prof.get(task) if prof else None
        if blk:
            lines += ["", f"**{task} retrieval** (mAP per {what}, copairs-style permutation "
                      f"p-values): mAP {_fmt(blk['map'])}, {_fmt(blk['fraction_retrieved'])} "
                      f"retrieved ({_retrieval_note(blk)})."]
    if prof and prof.get("nsc"):
        lines += ["", "## BBBC021 profiling (treatment profiles, 1-NN cosine)", "",
                  f"{prof['n_cells']} items → {prof['n_wells']} well profiles (mean) → "
                  f"treatment profiles (median of wells); {prof['n_control_treatments']} "
                  f"control and {prof['n_unannotated_treatments']} unannotated treatment(s) "
                  "left out.", ""]
        for key in ("nsc", "nscb"):
            blk = prof.get(key)
            if not blk:
                continue
            lines.append(f"**{blk['rule']}**: accuracy {_fmt(blk['accuracy'])} "
                         f"({blk['n_correct']} of {blk['n_scored']} scored; "
                         f"{blk['n_treatments']} treatments, {blk['n_classes']} MoAs)"
                         + (f"; dropped one-batch MoAs: {', '.join(blk['dropped_classes'])}"
                            if blk.get("dropped_classes") else "")
                         + (f"; no admissible neighbour: {', '.join(blk['unscorable'])}"
                            if blk["unscorable"] else "") + ".")
            lines += ["", "| MoA | accuracy | scored treatments |", "|---|---:|---:|"]
            lines += [f"| {k} | {_fmt(v['accuracy'])} | {v['n_scored']} |"
                      for k, v in blk["per_class"].items()]
            lines.append("")
    lin = report["linear"]
    lines += ["", "## Linear probe", "",
              f"Standardised features, multinomial logistic regression; {lin['n_train']} train "
              f"/ {lin['n_test']} test items"
              + (f", split grouped by `{lin['split']['grouped_by']}` "
                 f"({lin['split']['n_groups_train']} / {lin['split']['n_groups_test']} groups)"
                 if lin["split"].get("grouped_by") else ", stratified split")
              + (f"; classes left out (a single group): {', '.join(lin['excluded_classes'])}"
                 if lin["excluded_classes"] else "") + ".",
              "", "| class | accuracy | test items |", "|---|---:|---:|"]
    lines += [f"| {k} | {_fmt(v)} | {lin['per_class_n_test'][k]} |"
              for k, v in lin["per_class"].items()]
    if report.get("figures"):
        lines += ["", "## Figures", ""]
        lines += [f"![{k}]({v})" for k, v in report["figures"].items()]
    lines += ["", "## Timings (s)", "",
              ", ".join(f"{k} {v:.1f}" for k, v in report["timings"].items()), ""]
    return "\n".join(lines)
