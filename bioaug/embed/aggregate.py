"""Well and treatment profiles: cell embeddings aggregated the BBBC021 way.

Ljosa et al. (J. Biomol. Screen. 2013) profile a treatment in two steps: the **well
profile** is the mean of the cell features in a (plate, well); the **treatment profile**
is the median, per feature, of the well profiles of a (compound, concentration). Each level
is returned as its own AnnData, with the same ``obsm`` keys as the cell-level object.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from bioaug.errors import DataError, unknown_choice

WELL_KEYS: tuple[str, ...] = ("plate", "well")
TREATMENT_KEYS: tuple[str, ...] = ("compound", "concentration")
#: Columns carried from cells to wells (the first value of the well; checked constant).
WELL_CARRY: tuple[str, ...] = ("plate", "well", "batch", "replicate", "compound",
                               "concentration", "moa")


def group_codes(obs: pd.DataFrame, keys: Sequence[str]) -> np.ndarray:
    """Integer group code 0..G-1 of each row by ``keys`` (sorted groups)."""
    missing = [k for k in keys if k not in obs.columns]
    if missing:
        raise DataError(f"grouping needs columns {missing}; the table has "
                        f"{', '.join(map(str, obs.columns))}")
    return obs.groupby(list(keys), sort=True, observed=True, dropna=False).ngroup().to_numpy()


def group_mean(x: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Row means of ``x`` per group code, by one sparse product (fast for 10⁵–10⁶ rows)."""
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    ind = sp.csr_matrix((np.ones(len(codes), dtype=np.float64), (codes, np.arange(len(codes)))),
                        shape=(n_groups, len(codes)))
    counts = np.asarray(ind.sum(axis=1)).ravel()
    return (np.asarray(ind @ np.asarray(x, dtype=np.float64)) / counts[:, None]).astype(np.float32)


