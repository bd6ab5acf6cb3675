"""One call that scores an embedding: clustering, BBBC021 profiling, linear probe, pictures.

:func:`evaluate` reads an AnnData (or an ``.h5ad`` path) made by :func:`bioaug.embed.embed`,
checks it, runs every applicable stage and, given ``out``, writes ``report.json``,
``report.md`` and PNG pictures there. Every metric carries the number of items and classes it
was computed on. The evaluation is dataset-agnostic: the BBBC021 profiling block runs only
when the plate / well / compound / concentration / batch columns are present.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bioaug.errors import DataError, did_you_mean
from bioaug.evaluate import clustering, linear, plots, profiling
from bioaug.io import atomic_write_json, atomic_write_text, provenance


def load_adata(adata_or_path: Any) -> tuple[Any, str | None]:
    """The AnnData and its path (None for an in-memory object)."""
    import anndata as ad

    if isinstance(adata_or_path, ad.AnnData):
        return adata_or_path, None
    path = Path(adata_or_path)
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


def evaluate(adata_or_path: Any, *, label: str = "moa", rep: str = "X_bioaug",
             out: str | os.PathLike | None = None, seed: int = 0,
             profiling_mode: str = "auto", linear_group: str | None = "auto",
             test_size: float = 0.2, max_dims: int = clustering.DEFAULT_MAX_DIMS,
             n_neighbors: int = 15, silhouette_sample: int = clustering.DEFAULT_SILHOUETTE_SAMPLE,
             umap_points: int = plots.DEFAULT_UMAP_POINTS, max_train: int | None = 50_000,
             plot: bool = True, leiden_max_tries: int = 20,
             exclude: tuple[str, ...] | list[str] = ()) -> dict[str, Any]:
    """Score embedding ``rep`` of an AnnData against obs column ``label``.

    Returns the report dict (``clustering``, ``profiling`` — whose ``nsc`` and ``nscb`` are
    None, with a ``skipped`` reason, without BBBC021 metadata or with
    ``profiling_mode="off"`` —, ``linear``, ``timings``, ``input``); writes
    ``report.json``, ``report.md`` and PNGs into ``out`` when given.
    ``linear_group="auto"`` groups the probe's split by compound when that column exists.
    ``exclude`` lists label values left out of clustering and the probe (e.g. ``["DMSO"]``);
    profiling applies its own rules (the control is never a query or reference).
    """
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    adata, path = load_adata(adata_or_path)
    timings["load"] = time.perf_counter() - t0
    x_all = get_rep(adata, rep, path)
    obs_all = adata.obs
    values, has = get_labels(obs_all, label, path)
    n_unlabelled = int((~has).sum())
    excluded = np.isin(values, [str(e) for e in exclude]) & has
    has = has & ~excluded
    if len(np.unique(values[has])) < 2:
        raise DataError(f"fewer than two '{label}' classes remain after excluding "
                        f"{list(exclude)}", where=path)
    x, obs, y = x_all[has], obs_all.loc[has], values[has]
    report: dict[str, Any] = {
        "input": {"path": path, "rep": rep, "label": label, "n_items": len(x),
                  "n_items_without_label": n_unlabelled,
                  "excluded_labels": [str(e) for e in exclude],
                  "n_items_excluded": int(excluded.sum()), "dims": int(x.shape[1]),
                  "n_classes": len(np.unique(y)),
                  "class_counts": {str(k): int(v) for k, v in
                                   zip(*np.unique(y, return_counts=True), strict=True)},
                  "embedding_provenance": _provenance_summary(adata)},
        "seed": seed,
    }

    report["clustering"] = clustering.cluster_and_score(
        x, y, seed=seed, max_dims=max_dims, n_neighbors=n_neighbors,
        max_tries=leiden_max_tries, silhouette_sample=silhouette_sample, timings=timings)

    t0 = time.perf_counter()
    if profiling_mode not in ("auto", "on", "off"):
        raise DataError(f"profiling_mode must be auto, on or off, not {profiling_mode!r}")
    wants = profiling_mode == "on" or (
        profiling_mode == "auto" and profiling.has_profile_columns(list(obs.columns), label))
    if wants:
        report["profiling"] = profiling.profile_scores(x_all, obs_all, label=label)
    else:
        missing = [c for c in (*profiling.PROFILE_COLUMNS, label) if c not in obs.columns]
        report["profiling"] = {
            "nsc": None, "nscb": None,
            "skipped": "profiling_mode off" if profiling_mode == "off" else
            f"no BBBC021 metadata (missing columns: {', '.join(missing)})"}
    timings["profiling"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    group_col = (linear.default_group_column(obs, label) if linear_group == "auto"
                 else linear_group)
    if group_col is not None and group_col not in obs.columns:
        raise DataError(f"group column '{group_col}' for the linear probe not found; obs "
                        f"columns: {', '.join(map(str, obs.columns))}")
    groups = obs[group_col].astype(str).to_numpy() if group_col else None
    report["linear"] = linear.linear_probe(x, y, groups, test_size=test_size, seed=seed,
                                           max_train=max_train, group_column=group_col)
    timings["linear"] = time.perf_counter() - t0

    figures: dict[str, str] = {}
    if out is not None:
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        if plot:
            t0 = time.perf_counter()
            figures = _figures(x, obs, y, report, out_dir, seed=seed, max_dims=max_dims,
                               umap_points=umap_points, label=label)
            timings["plots"] = time.perf_counter() - t0
    report["figures"] = figures
    timings["total"] = time.perf_counter() - t_start
    report["timings"] = {k: round(v, 3) for k, v in timings.items()}
    report["provenance"] = provenance(stage="evaluate")
    if out is not None:
        out_dir = Path(out)
        atomic_write_json(out_dir / "report.json", report)
        atomic_write_text(out_dir / "report.md", report_markdown(report))
    return report


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


def summary_rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(metric, value, computed on) rows: the short summary the CLI prints."""
    c = report["clustering"]
    rows = [
        ("Leiden AMI", _fmt(c["leiden"]["ami"]),
         f"{c['n_items']} items, {c['n_classes']} classes, {c['leiden']['n_clusters']} "
         f"clusters @ res {c['leiden']['resolution']:.3g}"),
        ("Leiden ARI", _fmt(c["leiden"]["ari"]), ""),
        ("k-means AMI", _fmt(c["kmeans"]["ami"]), f"k = {c['kmeans']['k']}"),
        ("k-means ARI", _fmt(c["kmeans"]["ari"]), ""),
        ("silhouette (label)", _fmt(c["silhouette"]["value"]),
         f"{c['silhouette']['n_items']} items"),
    ]
    lin = report["linear"]
    rows.append(("linear accuracy", _fmt(lin["accuracy"]),
                 f"{lin['n_train']} train / {lin['n_test']} test, {lin['n_classes']} classes"
                 + (f", grouped by {lin['split']['grouped_by']}"
                    if lin["split"].get("grouped_by") else "")))
    rows.append(("linear balanced acc.", _fmt(lin["balanced_accuracy"]), ""))
    prof = report.get("profiling")
    if prof and prof.get("nsc"):
        for key in ("nsc", "nscb"):
            blk = prof.get(key)
            if blk:
                rows.append((f"{key.upper()} 1-NN accuracy", _fmt(blk["accuracy"]),
                             f"{blk['n_scored']} of {blk['n_treatments']} treatments, "
                             f"{blk['n_classes']} MoAs"))
                rows.append((f"{key.upper()} mAP", _fmt(blk["map"]),
                             f"{blk['map_n_queries']} queries"))
    return rows


def format_table(rows: list[tuple[str, str, str]]) -> str:
    """Fixed-width text table of :func:`summary_rows`."""
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    return "\n".join(f"{a:<{w0}}  {b:>{w1}}  {c}".rstrip() for a, b, c in rows)


def report_markdown(report: dict[str, Any]) -> str:
    """The human-readable report (``report.md``)."""
    inp = report["input"]
    lines = [
        "# bioaug evaluation report", "",
        f"- input: `{inp['path'] or '(in memory)'}`, representation `{inp['rep']}` "
        f"({inp['dims']} dims), label `{inp['label']}`",
        f"- {inp['n_items']} items with a label ({inp['n_items_without_label']} without"
        + (f", {inp['n_items_excluded']} of {', '.join(inp['excluded_labels'])} left out"
           if inp["n_items_excluded"] else "") + "), "
        f"{inp['n_classes']} classes; seed {report['seed']}", "",
        "## Summary", "", "| metric | value | computed on |", "|---|---:|---|",
    ]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in summary_rows(report)]
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
