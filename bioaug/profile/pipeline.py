"""Profile a cell embedding: aggregate, correct step by step, record everything.

:func:`profile_cells` is the maths on arrays; :func:`profile` wraps it for an AnnData made
by ``bioaug embed`` and returns the profiles as a new AnnData (``obsm[rep]`` corrected,
``obsm[rep + "_uncorrected"]`` the same profiles before correction,
``uns["bioaug"]["profile"]`` the recipe, what each step did and the fitted transforms).
Without explicit steps the standard correction is chosen for the data
(:mod:`bioaug.profile.standard`); ``uns["bioaug"]["profile"]["standard"]`` says which
steps and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bioaug.embed.aggregate import (
    TREATMENT_KEYS,
    WELL_KEYS,
    as_categorical,
    group_codes,
    group_mean,
    group_median,
    treatment_profiles,
)
from bioaug.errors import DataError, did_you_mean
from bioaug.profile import steps as S
from bioaug.profile.config import (
    ProfileConfig,
    as_profile_config,
    make_profile_config,
    parse_control,
)
from bioaug.profile.corrected import (
    CORRECTED_KEY,
    corrected_steps,
    corrections_record,
    refuse_second_correction,
)
from bioaug.profile.identity import check_same_features, feature_identity
from bioaug.profile.standard import StandardChoice, standard_steps
from bioaug.seeds import check_seed

#: Suffix of the obsm key holding the profiles before correction.
UNCORRECTED = "_uncorrected"


@dataclass
class Profiled:
    """Corrected profiles ``x`` with their table ``obs`` at ``level``; the steps' records.

    Examples
    --------
    Two cells of one well, aggregated without correction:

    >>> import numpy as np
    >>> import pandas as pd
    >>> from bioaug.profile import profile_cells
    >>> obs = pd.DataFrame({"plate": ["P1", "P1"], "well": ["A01", "A01"],
    ...                     "moa": ["DMSO", "DMSO"]})
    >>> res = profile_cells(np.array([[0.0, 4.0], [2.0, 0.0]]), obs, "none")
    >>> res.level, res.x.tolist(), res.steps, res.obs["n_cells"].tolist()
    ('well', [[1.0, 2.0]], [], [2])
    """

    x: np.ndarray
    obs: pd.DataFrame
    level: str
    x_uncorrected: np.ndarray
    steps: list[dict[str, Any]] = field(default_factory=list)
    fitted: dict[int, S.Fitted] = field(default_factory=dict)
    n_controls: int = 0
    config: ProfileConfig | None = None
    standard: StandardChoice | None = None


def control_mask(obs: pd.DataFrame, query: str, where: str | None = None) -> np.ndarray:
    """Rows matching the control query ``COLUMN=VALUE`` (case-insensitive, trimmed)."""
    col, value = parse_control(query)
    if col not in obs.columns:
        cols = [str(c) for c in obs.columns]
        raise DataError(f"control query {query!r}: no column '{col}'{did_you_mean(col, cols)}; "
                        f"columns: {', '.join(cols)}", where=where, hint="set it with --control")
    values = obs[col].astype(str).str.strip()
    mask = values.str.lower().eq(value.lower()).to_numpy()
    if not mask.any():
        seen = sorted(values.unique().tolist())
        shown = ", ".join(seen[:15]) + (" …" if len(seen) > 15 else "")
        raise DataError(f"control query {query!r} matches no rows{did_you_mean(value, seen)}; "
                        f"values of {col}: {shown}", where=where, hint="set it with --control")
    return mask


def check_features(x: np.ndarray, where: str | None = None) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise DataError(f"features must be a 2-D table, not shape {list(x.shape)}", where=where)
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"features must be numeric, not {x.dtype}", where=where)
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise DataError(f"features have NaN or infinite values in {int(bad.sum())} of {len(x)} "
                        f"rows (first row: {int(np.flatnonzero(bad)[0])})", where=where,
                        hint="drop or impute those rows before profiling")
    return x.astype(np.float64, copy=False)


def _need(obs: pd.DataFrame, columns: list[str], why: str, where: str | None) -> None:
    cols = [str(c) for c in obs.columns]
    for c in columns:
        if c not in obs.columns:
            raise DataError(f"{why} needs column '{c}'{did_you_mean(c, cols)}; columns: "
                            f"{', '.join(cols)}", where=where)


def check_inputs(obs: pd.DataFrame, config: ProfileConfig, where: str | None = None) -> None:
    """Every column the recipe needs is there (before any work). The standard steps need
    only the control query the user gave (the default one may match nothing)."""
    if config.correct_at == "well" or config.output in ("well", "treatment"):
        _need(obs, list(WELL_KEYS), f"aggregation per well (correct_at {config.correct_at}, "
              f"output {config.output})", where)
    if config.output == "treatment":
        _need(obs, list(TREATMENT_KEYS), "output treatment", where)
    for spec in config.step_specs():
        p = spec.parsed()
        if getattr(p, "scope", "global") == "plate":
            _need(obs, [config.plate], f"step {spec.name} (scope plate)", where)
        if spec.name == "harmony":
            _need(obs, [p.batch_key], "step harmony (batch_key)", where)  # type: ignore[attr-defined]
    if not config.is_standard() or "control" in config.model_fields_set:
        control_mask(obs, config.control, where)
    order = {"cell": 0, "well": 1, "treatment": 2}
    if order[config.output] < order[config.correct_at]:
        raise DataError(f"output {config.output} is finer than correct_at {config.correct_at}")


def aggregate_wells(x: np.ndarray, obs: pd.DataFrame, how: str = "mean"
                    ) -> tuple[np.ndarray, pd.DataFrame]:
    """Per (plate, well): mean or median of the rows; the table keeps constant columns."""
    codes = group_codes(obs, WELL_KEYS)
    prof = group_mean(x, codes) if how == "mean" else group_median(x, codes)
    df = obs.copy()
    for c in df.columns:
        if isinstance(df[c].dtype, pd.CategoricalDtype):
            df[c] = df[c].astype(object)
    df["_g"] = codes
    constant = [c for c in obs.columns if df.groupby("_g")[c].nunique(dropna=False).max() <= 1]
    table = df.groupby("_g", sort=True)[constant].first().reset_index(drop=True)
    table["n_cells"] = np.bincount(codes, minlength=len(table))
    return prof.astype(np.float64), table


def _apply_step(spec: Any, x: np.ndarray, obs: pd.DataFrame, controls: np.ndarray,
                config: ProfileConfig, seed: int, saved: S.Fitted | None = None
                ) -> tuple[np.ndarray, S.Fitted | None, dict[str, Any]]:
    """Fit (or reuse ``saved``, for a global step) and apply one step."""
    p = spec.parsed()
    name = spec.name
    plates = (obs[config.plate].astype(str).to_numpy() if config.plate in obs.columns
              else np.zeros(len(obs), dtype=str))
    reuse = saved is not None and (name == "select" or getattr(p, "scope", "") == "global")
    samples = getattr(p, "samples", "controls")
    if samples == "all":
        controls = np.ones(len(x), dtype=bool)
    if name in S.LOCATION_SCALE:
        loc, scale = S.LOCATION_SCALE[name]
        fitted = saved if reuse and saved is not None else S.fit_location_scale(
            name, x, plates, controls, scope=p.scope, location=loc, scale=scale,
            epsilon=p.epsilon, samples=samples)
        return S.apply_location_scale(fitted, x, plates), fitted, {**fitted.info,
                                                                   "reused": reuse}
    if name == "sphere":
        fitted = saved if reuse and saved is not None else S.fit_sphere(
            x, plates, controls, scope=p.scope, method=p.method, epsilon=p.epsilon,
            n_components=p.n_components, samples=samples)
        return S.apply_sphere(fitted, x, plates), fitted, {**fitted.info, "reused": reuse}
    if name == "harmony":
        z = S.run_harmony(x, obs[p.batch_key].to_numpy(), seed=seed, max_iter=p.max_iter)
        return z, None, {"n_batches": int(obs[p.batch_key].nunique())}
    if name == "select":
        if reuse and saved is not None:
            keep, info = np.asarray(saved.arrays["keep"], dtype=np.int64), dict(saved.info)
            if keep.max() >= x.shape[1]:
                raise DataError(f"select: the saved selection needs {keep.max() + 1} "
                                f"features; this data has {x.shape[1]}")
        else:
            keep, info = S.select_features(x, variance_threshold=p.variance_threshold,
                                           correlation_threshold=p.correlation_threshold)
        fitted = S.Fitted("select", p.model_dump(), ["all"], {"keep": keep}, info)
        return x[:, keep], fitted, {**info, "reused": reuse}
    raise AssertionError(name)  # the config only admits registered steps


def profile_cells(x: np.ndarray, obs: pd.DataFrame, config: Any = None, *, seed: int = 0,
                  where: str | None = None, saved: list[S.Fitted | None] | None = None
                  ) -> Profiled:
    """Aggregate cell features, apply the recipe's corrections, aggregate to the output.

    Parameters
    ----------
    x
        (cells × features) matrix.
    obs
        One row per cell: plate, well (for aggregation), the control column, and what the
        steps need (batch for harmony; compound, concentration for treatment output).
    config
        A :class:`ProfileConfig`, a YAML path, step names or a dict (see
        :func:`~bioaug.profile.config.as_profile_config`); None, or steps ``"standard"``:
        the standard correction chosen for the data (:mod:`bioaug.profile.standard`);
        ``"none"`` or ``[]``: no correction.
    seed
        Seed of the stochastic steps (harmony).
    where
        File the data came from (for error messages).
    saved
        Fitted transforms of an earlier run, one per step (None for a step without one):
        global steps and feature selection are reused as fitted; per-plate steps are fitted
        on each new plate's own controls, with the same parameters.

    Returns
    -------
    Profiled
        Corrected and uncorrected profiles at ``config.output``, the record of every step,
        the recipe with its steps resolved and the standard choice.

    Examples
    --------
    Six cells in three wells of one plate, two wells of controls (``moa`` DMSO); the well
    means are centred on the controls' mean, ``[2, 2]``:

    >>> import numpy as np
    >>> import pandas as pd
    >>> from bioaug.profile import profile_cells
    >>> x = np.array([[1, 0], [1, 2], [3, 2], [3, 4], [6, 1], [8, 1]], dtype=np.float32)
    >>> obs = pd.DataFrame({"plate": "P1", "well": ["A01", "A01", "A02", "A02", "B01", "B01"],
    ...                     "moa": ["DMSO"] * 4 + ["tubulin"] * 2})
    >>> res = profile_cells(x, obs, ["center"])
    >>> res.level, res.n_controls
    ('well', 2)
    >>> res.x_uncorrected.tolist()
    [[1.0, 1.0], [3.0, 3.0], [7.0, 1.0]]
    >>> res.x.tolist()
    [[-1.0, -1.0], [1.0, 1.0], [5.0, -1.0]]
    """
    config = as_profile_config(config)
    obs = obs.reset_index(drop=True) if not isinstance(obs.index, pd.RangeIndex) else obs
    x = check_features(x, where)
    if len(x) != len(obs):
        raise DataError(f"{len(x)} feature rows for {len(obs)} metadata rows", where=where)
    check_inputs(obs, config, where)
    if config.correct_at == "well":
        x, obs = aggregate_wells(x, obs, config.aggregate)
    config, choice, controls = resolve_steps(config, x, obs, where)
    level = config.correct_at
    # the uncorrected profiles at the output grain (aggregated now: no copy of every cell)
    x0 = aggregate_wells(x, obs, config.aggregate)[0] if (
        level == "cell" and config.output != "cell") else x.copy()
    x, records, fitted_all = _correct(x, obs, controls, config, seed, saved)
    if config.output != level:
        if level == "cell":
            x, obs = aggregate_wells(x, obs, config.aggregate)
            level = "well"
        if config.output == "treatment":
            label = "moa" if "moa" in obs.columns else None
            x0, _ = treatment_profiles(x0, obs, label=label)
            x, obs = treatment_profiles(x, obs, label=label)
            x, x0 = x.astype(np.float64), x0.astype(np.float64)
            level = "treatment"
    return Profiled(x=x, obs=obs, level=level, x_uncorrected=x0, steps=records,
                    fitted=fitted_all, n_controls=int(controls.sum()), config=config,
                    standard=choice)


def resolve_steps(config: ProfileConfig, x: np.ndarray, obs: pd.DataFrame,
                  where: str | None = None
                  ) -> tuple[ProfileConfig, StandardChoice | None, np.ndarray]:
    """(recipe with explicit steps, the standard choice or None, control rows) for the
    profiles ``x`` / ``obs`` at the correction level."""
    if not config.is_standard():
        return config, None, control_mask(obs, config.control, where)
    choice = standard_steps(obs, x.shape[1], control=config.control, plate=config.plate)
    values = {**config.model_dump(exclude_unset=True), "steps": choice.steps}
    resolved = make_profile_config(values, source=where or "<profile recipe>")
    controls = (choice.controls if choice.controls is not None
                else np.zeros(len(obs), dtype=bool))
    return resolved, choice, controls


def _correct(x: np.ndarray, obs: pd.DataFrame, controls: np.ndarray, config: ProfileConfig,
             seed: int, saved: list[S.Fitted | None] | None
             ) -> tuple[np.ndarray, list[dict[str, Any]], dict[int, S.Fitted]]:
    """Apply the recipe's steps in order: (profiles, step records, fitted transforms)."""
    records: list[dict[str, Any]] = []
    fitted_all: dict[int, S.Fitted] = {}
    for i, spec in enumerate(config.step_specs()):
        d_in = x.shape[1]
        x, fitted, info = _apply_step(spec, x, obs, controls, config, seed,
                                      saved[i] if saved is not None else None)
        if not np.isfinite(x).all():
            raise DataError(f"step {i} ({spec.name}) produced NaN or infinite values")
        records.append({"index": i, "step": spec.name, "params": spec.parsed().model_dump(),
                        "level": config.correct_at, "dims_in": int(d_in),
                        "dims_out": int(x.shape[1]), "n_controls": int(controls.sum()),
                        "info": info})
        if fitted is not None:
            fitted_all[i] = fitted
    return x, records, fitted_all