def group_median(x: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Element-wise median of the rows of ``x`` per group code."""
    x = np.asarray(x)
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(n_groups + 1))
    out = np.empty((n_groups, x.shape[1]), dtype=np.float32)
    for g in range(n_groups):
        out[g] = np.median(x[order[bounds[g]:bounds[g + 1]]], axis=0)
    return out


def as_categorical(values: pd.Series) -> pd.Series:
    """``values`` as a categorical of strings; missing values (NaN, None) stay missing, never
    a category named "nan" or "None"."""
    missing = values.isna().to_numpy()
    return values.astype(str).where(~missing).astype("category")


def _first_per_group(obs: pd.DataFrame, codes: np.ndarray, columns: Sequence[str]
                     ) -> pd.DataFrame:
    cols = [c for c in columns if c in obs.columns]
    df = obs[cols].copy()
    for c in cols:
        if isinstance(df[c].dtype, pd.CategoricalDtype):
            df[c] = df[c].astype(object)
    df["_g"] = codes
    return df.groupby("_g", sort=True).first().reset_index(drop=True)


def check_constant(obs: pd.DataFrame, codes: np.ndarray, column: str, level: str) -> None:
    """DataError when ``column`` takes several values inside one group."""
    if column not in obs.columns:
        return
    n_unique = obs[column].astype(str).groupby(codes).nunique()
    bad = n_unique[n_unique > 1]
    if len(bad):
        raise DataError(f"column '{column}' is not constant within a {level} "
                        f"({len(bad)} {level}(s) have several values)",
                        hint=f"a {level} must have a single {column}")


def well_profiles(x: np.ndarray, obs: pd.DataFrame, *, keys: Sequence[str] = WELL_KEYS,
                  carry: Sequence[str] = WELL_CARRY) -> tuple[np.ndarray, pd.DataFrame]:
    """Mean embedding per (plate, well); the table carries the well's metadata and n_cells."""
    codes = group_codes(obs, keys)
    for c in ("compound", "concentration"):
        check_constant(obs, codes, c, "well")
    prof = group_mean(x, codes)
    table = _first_per_group(obs, codes, list(dict.fromkeys([*keys, *carry])))
    table["n_cells"] = np.bincount(codes, minlength=len(table))
    return prof, table


def treatment_profiles(x_wells: np.ndarray, wells: pd.DataFrame, *,
                       keys: Sequence[str] = TREATMENT_KEYS, label: str | None = "moa",
                       batch: str = "batch") -> tuple[np.ndarray, pd.DataFrame]:
    """Median of well profiles per (compound, concentration).

    A treatment is profiled over *all* its wells. The table carries the label, the sorted
    batches its wells come from (``batches``, joined by ``;``), ``n_wells`` and ``n_cells``.
    """
    codes = group_codes(wells, keys)
    if label is not None:
        check_constant(wells, codes, label, "treatment")
    prof = group_median(x_wells, codes)
    table = _first_per_group(wells, codes, [*keys, *([label] if label else [])])
    if batch in wells.columns:
        table["batches"] = (wells[batch].astype(str).groupby(codes)
                            .agg(lambda s: ";".join(sorted(set(s)))).to_numpy())
    table["n_wells"] = np.bincount(codes, minlength=len(table))
    if "n_cells" in wells.columns:
        table["n_cells"] = wells["n_cells"].groupby(codes).sum().to_numpy()
    return prof, table


LEVELS = ("well", "treatment")
#: The columns each aggregation level needs in the cell table.
LEVEL_COLUMNS: dict[str, tuple[str, ...]] = {"well": WELL_KEYS,
                                             "treatment": (*WELL_KEYS, *TREATMENT_KEYS)}


def check_aggregatable(columns: Sequence[str] | pd.Index, level: str,
                       where: object | None = None) -> None:
    """DataError, before any work, when a table lacks the columns ``level`` groups by."""
    if level not in LEVELS:
        raise DataError(unknown_choice("aggregation level", level, LEVELS))
    have = {str(c) for c in columns}
    missing = [c for c in LEVEL_COLUMNS[level] if c not in have]
    if missing:
        raise DataError(f"cannot aggregate per {level}: the data has no "
                        f"{', '.join(repr(c) for c in missing)} column "
                        f"(it has {', '.join(sorted(have)) or 'no columns'})",
                        where=str(where) if where is not None else None,
                        hint=f"--aggregate {level} needs {', '.join(LEVEL_COLUMNS[level])} "
                        "in the store's obs.csv (plates and wells of a screen)")


def aggregate(adata: Any, level: str = "well", rep: str | Sequence[str] | None = None) -> Any:
    """Well (mean of cells) or treatment (median of well means) profiles as a new AnnData.

    Parameters
    ----------
    adata
        Cells, one row each, with ``plate`` and ``well`` in ``obs`` (and ``compound``,
        ``concentration`` for treatments) and features in ``obsm``.
    level
        ``"well"``: the mean of the cells of each (plate, well); ``"treatment"``: the
        median, per feature, of the well means of each (compound, concentration).
    rep
        The obsm key(s) to aggregate; default every ``X_bioaug*`` key.

    Returns
    -------
    AnnData
        The same obsm keys, ``obs`` with the group's metadata (categoricals) and counts
        (``n_cells``, ``n_wells``), and ``uns["bioaug"]`` extended with ``aggregate``.

    Examples
    --------
    Four cells in three wells, two of them treated alike:

    >>> import anndata as ad
    >>> import numpy as np
    >>> import pandas as pd
    >>> from bioaug.embed import aggregate
    >>> obs = pd.DataFrame({"plate": "P1", "well": ["A01", "A01", "A02", "A03"],
    ...                     "compound": ["taxol", "taxol", "taxol", "taxol"],
    ...                     "concentration": 1.0}, index=["0", "1", "2", "3"])
    >>> cells = ad.AnnData(obs=obs)
    >>> cells.obsm["X_bioaug"] = np.array([[0, 2], [2, 4], [5, 5], [9, 0]], dtype=np.float32)
    >>> wells = aggregate(cells, "well")
    >>> wells.obsm["X_bioaug"]
    array([[1., 3.],
           [5., 5.],
           [9., 0.]], dtype=float32)
    >>> wells.obs["n_cells"].tolist()
    [2, 1, 1]
    >>> treatments = aggregate(cells, "treatment")
    >>> treatments.obsm["X_bioaug"], treatments.obs["n_wells"].tolist()
    (array([[5., 3.]], dtype=float32), [3])
    """
    # 80+ lines only through its documentation (parameters and a running example), not its code.
    import anndata as ad

    check_aggregatable(adata.obs.columns, level)
    keys = ([rep] if isinstance(rep, str) else list(rep)) if rep is not None else \
        [k for k in adata.obsm if k.startswith("X_bioaug")]
    for k in keys:
        if k not in adata.obsm:
            raise DataError(f"representation '{k}' not found; obsm holds: "
                            f"{', '.join(adata.obsm.keys()) or '(nothing)'}")
    if not keys:
        raise DataError("nothing to aggregate: no X_bioaug* key in obsm")
    obs = adata.obs
    label = "moa" if "moa" in obs.columns else None
    reps = {}
    table = None
    for k in keys:
        xw, wells = well_profiles(np.asarray(adata.obsm[k]), obs)
        if level == "well":
            reps[k], table = xw, wells
        else:
            reps[k], table = treatment_profiles(xw, wells, label=label)
    assert table is not None
    prefix = "W" if level == "well" else "T"
    table.index = [f"{prefix}{i}" for i in range(len(table))]
    for c in table.columns:
        if c not in ("n_cells", "n_wells"):
            table[c] = as_categorical(table[c])
    out = ad.AnnData(obs=table)
    for k, v in reps.items():
        out.obsm[k] = v
    prov = dict(adata.uns.get("bioaug", {}))
    prov["aggregate"] = {"level": level, "rule": ("mean of cells per (plate, well)"
                                                  if level == "well" else
                                                  "median over wells of the well means per "
                                                  "(compound, concentration)"),
                         "n_input_items": int(adata.n_obs), "reps": keys}
    out.uns["bioaug"] = prov
    return out
