"""Correction steps of image-based profiles: pure maths, one registry.

Each step is *fitted* on the control profiles (DMSO wells or cells) of a group — a plate,
or every profile for ``scope="global"`` — and *applied* to every profile of that group.
With ``samples="all"`` (pycytominer's ``samples="all"``) the location-scale and sphere
steps are fitted on every profile of the group instead of its controls.

- ``center``: subtract the controls' mean;
- ``standardize``: subtract the controls' mean, divide by their standard deviation;
- ``robust``: subtract the controls' median, divide by their MAD × 1.4826 (robust z-score,
  as pycytominer's ``mad_robustize``);
- ``sphere``: whiten with the controls' covariance — ZCA (``W = U Λ^{-1/2} Uᵀ``, features
  keep their meaning) or PCA (``U_k Λ_k^{-1/2}``, the top ``k`` components). Per plate this
  is the typical variation normalisation (TVN) of Ando et al., "Improving phenotypic
  measurements in high-content imaging screens" (bioRxiv 161422, 2017);
- ``harmony``: Harmony integration (Korsunsky et al., Nat. Methods 2019) on a batch column,
  with harmonypy (optional extra ``bioaug[harmony]``); not fitted on controls;
- ``select``: drop features of (near-)zero variance, then features correlated above a
  threshold with a feature already kept (pycytominer's ``variance_threshold`` and
  ``correlation_threshold``), decided on every profile.

A fitted step is a :class:`Fitted`: plain arrays per group, saved in
``uns["bioaug"]["profile"]`` so that new plates can be corrected the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bioaug.errors import ConfigError, DataError

#: Scale of the median absolute deviation that makes it a standard deviation for normal data.
MAD_TO_SD = 1.4826


@dataclass
class Fitted:
    """A fitted step: per-group arrays (``groups[i]`` ↔ ``arrays[k][i]``), or global ones."""

    step: str
    params: dict[str, Any]
    groups: list[str]
    arrays: dict[str, np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)

    def to_uns(self) -> dict[str, Any]:
        """An ``.h5ad``-storable form (strings, numbers, arrays)."""
        return {"step": self.step, "params": {k: ("" if v is None else v)
                                              for k, v in self.params.items()},
                "groups": np.asarray(self.groups, dtype=str),
                "arrays": dict(self.arrays), "info": dict(self.info)}


def _groups(group_of: np.ndarray, scope: str) -> tuple[list[str], np.ndarray]:
    """(group names, group index of every row) for a per-plate or global step."""
    if scope == "global":
        return ["all"], np.zeros(len(group_of), dtype=np.int64)
    names, idx = np.unique(np.asarray(group_of).astype(str), return_inverse=True)
    return names.tolist(), idx


def _controls_of(g: int, idx: np.ndarray, controls: np.ndarray, name: str, step: str,
                 minimum: int, samples: str = "controls") -> np.ndarray:
    rows = np.flatnonzero((idx == g) & controls)
    if len(rows) < minimum:
        what = "control profile(s)" if samples == "controls" else "profile(s)"
        raise DataError(f"{step}: plate {name!r} has {len(rows)} {what}; the step needs at "
                        f"least {minimum}",
                        hint="check the control query (--control), or use scope global")
    return rows


def fit_location_scale(step: str, x: np.ndarray, group_of: np.ndarray, controls: np.ndarray,
                       *, scope: str, location: str, scale: str | None,
                       epsilon: float = 1e-6, samples: str = "controls") -> Fitted:
    """Shift (mean or median) and scale (std, MAD × 1.4826 or none) of the controls
    (``controls``: the rows to fit on, every row for ``samples="all"``)."""
    names, idx = _groups(group_of, scope)
    d = x.shape[1]
    shift = np.zeros((len(names), d))
    spread = np.ones((len(names), d))
    flat: dict[str, int] = {}
    for g, name in enumerate(names):
        c = x[_controls_of(g, idx, controls, name, step, 1 if scale is None else 2, samples)]
        c = c.astype(np.float64)
        shift[g] = c.mean(axis=0) if location == "mean" else np.median(c, axis=0)
        if scale == "std":
            s = c.std(axis=0)
        elif scale == "mad":
            s = MAD_TO_SD * np.median(np.abs(c - shift[g]), axis=0)
        else:
            continue
        small = s <= epsilon
        flat[name] = int(small.sum())
        spread[g] = np.where(small, 1.0, s)
    return Fitted(step, {"scope": scope, "samples": samples}, names,
                  {"shift": shift, "scale": spread},
                  {"constant_control_features": flat} if scale else {})


def apply_location_scale(fitted: Fitted, x: np.ndarray, group_of: np.ndarray) -> np.ndarray:
    """``(x - shift) / scale`` of each row's group (one pass per group, no gathered copies)."""
    idx = _lookup(fitted, group_of)
    out = np.empty(x.shape, dtype=np.float64)
    shift, scale = fitted.arrays["shift"], fitted.arrays["scale"]
    for g in np.unique(idx):
        rows = np.flatnonzero(idx == g)
        out[rows] = (x[rows] - shift[g]) / scale[g]
    return out


