"""Join ``.h5ad`` shards of one embedding (``bioaug embed --shard I/N``) into one AnnData.

A cluster array job embeds a large screen as ``N`` shards, each a contiguous block of the
store's items (:func:`bioaug.embed.embed.shard_items`). :func:`merge_shards` checks that the
shards come from the same store and the same models with the same settings, that they are
disjoint and that together they cover every item, and returns the AnnData one full run
would have given (rows in item order; ``uns["bioaug"]["merged_shards"]`` lists the shards'
files and provenance).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bioaug.errors import ConfigError, DataError

#: provenance fields that may differ between shards of one embedding (paths on the
#: machines that ran them, times, versions of the environment).
_MAY_DIFFER = ("provenance", "shard", "store")
_MODEL_MAY_DIFFER = ("run", "checkpoint", "weights_file")


def _plain(value: Any) -> Any:
    """``uns`` as read back from HDF5 (arrays, numpy scalars) → comparable JSON values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _identity(info: dict[str, Any]) -> str:
    """What must be equal between shards of one embedding, as canonical JSON."""
    same = {k: v for k, v in info.items() if k not in _MAY_DIFFER}
    models = same.get("models")
    if isinstance(models, dict):
        same["models"] = {k: {f: v for f, v in m.items() if f not in _MODEL_MAY_DIFFER}
                          if isinstance(m, dict) else m for k, m in models.items()}
    return json.dumps(same, sort_keys=True, default=str)


#: identity keys → what they mean, in the messages of a refused merge.
_DESCRIPTIONS = {
    "store_obs_sha256": "the store's obs table (obs.csv: its rows, labels or metadata)",
    "store_header_sha256": "the store's header.json (another store, or one rebuilt)",
    "store_channels": "the store's channels", "store_image_size": "the store's image size",
    "n_items": "the store's number of items", "models": "the models or their settings",
    "layer": "the embedding layer",
    "kind": "the source of features (checkpoint, backbone, raw pixels)",
}


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """What differs between two shards' provenance, described (identity keys only)."""
    ja, jb = json.loads(_identity(a)), json.loads(_identity(b))
    keys = sorted(set(ja) | set(jb))
    return [f"{k} ({_DESCRIPTIONS[k]})" if k in _DESCRIPTIONS else k
            for k in keys if ja.get(k) != jb.get(k)]


def _obs_differences(a: Any, b: Any) -> list[str]:
    """What differs between two shards' obs tables beyond their rows: the columns, their
    types and the categories (a shard's categories are those of its whole store)."""
    import pandas as pd

    if list(a.columns) != list(b.columns):
        return [f"obs columns ({', '.join(map(str, b.columns))} against "
                f"{', '.join(map(str, a.columns))})"]
    out = []
    for col in a.columns:
        ta, tb = a[col].dtype, b[col].dtype
        both = isinstance(ta, pd.CategoricalDtype) and isinstance(tb, pd.CategoricalDtype)
        if both and list(ta.categories) != list(tb.categories):
            out.append(f"the values of obs column '{col}'")
        elif not both and ta != tb:
            out.append(f"the type of obs column '{col}' ({tb} against {ta})")
    return out


def _shard_info(adata: Any, source: str) -> tuple[dict[str, Any], dict[str, int]]:
    info = _plain(dict(adata.uns.get("bioaug", {})))
    if not info:
        raise DataError("not an embedding written by bioaug (no uns['bioaug'])", where=source)
    if "aggregate" in info:
        raise DataError("this file holds aggregated profiles; merge the cell-level shards",
                        where=source)
    shard = info.get("shard")
    if not isinstance(shard, dict) or not {"index", "count", "start", "stop"} <= set(shard):
        raise DataError("not a shard (written without --shard I/N)", where=source,
                        hint="merge the files written by `bioaug embed … --shard I/N`")
    return info, {k: int(shard[k]) for k in ("index", "count", "start", "stop")}


#: (provenance, shard position) of each shard, as :func:`_shard_info` reads them.
Parsed = list[tuple[dict[str, Any], dict[str, int]]]


