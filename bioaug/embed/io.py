"""Writing AnnData files atomically, with ``uns`` made writable by h5py."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from bioaug.errors import ConfigError
from bioaug.io import atomic_path, ensure_free_space

#: The suffix of every AnnData file bioaug writes (HDF5, anndata's ``.h5ad`` layout).
H5AD_SUFFIX = ".h5ad"


def check_h5ad_path(path: str | os.PathLike, flag: str = "--out") -> Path:
    """``path`` as a :class:`Path` when it ends in ``.h5ad``; ConfigError otherwise (an
    AnnData is written as HDF5, whatever the name says, so the name must say so)."""
    target = Path(path)
    if target.suffix.lower() != H5AD_SUFFIX:
        raise ConfigError(f"{flag} {target}: an AnnData file is written as HDF5 and its name "
                          f"must end in {H5AD_SUFFIX}, not "
                          f"{target.suffix or '(no suffix)'}",
                          hint=f"e.g. {flag} {target.with_suffix(H5AD_SUFFIX).name}; for a "
                               "Parquet or CSV table, run `bioaug export` on the .h5ad")
    return target


def sanitize_uns(value: Any) -> Any:
    """A copy of ``value`` that anndata's h5py writer accepts.

    ``None`` becomes ``""`` (HDF5 has no null), tuples and sets become lists, paths become
    strings, lists of strings / numbers become arrays, and lists of mixed or nested values
    are stored as their JSON text.
    """
    if value is None:
        return ""
    if isinstance(value, dict):
        return {str(k): sanitize_uns(v) for k, v in value.items()}
    if isinstance(value, str):
        return str(value)  # plain str: subclasses (e.g. torch's version string) do not write
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, (np.generic, np.ndarray)):
        return value
    if isinstance(value, os.PathLike):
        return str(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else list(value)
        if not items:
            return np.array([], dtype=str)
        if all(isinstance(v, str) for v in items):
            return np.array([str(v) for v in items], dtype=object)
        if all(isinstance(v, (bool, np.bool_)) for v in items):
            return np.array(items, dtype=bool)
        if all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
               for v in items):
            return np.array(items)
        return json.dumps(items, default=str)
    return str(value)


def _estimated_bytes(adata: Any) -> int:
    """A generous estimate of an AnnData's size on disk (arrays plus the table)."""
    arrays = sum(int(getattr(v, "nbytes", 0)) for v in adata.obsm.values())
    if adata.X is not None:
        arrays += int(getattr(adata.X, "nbytes", 0))
    table = int(adata.obs.memory_usage(deep=True).sum())
    return int(1.5 * (arrays + table)) + (64 << 10)


def write_h5ad(adata: Any, path: str | os.PathLike) -> Path:
    """Write ``adata`` to ``path`` (``….h5ad``) atomically (temp file + rename).

    ``uns`` is sanitised first (see :func:`sanitize_uns`) so provenance with ``None`` or
    nested lists does not make h5py fail half-way.

    Parameters
    ----------
    adata
        The AnnData to write (its ``uns`` is replaced by the sanitised copy).
    path
        The file; its name must end in ``.h5ad`` (a ConfigError otherwise). Free disk
        space is checked first.

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
    >>> from bioaug.embed import write_h5ad
    >>> cells = ad.AnnData(obs=pd.DataFrame(index=["0", "1", "2"]))
    >>> cells.obsm["X_bioaug"] = np.eye(3, dtype=np.float32)
    >>> cells.uns["bioaug"] = {"layer": None, "shape": (3, 3)}
    >>> path = write_h5ad(cells, f"{tempfile.mkdtemp()}/cells.h5ad")
    >>> back = ad.read_h5ad(path)
    >>> back.obsm["X_bioaug"].shape, back.uns["bioaug"]["layer"], back.uns["bioaug"]["shape"]
    ((3, 3), '', array([3, 3]))
    >>> write_h5ad(cells, f"{tempfile.mkdtemp()}/cells.csv")
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: path .../cells.csv: an AnnData file is written as HDF5 and its name must end in .h5ad, not .csv
    ...
    """
    target = check_h5ad_path(path, "path")
    adata.uns = sanitize_uns(dict(adata.uns))
    # HDF5 cannot fail cleanly half-way through a file: check the space first
    ensure_free_space(target.parent, _estimated_bytes(adata), f"writing {target}")
    with atomic_path(target, suffix=".h5ad") as tmp:
        adata.write_h5ad(tmp)
    return target