def _lookup(fitted: Fitted, group_of: np.ndarray) -> np.ndarray:
    if fitted.groups == ["all"]:
        return np.zeros(len(group_of), dtype=np.int64)
    pos = {g: i for i, g in enumerate(fitted.groups)}
    values = np.asarray(group_of).astype(str)
    unknown = sorted(set(values) - set(pos))
    if unknown:
        raise DataError(f"{fitted.step}: no fitted transform for plate(s) {unknown[:5]}",
                        hint="refit the correction on data that includes those plates")
    return np.array([pos[v] for v in values], dtype=np.int64)


def whitening(controls: np.ndarray, method: str, epsilon: float,
              n_components: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, whitening matrix W (d × k), eigenvalues) of control profiles.

    ``(x - mean) @ W`` has identity covariance on the controls (up to ``epsilon``).
    """
    c = np.asarray(controls, dtype=np.float64)
    mean = c.mean(axis=0)
    cov = np.cov(c - mean, rowvar=False).reshape(c.shape[1], c.shape[1])
    evals, evecs = np.linalg.eigh(cov)
    order = np.argsort(evals)[::-1]
    evals, evecs = np.clip(evals[order], 0.0, None), evecs[:, order]
    evecs *= np.where(evecs[np.abs(evecs).argmax(axis=0), np.arange(evecs.shape[1])] < 0,
                      -1.0, 1.0)
    if method == "pca":
        k = n_components or int(np.sum(evals > epsilon * max(evals.max(), 1e-300)))
        k = max(1, min(k, len(evals)))
        w = evecs[:, :k] / np.sqrt(evals[:k] + epsilon)
    else:
        w = (evecs / np.sqrt(evals + epsilon)) @ evecs.T
    return mean, w, evals


def fit_sphere(x: np.ndarray, group_of: np.ndarray, controls: np.ndarray, *, scope: str,
               method: str, epsilon: float, n_components: int | None,
               samples: str = "controls") -> Fitted:
    """ZCA / PCA whitening fitted on the controls, per plate (TVN) or globally."""
    if method == "pca" and scope == "plate":
        raise ConfigError("sphere: PCA whitening per plate gives every plate its own axes; "
                          "use method zca per plate, or scope global with pca")
    names, idx = _groups(group_of, scope)
    d = x.shape[1]
    means, mats, ranks = [], [], {}
    for g, name in enumerate(names):
        rows = _controls_of(g, idx, controls, name, "sphere", 2, samples)
        if method == "zca" and len(rows) <= d:
            where = "all plates together" if scope == "global" else f"plate {name!r}"
            raise DataError(
                f"sphere: {where} has {len(rows)} control profiles for {d} features; ZCA "
                "whitening needs more controls than features",
                hint=("use sphere scope global (all plates' controls), " if scope == "plate"
                      else "") + "method pca (keeps at most controls − 1 components), "
                "correct at the cell level (more control profiles), or select features first")
        mean, w, evals = whitening(x[rows], method, epsilon, n_components)
        means.append(mean)
        mats.append(w)
        ranks[name] = int(np.sum(evals > epsilon))
    return Fitted("sphere", {"scope": scope, "method": method, "epsilon": epsilon,
                             "n_components": n_components, "samples": samples}, names,
                  {"mean": np.stack(means), "matrix": np.stack(mats)},
                  {"control_rank": ranks, "output_dims": int(mats[0].shape[1])})


def apply_sphere(fitted: Fitted, x: np.ndarray, group_of: np.ndarray) -> np.ndarray:
    idx = _lookup(fitted, group_of)
    mats, means = fitted.arrays["matrix"], fitted.arrays["mean"]
    out = np.empty((len(x), mats.shape[2]))
    for g in np.unique(idx):
        rows = idx == g
        out[rows] = (x[rows] - means[g]) @ mats[g]
    return out


def select_features(x: np.ndarray, *, variance_threshold: float | None,
                    correlation_threshold: float | None) -> tuple[np.ndarray, dict[str, Any]]:
    """Indices of the features kept, and counts of those dropped by each rule."""
    x = np.asarray(x, dtype=np.float64)
    keep = np.arange(x.shape[1])
    info: dict[str, Any] = {"n_input": int(x.shape[1])}
    if variance_threshold is not None:
        var = x.var(axis=0)
        keep = keep[var[keep] > variance_threshold]
        info["dropped_variance"] = int(x.shape[1] - len(keep))
    if correlation_threshold is not None and len(keep) > 1:
        corr = np.abs(np.corrcoef(x[:, keep], rowvar=False))
        corr = np.nan_to_num(corr, nan=0.0)
        chosen: list[int] = []
        for j in range(len(keep)):
            if not chosen or corr[j, chosen].max() <= correlation_threshold:
                chosen.append(j)
        info["dropped_correlation"] = int(len(keep) - len(chosen))
        keep = keep[chosen]
    if len(keep) == 0:
        raise DataError("select: no feature is left after feature selection",
                        hint="lower the variance threshold or raise the correlation threshold")
    info["n_kept"] = len(keep)
    return keep, info


def run_harmony(x: np.ndarray, batches: np.ndarray, *, seed: int, max_iter: int) -> np.ndarray:
    """Harmony-corrected profiles (harmonypy), batches from one column."""
    try:
        import harmonypy
    except ImportError:
        raise ConfigError("the harmony step needs harmonypy, an optional extra",
                          hint="pip install 'bioaug[harmony]'") from None
    import pandas as pd

    meta = pd.DataFrame({"batch": np.asarray(batches).astype(str)})
    if meta["batch"].nunique() < 2:
        raise DataError("harmony: the batch column has a single value; nothing to integrate")
    ho = harmonypy.run_harmony(np.asarray(x, dtype=np.float64), meta, ["batch"],
                               max_iter_harmony=max_iter, random_state=seed, verbose=False)
    z = np.asarray(ho.Z_corr)
    return z.T if z.shape[0] != len(x) else z


@dataclass(frozen=True)
class StepKind:
    """A registered step: one-line description and whether it is fitted on controls."""

    description: str
    uses_controls: bool
    per_plate: bool


#: step name → what it is (the config models in :mod:`bioaug.profile.config` give params).
STEPS: dict[str, StepKind] = {
    "center": StepKind("subtract the controls' mean", True, True),
    "standardize": StepKind("z-score against the controls (mean, std)", True, True),
    "robust": StepKind("robust z-score against the controls (median, MAD × 1.4826)", True,
                       True),
    "sphere": StepKind("ZCA / PCA whitening on the controls (per plate = TVN)", True, True),
    "harmony": StepKind("Harmony integration on a batch column (harmonypy)", False, False),
    "select": StepKind("drop low-variance and highly correlated features", False, False),
}

#: (location, scale) of the location-scale steps.
LOCATION_SCALE: dict[str, tuple[str, str | None]] = {
    "center": ("mean", None), "standardize": ("mean", "std"), "robust": ("median", "mad")}

Applier = Callable[[Fitted, np.ndarray, np.ndarray], np.ndarray]