def merge_shards(shards: Sequence[Any], sources: Sequence[str] | None = None) -> Any:
    """Join AnnData shards into the full embedding.

    Parameters
    ----------
    shards
        AnnData objects written by :func:`bioaug.embed.embed` with ``shard=(i, n)``, in any
        order.
    sources
        A name for each shard (its file), used in error messages and the provenance.

    Returns
    -------
    AnnData
        One row per item of the store, in item order, with the shards' ``obsm`` keys.

    Raises
    ------
    DataError
        A shard is not a shard; comes from another store, another version of the store's
        obs table, another model or setting; overlaps another; or shards are missing. The
        message names the two shards and what differs.

    Examples
    --------
    A store of five crops embedded as two shards, given in any order:

    >>> import tempfile
    >>> import numpy as np
    >>> import pandas as pd
    >>> import bioaug
    >>> from bioaug.data.store import write_store
    >>> from bioaug.embed import merge_shards
    >>> levels = np.array([0, 50, 100, 150, 200], dtype=np.uint8)
    >>> images = np.broadcast_to(levels[:, None, None, None], (5, 1, 8, 8))
    >>> store = write_store(f"{tempfile.mkdtemp()}/crops", images,
    ...                     pd.DataFrame({"plate": "P1", "well": list("ABCDE")}),
    ...                     channels=["DNA"])
    >>> shards = [bioaug.embed(data=store, raw=True, raw_size=1, shard=(i, 2), device="cpu")
    ...           for i in (1, 0)]
    >>> [s.n_obs for s in shards]
    [3, 2]
    >>> cells = merge_shards(shards, ["cells.1.h5ad", "cells.0.h5ad"])
    >>> cells.obs["well"].tolist()
    ['A', 'B', 'C', 'D', 'E']
    >>> (cells.obsm["X_bioaug"][:, 0] * 255).round().astype(int).tolist()
    [0, 50, 100, 150, 200]
    >>> merge_shards(shards[:1], ["cells.1.h5ad"])
    Traceback (most recent call last):
    ...
    bioaug.errors.DataError: shards 0/2 are missing (have 1 of 2)
    ...
    """
    if not shards:
        raise ConfigError("nothing to merge: give the shard files")
    names = (list(sources) if sources is not None
             else [f"input {k + 1}" for k in range(len(shards))])
    parsed = [_shard_info(a, name) for a, name in zip(shards, names, strict=True)]
    _check_same_embedding(shards, parsed, names)
    order = _check_coverage(shards, parsed, names)
    return _join(shards, parsed, names, order)


def _check_same_embedding(shards: Sequence[Any], parsed: Parsed, names: list[str]) -> None:
    """Every shard comes from the first one's store (header and obs table), models and
    settings, and holds the same obsm keys."""
    first_info, first_shard = parsed[0]
    for k in range(1, len(shards)):
        info, shard = parsed[k]
        diffs = _differences(first_info, info) + _obs_differences(shards[0].obs, shards[k].obs)
        if shard["count"] != first_shard["count"]:
            diffs.append(f"shard count ({shard['count']} against {first_shard['count']})")
        if diffs:
            raise DataError(f"not a shard of the same embedding as {names[0]}: differs in "
                            f"{'; '.join(diffs)}", where=names[k],
                            hint="merge shards of one store embedded with the same models "
                                 "and options")
    for a, name in zip(shards, names, strict=True):
        if list(a.obsm.keys()) != list(shards[0].obsm.keys()):
            raise DataError(f"holds {list(a.obsm.keys())} but {names[0]} holds "
                            f"{list(shards[0].obsm.keys())}", where=name)


