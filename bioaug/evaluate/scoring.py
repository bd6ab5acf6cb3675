"""Running the metrics of an evaluation and gathering them into its report.

Profiling first (it is cheap, and a profile that cannot be scored is known up front), then
clustering and the linear probe on the labelled items. Profiling is scored once, or before
and after a correction: a correction the input records (a ``bioaug profile`` output) or a
recipe to apply now (``evaluate(..., profile=...)``), each its own parameter.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import pandas as pd

from bioaug.errors import DataError
from bioaug.evaluate import clustering, linear, profiling
from bioaug.evaluate.inputs import EvaluateOptions, Items, Recorded, provenance_summary
from bioaug.evaluate.leakage import leakage_warnings, training_sampling
from bioaug.evaluate.result import EvaluationInput, EvaluationReport, Profiling

#: (profiling, profiling after the correction or None, the correction's steps or None).
ProfilingBlocks = tuple[Profiling, Profiling | None, list[dict[str, Any]] | None]


def run_profiling(x: np.ndarray, obs: pd.DataFrame, *, label: str, mode: str, seed: int,
                  null_size: int, where: str | None, recipe: Any = None,
                  recorded: Recorded | None = None) -> ProfilingBlocks:
    """The profiling block(s) of the representation ``x``.

    Parameters
    ----------
    x, obs
        Every item's representation and metadata.
    label, mode, seed, null_size
        As :func:`~bioaug.evaluate.evaluate` takes them (``mode``: ``profiling_mode``).
    where
        The input file, for messages.
    recipe
        A :class:`~bioaug.profile.ProfileConfig` to correct ``x`` with, then profile again.
        Profiling must then be possible (an error otherwise).
    recorded
        The correction ``x`` went through already (a ``bioaug profile`` output): profiled
        before (its uncorrected profiles) and after (``x``).
    """
    if mode == "off":
        return Profiling(skipped="profiling_mode off"), None, None
    scored = _scores(x, obs, label=label, seed=seed, null_size=null_size, where=where,
                     strict=mode == "on" or recipe is not None)
    if isinstance(scored, str):
        return Profiling(skipped=scored), None, None
    if recorded is not None:
        before = profiling.profile_scores(recorded.x_uncorrected, obs, label=label, seed=seed,
                                          null_size=null_size)
        return (Profiling.model_validate(before), Profiling.model_validate(scored),
                recorded.steps)
    if recipe is not None:
        after, steps = _corrected_scores(x, obs, recipe, label=label, seed=seed,
                                         null_size=null_size, where=where)
        return Profiling.model_validate(scored), after, steps
    return Profiling.model_validate(scored), None, None


def _scores(x: np.ndarray, obs: pd.DataFrame, *, label: str, seed: int, null_size: int,
            where: str | None, strict: bool) -> dict[str, Any] | str:
    """The profiling block of ``x``, or why it cannot be scored (``strict``: an error)."""
    missing = [c for c in (*profiling.PROFILE_COLUMNS, label) if c not in obs.columns]
    if missing:
        if strict:
            raise DataError(f"profiling needs columns {missing}; the table has "
                            f"{', '.join(map(str, obs.columns))}", where=where)
        return f"no BBBC021 metadata (missing columns: {', '.join(missing)})"
    try:
        return profiling.profile_scores(x, obs, label=label, seed=seed, null_size=null_size)
    except DataError as exc:
        if strict:
            raise DataError(f"profiling cannot be scored: {exc.message}", where=where,
                            hint="use --profiling off, or another --label") from None
        return f"cannot be scored: {exc.message}"


def _corrected_scores(x: np.ndarray, obs: pd.DataFrame, recipe: Any, *, label: str,
                      seed: int, null_size: int, where: str | None
                      ) -> tuple[Profiling, list[dict[str, Any]]]:
    """Profiling of ``x`` corrected by ``recipe``, and the steps applied."""
    from bioaug.profile import profile_cells

    if recipe.output == "treatment":  # profiling aggregates wells itself
        recipe = recipe.model_copy(update={"output": "well"})
    profiled = profile_cells(x, obs, recipe, seed=seed, where=where)
    try:
        after = profiling.profile_scores(profiled.x, profiled.obs, label=label, seed=seed,
                                         null_size=null_size)
    except DataError as exc:
        raise DataError(f"corrected profiles cannot be scored: {exc.message}",
                        where=where) from None
    return Profiling.model_validate(after), [
        {"step": r["step"], "level": r["level"], "dims_in": r["dims_in"],
         "dims_out": r["dims_out"]} for r in profiled.steps]


def score(items: Items, opts: EvaluateOptions, *, adata: Any, path: str | None, rep: str,
          recipe: Any, recorded: Recorded | None, timings: dict[str, float]
          ) -> EvaluationReport:
    """Every metric of ``items`` (profiling, clustering, linear probe) as the report."""
    t0 = time.perf_counter()
    prof, corrected, steps = run_profiling(
        items.x_all, items.obs_all, label=opts.label, mode=opts.profiling_mode, seed=opts.seed,
        null_size=opts.null_size, where=path, recipe=recipe, recorded=recorded)
    timings["profiling"] = time.perf_counter() - t0
    clust = clustering.cluster_and_score(
        items.x, items.y, seed=opts.seed, max_dims=opts.max_dims, n_neighbors=opts.n_neighbors,
        max_tries=opts.leiden_max_tries, silhouette_sample=opts.silhouette_sample,
        timings=timings)
    t0 = time.perf_counter()
    lin = linear.linear_probe(items.x, items.y, items.groups, test_size=opts.test_size,
                              seed=opts.seed, max_train=opts.max_train,
                              group_column=items.group_column)
    timings["linear"] = time.perf_counter() - t0
    block = input_block(items, adata, path=path, rep=rep, label=opts.label,
                        grouped_by=lin["split"].get("grouped_by"),
                        replicate=prof.replicate is not None)
    return EvaluationReport(input=block, seed=opts.seed, clustering=clust, profiling=prof,
                            profiling_corrected=corrected, profile_steps=steps, linear=lin)


def input_block(items: Items, adata: Any, *, path: str | None, rep: str, label: str,
                grouped_by: str | None, replicate: bool) -> EvaluationInput:
    """``report.input``: what was scored, and the embedding's provenance with a warning
    for each metric that scores what a model's training was given."""
    prov = provenance_summary(adata)
    trained = training_sampling(adata)
    if trained and prov is not None:
        leaks = leakage_warnings(items.obs_all, label, trained, grouped_by, replicate=replicate)
        prov.update(training=trained, leakage_warnings=leaks)
        for text in leaks:
            warnings.warn(text, UserWarning, stacklevel=4)
    classes, counts = np.unique(items.y, return_counts=True)
    return EvaluationInput(
        path=path, rep=rep, label=label, n_items=len(items.x),
        n_items_without_label=items.n_unlabelled, excluded_labels=items.exclude,
        n_items_excluded=items.n_excluded, dims=int(items.x.shape[1]), n_classes=len(classes),
        class_counts={str(k): int(v) for k, v in zip(classes, counts, strict=True)},
        embedding_provenance=prov)