def saved_transforms(profiled: Any) -> tuple[ProfileConfig, list[S.Fitted | None]]:
    """The recipe and fitted transforms recorded by :func:`profile` (for new plates)."""
    prov = profiled.uns.get("bioaug", {}) if hasattr(profiled, "uns") else {}
    rec = prov.get("profile") if isinstance(prov, dict) else None
    if not isinstance(rec, dict) or "config" not in rec:
        raise DataError("not a bioaug profile output: no uns['bioaug']['profile']",
                        hint="make one with `bioaug profile cells.h5ad --out profiles.h5ad`")
    cfg = dict(rec["config"])
    cfg["steps"] = [{s["name"]: {k: (None if v == "" else v) for k, v in
                                 dict(s.get("params") or {}).items()}}
                    for s in (cfg.get("steps").values() if isinstance(cfg.get("steps"), dict)
                              else cfg.get("steps") or [])]
    config = as_profile_config({k: (None if v == "" else v) for k, v in cfg.items()
                                if k != "bioaug_profile"})
    fitted: list[S.Fitted | None] = [None] * len(config.steps)
    for key, f in dict(rec.get("fitted", {})).items():
        i = int(str(key).split("_", 1)[0])
        fitted[i] = S.Fitted(str(f["step"]), dict(f.get("params", {})),
                             [str(g) for g in np.asarray(f["groups"]).tolist()],
                             {k: np.asarray(v) for k, v in dict(f["arrays"]).items()},
                             dict(f.get("info", {})))
    return config, fitted