def _check_coverage(shards: Sequence[Any], parsed: Parsed, names: list[str]) -> list[int]:
    """The shards' indices in item order, after checking that each shard is given once and
    that together they cover every item of the store, contiguously."""
    count = parsed[0][1]["count"]
    order = sorted(range(len(shards)), key=lambda k: parsed[k][1]["start"])
    seen: dict[int, str] = {}
    for k in order:
        idx = parsed[k][1]["index"]
        if idx in seen:
            raise DataError(f"shard {idx}/{count} is given twice ({seen[idx]} and {names[k]})",
                            hint="give each shard once")
        seen[idx] = names[k]
    missing = [f"{i}/{count}" for i in range(count) if i not in seen]
    if missing:
        raise DataError(f"shards {', '.join(missing)} are missing (have {len(seen)} of "
                        f"{count})", hint="embed the missing shards, then merge all of them")
    position = 0
    for k in order:
        sh = parsed[k][1]
        if sh["start"] != position or shards[k].n_obs != sh["stop"] - sh["start"]:
            raise DataError(f"shard {sh['index']}/{count} covers items {sh['start']}…"
                            f"{sh['stop'] - 1} with {shards[k].n_obs} rows; expected to start "
                            f"at item {position}", where=names[k],
                            hint="the shards overlap or were edited; embed them again")
        position = sh["stop"]
    n_items = int(parsed[0][0].get("n_items", 0))
    if position != n_items:
        raise DataError(f"the shards cover {position} items but the store has {n_items}")
    return order


def _join(shards: Sequence[Any], parsed: Parsed, names: list[str], order: list[int]) -> Any:
    """The shards' rows in item order as one AnnData, with the merged provenance."""
    import anndata as ad

    parts = [shards[k] for k in order]
    merged = ad.AnnData(obs=_concat_obs([p.obs for p in parts]))
    for key in shards[0].obsm:
        merged.obsm[key] = np.concatenate([np.asarray(p.obsm[key]) for p in parts], axis=0)
    info = dict(shards[order[0]].uns["bioaug"])
    info.pop("shard", None)
    info["merged_shards"] = {"count": parsed[0][1]["count"],
                             "files": [names[k] for k in order],
                             "provenance": [json.dumps(_plain(parsed[k][0].get("provenance")),
                                                       default=str) for k in order]}
    merged.uns["bioaug"] = info
    return merged


def _concat_obs(frames: list[Any]) -> Any:
    import pandas as pd

    obs = pd.concat(frames, axis=0)  # shards of one store share their categories
    for col in frames[0].columns:
        if isinstance(frames[0][col].dtype, pd.CategoricalDtype) and \
                not isinstance(obs[col].dtype, pd.CategoricalDtype):
            obs[col] = obs[col].astype("category")  # edited shards: the union, sorted
    return obs


def merge_files(paths: Sequence[str | os.PathLike]) -> Any:
    """Read the ``.h5ad`` shard files ``paths`` and :func:`merge_shards` them.

    Parameters
    ----------
    paths
        The shard files written by ``bioaug embed --shard I/N`` (or
        :func:`~bioaug.embed.write_h5ad` of :func:`bioaug.embed.embed` with ``shard``), in
        any order.

    Returns
    -------
    AnnData
        The full embedding, as :func:`merge_shards` returns it; its provenance lists the
        files.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> import pandas as pd
    >>> import bioaug
    >>> from bioaug.data.store import write_store
    >>> from bioaug.embed import merge_files, write_h5ad
    >>> tmp = tempfile.mkdtemp()
    >>> store = write_store(f"{tmp}/crops", np.zeros((4, 1, 8, 8), dtype=np.uint8),
    ...                     pd.DataFrame({"plate": "P1", "well": list("ABCD")}),
    ...                     channels=["DNA"])
    >>> files = [write_h5ad(bioaug.embed(data=store, raw=True, raw_size=2, shard=f"{i}/2",
    ...                                  device="cpu"), f"{tmp}/cells.{i}.h5ad")
    ...          for i in range(2)]
    >>> cells = merge_files(files)
    >>> cells.n_obs, cells.obsm["X_bioaug"].shape[1]
    (4, 4)
    >>> [Path(f).name for f in cells.uns["bioaug"]["merged_shards"]["files"]]
    ['cells.0.h5ad', 'cells.1.h5ad']
    """
    import anndata as ad

    shards = []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise DataError(f"no shard file at {path}")
        try:
            shards.append(ad.read_h5ad(path))
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"cannot read it as an .h5ad file ({exc})", where=path) from None
    return merge_shards(shards, [str(p) for p in paths])
