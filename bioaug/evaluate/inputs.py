"""The inputs of an evaluation: the data, its representation and labels, the options.

Everything here runs before any metric: reading an ``.h5ad`` (or a profile table), the
checks of the representation, the label column and every option, which items are scored,
and what the input records about itself (a correction it went through, its provenance,
the layers of a ``--layer all`` embedding). Each mistake is one clear error raised before
any expensive step.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bioaug.errors import ConfigError, DataError, did_you_mean
from bioaug.evaluate import linear
from bioaug.seeds import check_seed

#: Values of ``profiling_mode``: auto (when the BBBC021 columns exist), on, off.
PROFILING_MODES: tuple[str, ...] = ("auto", "on", "off")


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


def check_options(*, profiling_mode: str, test_size: float, seed: int, max_dims: int,
                  n_neighbors: int, null_size: int = 1) -> None:
    """Validate the plain options of :func:`~bioaug.evaluate.evaluate` (before anything is
    loaded); the seed follows the one rule of :func:`bioaug.seeds.check_seed`."""
    if profiling_mode not in PROFILING_MODES:
        raise ConfigError(f"profiling_mode must be one of {', '.join(PROFILING_MODES)}, not "
                          f"{profiling_mode!r}{did_you_mean(str(profiling_mode), PROFILING_MODES)}")
    if not 0.0 < float(test_size) < 1.0:
        raise ConfigError(f"test_size must be between 0 and 1 (exclusive), not {test_size}")
    check_seed(seed, "seed")
    if int(max_dims) < 2:
        raise ConfigError(f"max_dims must be 2 or more, not {max_dims}")
    if int(n_neighbors) < 2:
        raise ConfigError(f"n_neighbors must be 2 or more, not {n_neighbors}")
    if int(null_size) < 1:
        raise ConfigError(f"null_size must be 1 or more, not {null_size}")


@dataclass(frozen=True)
class EvaluateOptions:
    """The options of :func:`~bioaug.evaluate.evaluate` that every layer is scored with
    (see its parameters)."""

    label: str
    seed: int
    profiling_mode: str
    linear_group: str | None
    test_size: float
    max_dims: int
    n_neighbors: int
    silhouette_sample: int
    max_train: int | None
    leiden_max_tries: int
    exclude: Sequence[str]
    profile: Any
    null_size: int

    def checked(self) -> EvaluateOptions:
        """These options, validated (:func:`check_options`)."""
        check_options(profiling_mode=self.profiling_mode, test_size=self.test_size,
                      seed=self.seed, max_dims=self.max_dims, n_neighbors=self.n_neighbors,
                      null_size=self.null_size)
        return self

    def as_kwargs(self) -> dict[str, Any]:
        """The options as keyword arguments of :func:`~bioaug.evaluate.evaluate`."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


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


@dataclass
class Recorded:
    """A correction a ``bioaug profile`` output went through: its profiles before it, and
    the steps (``obsm[rep]`` holds them after it)."""

    x_uncorrected: np.ndarray
    steps: list[dict[str, Any]]


def recipe_of(profile: Any) -> Any:
    """The correction recipe (:class:`~bioaug.profile.ProfileConfig`) to apply before
    profiling again, or None."""
    if profile is None:
        return None
    from bioaug.profile import as_profile_config

    return as_profile_config(profile)


def recorded_correction(adata: Any, rep: str, recipe: Any, where: str | None
                        ) -> Recorded | None:
    """The correction a profiled input records (None for other inputs). Profiles that are
    corrected already (a profile output, an exported table of one) take no recipe that
    would correct them again."""
    from bioaug.profile import UNCORRECTED, steps_from_uns
    from bioaug.profile.corrected import corrected_steps, refuse_second_correction

    if recipe is not None:
        refuse_second_correction(adata, rep, recipe.corrects(), where=where,
                                 hint="evaluate it without --profile: its profiling is "
                                      "scored as it is")
    steps = steps_from_uns(adata)
    before = rep + UNCORRECTED
    if steps is None or before not in adata.obsm or corrected_steps(adata, before):
        return None
    if recipe is not None:
        raise ConfigError("this .h5ad is profiled already (corrected in obsm["
                          f"'{rep}'], uncorrected in obsm['{before}']); evaluate it without "
                          "--profile to see before and after", where=where)
    return Recorded(get_rep(adata, before, where), steps)


@dataclass
class Items:
    """What an evaluation scores: every item (``x_all``, ``obs_all``: profiling applies
    its own rules) and the labelled, not excluded ones (``x``, ``obs``, ``y``)."""

    x_all: np.ndarray
    obs_all: pd.DataFrame
    x: np.ndarray
    obs: pd.DataFrame
    y: np.ndarray
    group_column: str | None
    n_unlabelled: int
    n_excluded: int
    exclude: list[str]

    @property
    def groups(self) -> np.ndarray | None:
        """The linear probe's split groups (None: a plain stratified split)."""
        col = self.group_column
        return self.obs[col].astype(str).to_numpy() if col else None


def select_items(adata: Any, path: str | None, *, rep: str, label: str,
                 exclude: Sequence[str], linear_group: str | None) -> Items:
    """The representation, the labels and the items scored, every check made."""
    x_all = get_rep(adata, rep, path)
    values, has = get_labels(adata.obs, label, path)
    exclude = check_exclude(exclude, values, has, label, path)
    excluded = np.isin(values, exclude) & has
    keep = has & ~excluded
    if len(np.unique(values[keep])) < 2:
        raise DataError(f"fewer than two '{label}' classes remain after excluding "
                        f"{exclude}", where=path)
    obs = adata.obs.loc[keep]
    group = linear.default_group_column(obs, label) if linear_group == "auto" else linear_group
    if group is not None and group not in obs.columns:
        cols = [str(c) for c in obs.columns]
        raise DataError(f"group column '{group}' for the linear probe not found"
                        f"{did_you_mean(str(group), cols)}; obs columns: {', '.join(cols)}",
                        where=path)
    return Items(x_all=x_all, obs_all=adata.obs, x=x_all[keep], obs=obs, y=values[keep],
                 group_column=group, n_unlabelled=int((~has).sum()),
                 n_excluded=int(excluded.sum()), exclude=exclude)


def report_dir(out: str | os.PathLike | None, adata_or_path: Any) -> Path | None:
    """The report directory, checked writable (and never an input) before any work."""
    if out is None:
        return None
    from bioaug.io import check_output

    source = [adata_or_path] if isinstance(adata_or_path, (str, os.PathLike)) else []
    return check_output(out, "report", inputs=source, replace=True)


def make_report_dir(out_dir: Path | None) -> None:
    """Create the report directory (once the inputs are known to be good)."""
    if out_dir is None:
        return
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create --out {out_dir}: {exc.strerror or exc}") from None


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


def plain(v: Any) -> Any:
    """A numpy scalar or array (as read back from ``.h5ad``) as plain Python data."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def provenance_summary(adata: Any) -> dict[str, Any] | None:
    """What the report keeps of the embedding's provenance (source, layer, store, models)."""
    prov = adata.uns.get("bioaug") if hasattr(adata, "uns") else None
    if not isinstance(prov, dict):
        return None
    keep = ("kind", "layer", "store", "store_header_sha256", "aggregate")
    out = {k: plain(prov[k]) for k in keep if k in prov}
    models = prov.get("models")
    if isinstance(models, dict):
        out["models"] = {k: {kk: plain(vv) for kk, vv in v.items()
                             if kk in ("method", "backbone", "checkpoint_sha256", "run")}
                         for k, v in models.items() if isinstance(v, dict)}
    return out