def fitted_features(profiled: Any) -> dict[str, Any] | None:
    """The identity of the features the correction of ``profiled`` was fitted on (None
    when not recorded; see :mod:`bioaug.profile.identity`)."""
    prov = profiled.uns.get("bioaug", {}) if hasattr(profiled, "uns") else {}
    rec = prov.get("profile") if isinstance(prov, dict) else None
    features = rec.get("features") if isinstance(rec, dict) else None
    return dict(features) if isinstance(features, dict) else None


def _recipe(config: Any, reuse: Any
            ) -> tuple[ProfileConfig, list[S.Fitted | None] | None, dict[str, Any] | None]:
    """(recipe, saved transforms, identity of the features they were fitted on)."""
    if reuse is None:
        return as_profile_config(config), None, None
    if config is not None:
        raise DataError("give a recipe or earlier profiles to reuse, not both")
    recipe, saved = saved_transforms(reuse)
    return recipe, saved, fitted_features(reuse)


def profile(adata: Any, config: Any = None, *, rep: str | None = None, seed: int = 0,
            where: str | None = None, reuse: Any = None) -> Any:
    """Profiles of an AnnData made by ``bioaug embed`` (see the module docstring).

    Parameters
    ----------
    adata
        Cells (or wells) with features in ``obsm[rep]`` and metadata in ``obs``.
    config
        The recipe (:class:`ProfileConfig`, YAML path, step names or dict); None: the
        standard correction, chosen for the data (see :func:`profile_cells`).
    rep
        ``obsm`` key of the features (default: the recipe's ``rep``, or with ``reuse`` the
        key the earlier profiles were made from).
    seed
        Seed of the stochastic steps (0 … 2**32 - 1).
    where
        File the data came from (for error messages).
    reuse
        A profiles AnnData made earlier: its recipe and fitted transforms correct these
        (new) plates the same way (``config`` must then be None). The features must be
        those it was fitted on (layer, count, model): a DataError names what differs.

    Returns
    -------
    AnnData
        A new AnnData at the recipe's output level, the corrected profiles in ``obsm[rep]``
        and the uncorrected ones in ``obsm[rep + "_uncorrected"]``;
        ``uns["bioaug"]["corrected"]`` records the corrections its profiles carry.
        Profiles corrected already are refused unless the recipe has no steps
        (:mod:`bioaug.profile.corrected`).

    Examples
    --------
    Six cells in three wells of one plate, two wells of controls (``moa`` DMSO):

    >>> import anndata as ad
    >>> import numpy as np
    >>> import pandas as pd
    >>> obs = pd.DataFrame({"plate": "P1", "well": ["A01", "A01", "A02", "A02", "B01", "B01"],
    ...                     "moa": ["DMSO"] * 4 + ["tubulin"] * 2},
    ...                    index=[str(i) for i in range(6)])
    >>> cells = ad.AnnData(obs=obs)
    >>> cells.obsm["X_bioaug"] = np.array([[1, 0], [1, 2], [3, 2], [3, 4], [6, 1], [8, 1]],
    ...                                   dtype=np.float32)
    >>> from bioaug.profile import profile
    >>> wells = profile(cells, ["center"])
    >>> wells.obs["well"].tolist(), wells.obs["n_cells"].tolist()
    (['A01', 'A02', 'B01'], [2, 2, 2])
    >>> wells.obsm["X_bioaug"]
    array([[-1., -1.],
           [ 1.,  1.],
           [ 5., -1.]], dtype=float32)

    Centred once, the profiles are not corrected a second time:

    >>> profile(wells, ["center"])
    Traceback (most recent call last):
    ...
    bioaug.errors.DataError: obsm['X_bioaug'] holds profiles corrected already (center); ...
    """
    seed = check_seed(seed, "seed")
    config, saved, fitted_on = _recipe(config, reuse)
    rep = rep or config.rep
    if rep not in adata.obsm:
        keys = list(adata.obsm.keys())
        raise DataError(f"representation '{rep}' not found{did_you_mean(rep, keys)}; obsm "
                        f"holds: {', '.join(keys) or '(nothing)'}", where=where,
                        hint="choose one with --rep")
    features = feature_identity(adata, rep)
    if reuse is not None:
        check_same_features(fitted_on, features, where=where)
    refuse_second_correction(adata, rep, config.corrects(), where=where,
                             hint="profile the cells made by `bioaug embed` instead, or pass "
                                  "--steps none to aggregate without correcting")
    config = config.model_copy(update={"rep": rep})
    res = profile_cells(np.asarray(adata.obsm[rep]), adata.obs, config, seed=seed, where=where,
                        saved=saved)
    return _profiles_adata(res, adata, rep, config, features, reused=reuse is not None)


