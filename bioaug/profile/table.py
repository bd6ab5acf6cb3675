"""Profiles as flat tables: ``Metadata_*`` columns plus feature columns (pycytominer's layout).

:func:`write_table` turns a profiles ``.h5ad`` into a Parquet or CSV table that
pycytominer and copairs read; :func:`read_table` reads such a table (made by bioaug, or by
CellProfiler + pycytominer) back into an AnnData, so the same evaluation scores both.
Metadata columns lose their ``Metadata_`` prefix and are lower-cased on the way in
(``Metadata_Plate`` → ``plate``); every other column must be a numeric feature. A table of
corrected profiles says so in a ``Metadata_bioaug_corrected`` column, so that reading it
back keeps them from being corrected a second time (:mod:`bioaug.profile.corrected`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bioaug.errors import ConfigError, DataError, did_you_mean
from bioaug.profile.corrected import (
    CORRECTED_KEY,
    SEPARATOR,
    TABLE_COLUMN,
    corrected_steps,
    corrections_record,
    steps_of_column,
)

METADATA_PREFIX = "Metadata_"
#: table format → the file suffixes that mean it.
FORMATS: dict[str, tuple[str, ...]] = {"parquet": (".parquet", ".pq"), "csv": (".csv",)}


def format_of(path: str | os.PathLike, fmt: str | None = None) -> str:
    """The table format named, or the one the file suffix says; a format named must agree
    with the suffix (a ``.parquet`` name never holds CSV)."""
    suffix = Path(path).suffix.lower()
    if fmt is not None:
        if fmt not in FORMATS:
            raise ConfigError(f"unknown table format '{fmt}'{did_you_mean(fmt, FORMATS)}; "
                              f"formats: {', '.join(FORMATS)}")
        if suffix not in FORMATS[fmt]:
            raise ConfigError(f"{path}: a {fmt} table's name ends in "
                              f"{' or '.join(FORMATS[fmt])}, not {suffix or '(no suffix)'}",
                              hint="rename it, or leave out the format to take it from the "
                                   "suffix")
        return fmt
    for name, suffixes in FORMATS.items():
        if suffix in suffixes:
            return name
    raise ConfigError(f"cannot tell the table format of {path} from its suffix",
                      hint="use a .parquet or .csv name, or --format")


def to_frame(adata: Any, rep: str = "X_bioaug") -> pd.DataFrame:
    """``Metadata_<obs column>`` columns then one column per feature (``<rep>_<i>``); when
    the features are corrected profiles, a :data:`~bioaug.profile.corrected.TABLE_COLUMN`
    column names the corrections."""
    if rep not in adata.obsm:
        keys = list(adata.obsm.keys())
        raise DataError(f"representation '{rep}' not found{did_you_mean(rep, keys)}; obsm "
                        f"holds: {', '.join(keys) or '(nothing)'}", hint="choose one with --rep")
    x = np.asarray(adata.obsm[rep], dtype=np.float32)
    meta = pd.DataFrame({f"{METADATA_PREFIX}{c}": _column(adata.obs[c])
                         for c in adata.obs.columns}).reset_index(drop=True)
    steps = corrected_steps(adata, rep)
    if steps:
        meta[TABLE_COLUMN] = SEPARATOR.join(steps)
    feats = pd.DataFrame(x, columns=[f"{rep}_{i}" for i in range(x.shape[1])])
    return pd.concat([meta, feats], axis=1)


def _column(values: pd.Series) -> pd.Series:
    """A metadata column as written: numbers as they are, anything else as text, missing
    values missing (an empty CSV cell, a Parquet null), never the text "nan" or "None"."""
    if pd.api.types.is_numeric_dtype(values):
        return values
    missing = values.isna().to_numpy()
    return values.astype(str).astype(object).where(~missing, None)


def write_table(adata: Any, path: str | os.PathLike, fmt: str | None = None,
                rep: str = "X_bioaug") -> Path:
    """Write profiles as a Parquet or CSV table (atomically).

    Parameters
    ----------
    adata
        Profiles (or cells): ``obs`` becomes the ``Metadata_*`` columns, ``obsm[rep]`` the
        feature columns ``<rep>_0``, ``<rep>_1`` ….
    path
        The table file.
    fmt
        ``"parquet"`` (needs pyarrow) or ``"csv"``; default: from the suffix of ``path``,
        with which a format named must agree.
    rep
        The obsm key of the features.

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> import tempfile
    >>> import anndata as ad
    >>> import numpy as np
    >>> import pandas as pd
    >>> from bioaug.profile import write_table
    >>> wells = ad.AnnData(obs=pd.DataFrame({"plate": ["P1", "P1"], "well": ["A01", "B02"]},
    ...                                     index=["W0", "W1"]))
    >>> wells.obsm["X_bioaug"] = np.array([[0.5, -1.0], [2.0, 0.25]], dtype=np.float32)
    >>> path = write_table(wells, f"{tempfile.mkdtemp()}/wells.csv")
    >>> print(path.read_text(), end="")
    Metadata_plate,Metadata_well,X_bioaug_0,X_bioaug_1
    P1,A01,0.5,-1.0
    P1,B02,2.0,0.25
    """
    from bioaug.io import atomic_path

    fmt = format_of(path, fmt)
    frame = to_frame(adata, rep)
    if fmt == "parquet":
        _need_parquet()
    with atomic_path(path) as tmp:
        if fmt == "parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
    return Path(path)


def _need_parquet() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ConfigError("Parquet tables need pyarrow, an optional extra",
                          hint="pip install 'bioaug[parquet]', or use --format csv") from None


def from_frame(frame: pd.DataFrame, rep: str = "X_bioaug", where: str | None = None) -> Any:
    """An AnnData from a ``Metadata_*`` + features table (a
    :data:`~bioaug.profile.corrected.TABLE_COLUMN` column becomes the record of the
    corrections of its features, ``uns["bioaug"]["corrected"]``)."""
    import anndata as ad

    marks = [c for c in frame.columns if str(c).lower() == TABLE_COLUMN.lower()]
    steps = steps_of_column(frame[marks[0]], where) if marks else []
    frame = frame.drop(columns=marks)
    meta_cols = [c for c in frame.columns if str(c).startswith(METADATA_PREFIX)]
    if not meta_cols:
        raise DataError("the table has no Metadata_* columns (pycytominer layout: "
                        "Metadata_Plate, Metadata_Well, … then feature columns)", where=where)
    feat_cols = [c for c in frame.columns if c not in meta_cols]
    if not feat_cols:
        raise DataError("the table has no feature columns (only Metadata_* columns)",
                        where=where)
    bad = [str(c) for c in feat_cols if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        raise DataError(f"feature column(s) are not numeric: {', '.join(bad[:5])}"
                        + (" …" if len(bad) > 5 else ""), where=where,
                        hint="prefix metadata columns with Metadata_")
    x = frame[feat_cols].to_numpy(dtype=np.float64)
    nonfinite = ~np.isfinite(x).all(axis=1)
    if nonfinite.any():
        raise DataError(f"features have NaN or infinite values in {int(nonfinite.sum())} of "
                        f"{len(x)} rows (first row: {int(np.flatnonzero(nonfinite)[0])})",
                        where=where)
    names = [str(c)[len(METADATA_PREFIX):].lower() for c in meta_cols]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(f"Metadata columns collide once lower-cased: {dup}", where=where)
    obs = frame[meta_cols].copy()
    obs.columns = names
    obs.index = [str(i) for i in range(len(obs))]
    out = ad.AnnData(obs=obs)
    out.obsm[rep] = x.astype(np.float32)
    out.uns["bioaug"] = {"kind": "table", "features": [str(c) for c in feat_cols][:10_000],
                         CORRECTED_KEY: corrections_record({rep: steps})}
    return out


def read_table(path: str | os.PathLike, fmt: str | None = None, rep: str = "X_bioaug") -> Any:
    """Read a Parquet / CSV profile table into an AnnData (features in ``obsm[rep]``).

    Parameters
    ----------
    path
        A table in pycytominer's layout: ``Metadata_*`` columns (their prefix dropped and
        lower-cased on the way in) and numeric feature columns.
    fmt
        ``"parquet"`` or ``"csv"``; default: from the suffix of ``path``.
    rep
        The obsm key the features are stored under.

    Returns
    -------
    AnnData
        ``obs`` the metadata, ``obsm[rep]`` the features (float32).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from bioaug.profile import read_table
    >>> path = Path(tempfile.mkdtemp()) / "profiles.csv"
    >>> _ = path.write_text("Metadata_Plate,Metadata_Well,f1,f2\\nP1,A01,0.5,1\\nP1,A02,2,3\\n")
    >>> profiles = read_table(path)
    >>> profiles.obs.columns.tolist(), profiles.obsm["X_bioaug"].tolist()
    (['plate', 'well'], [[0.5, 1.0], [2.0, 3.0]])
    """
    p = Path(path)
    fmt = format_of(p, fmt)
    if not p.is_file():
        raise DataError(f"no profile table at {p}")
    if fmt == "parquet":
        _need_parquet()
    try:
        frame = pd.read_parquet(p) if fmt == "parquet" else pd.read_csv(p)
    except Exception as exc:  # pyarrow / the csv parser raise many types for a bad file
        raise DataError(f"cannot read {p} as a {fmt} table: {exc}") from None
    return from_frame(frame, rep, where=str(p))