def _profiles_adata(res: Profiled, adata: Any, rep: str, config: ProfileConfig,
                    features: dict[str, Any], *, reused: bool) -> Any:
    """The profiles of ``res`` as an AnnData, with the provenance of ``adata`` extended."""
    import anndata as ad

    from bioaug.io import provenance

    obs = res.obs.copy()
    prefix = {"cell": "C", "well": "W", "treatment": "T"}[res.level]
    obs.index = [f"{prefix}{i}" for i in range(len(obs))]
    for c in obs.columns:
        if obs[c].dtype == object:
            obs[c] = as_categorical(obs[c])
    out = ad.AnnData(obs=obs)
    out.obsm[rep] = res.x.astype(np.float32)
    out.obsm[rep + UNCORRECTED] = res.x_uncorrected.astype(np.float32)
    prov = dict(adata.uns.get("bioaug", {})) if hasattr(adata, "uns") else {}
    used = res.config or config
    before = corrected_steps(adata, rep)
    prov[CORRECTED_KEY] = corrections_record(
        {rep: before + [r["step"] for r in res.steps], rep + UNCORRECTED: before})
    prov["profile"] = {
        "config": used.model_dump(mode="json"), "rep": rep, "level": res.level,
        "features": features, "steps_source": _steps_source(res, used, reused),
        **({"standard": res.standard.to_record()} if res.standard is not None else {}),
        "n_input_items": int(adata.n_obs), "n_profiles": len(obs),
        "n_controls": res.n_controls,
        "steps": [_uns_safe(r) for r in res.steps],
        "fitted": {f"{i}_{f.step}": f.to_uns() for i, f in res.fitted.items()},
        "provenance": provenance(stage="profile"),
    }
    out.uns["bioaug"] = _uns_safe(prov)
    return out


def _steps_source(res: Profiled, config: ProfileConfig, reused: bool) -> str:
    """Where the steps came from: ``standard``, ``reused``, ``given`` or ``none``."""
    if res.standard is not None:
        return "standard"
    if not config.step_specs():
        return "none"
    return "reused" if reused else "given"


def _uns_safe(obj: Any) -> Any:
    """None → "" and nested values made storable in ``.h5ad`` uns."""
    if obj is None:
        return ""
    if isinstance(obj, dict):
        return {str(k): _uns_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        if all(isinstance(v, (int, float, str, bool, np.generic)) for v in obj) and obj:
            return list(obj)
        return {str(i): _uns_safe(v) for i, v in enumerate(obj)}
    return obj


def steps_from_uns(adata: Any) -> list[dict[str, Any]] | None:
    """The step records of a profiled AnnData (None when it was not profiled).

    Parameters
    ----------
    adata
        Profiles made by :func:`profile` (or read back from its ``.h5ad``), or any AnnData.

    Returns
    -------
    list of dict or None
        One ``{"step", "level", "dims_in", "dims_out"}`` per step, in the order applied;
        None when ``adata`` carries no profiling record.

    Examples
    --------
    >>> import anndata as ad
    >>> import numpy as np
    >>> import pandas as pd
    >>> obs = pd.DataFrame({"plate": "P1", "well": ["A01", "A01", "A02", "A02", "B01", "B01"],
    ...                     "moa": ["DMSO"] * 4 + ["tubulin"] * 2},
    ...                    index=[str(i) for i in range(6)])
    >>> cells = ad.AnnData(obs=obs)
    >>> cells.obsm["X_bioaug"] = np.array([[1, 0], [1, 2], [3, 2], [3, 4], [6, 1], [8, 1]],
    ...                                   dtype=np.float32)
    >>> from bioaug.profile import profile, steps_from_uns
    >>> for step in steps_from_uns(profile(cells, ["center", "standardize"])):
    ...     print(step)
    {'step': 'center', 'level': 'well', 'dims_in': 2, 'dims_out': 2}
    {'step': 'standardize', 'level': 'well', 'dims_in': 2, 'dims_out': 2}
    >>> steps_from_uns(cells) is None
    True
    """
    prov = adata.uns.get("bioaug") if hasattr(adata, "uns") else None
    if not isinstance(prov, dict) or not isinstance(prov.get("profile"), dict):
        return None
    steps = prov["profile"].get("steps", {})
    items = steps.values() if isinstance(steps, dict) else steps
    return [{"step": str(s.get("step")), "level": str(s.get("level")),
             "dims_in": int(s.get("dims_in", 0)), "dims_out": int(s.get("dims_out", 0))}
            for s in sorted(items, key=lambda s: int(s.get("index", 0)))]
