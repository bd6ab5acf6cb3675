"""Join crop stores prepared separately (plates as parallel jobs) into one store.

``bioaug data prepare … --shard I/N`` prepares the I-th of N contiguous blocks of plates
into its own store; :func:`merge_stores` joins such stores. They must agree on everything
that makes items comparable — channels (names and order), item size, pixel type, label
column, obs columns and every preparation setting but the plate list — and may not share
a plate. Each shard records its index and count (``"shard": [I, N]`` in its header); shards
are merged only as a complete set — all N of one count, each once, and no store that is not
a shard beside them — and are put in shard order, so the merged store equals one full
preparation item for item. Stores prepared without ``--shard`` keep the order given.

The merge is a store build like any other: written into ``OUT.partial`` one input at a
time (a killed merge resumes at the next input) and renamed to ``OUT`` only when
complete, so an interrupted merge never leaves a store that looks finished. Provenance
keeps each input's path, item count, plates, shard, header hash and provenance record.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bioaug.data.store import HEADER, Store, StoreWriter, check_out_name
from bioaug.errors import DataError
from bioaug.io import sha256_file
from bioaug.progress import progress

#: Config keys that may differ between the stores of one screen.
PER_SHARD_KEYS: frozenset[str] = frozenset({"plates", "shard"})


def _plates(store: Store) -> list[str]:
    cfg = store.header.get("config") or {}
    return [str(p) for p in (cfg.get("plates") or store.header.get("units") or [])]


def _describe(values: Any) -> str:
    return ", ".join(map(str, values)) if isinstance(values, list) else str(values)


def check_mergeable(stores: Sequence[Store]) -> None:
    """Raise a :class:`DataError` naming the first store that cannot join the first one."""
    ref = stores[0]
    ref_cfg = {k: v for k, v in (ref.header.get("config") or {}).items()
               if k not in PER_SHARD_KEYS}
    seen: dict[str, Path] = {p: ref.path for p in _plates(ref)}
    for s in stores[1:]:
        facts = [("channels", ref.channels, s.channels),
                 ("item size", list(ref.image_size), list(s.image_size)),
                 ("pixel type", str(ref.dtype), str(s.dtype)),
                 ("label column", ref.label_column, s.label_column),
                 ("obs columns", sorted(ref.obs.columns), sorted(s.obs.columns))]
        for what, a, b in facts:
            if a != b:
                raise DataError(f"cannot merge: its {what} ({_describe(b)}) do not match "
                                f"{ref.path}'s ({_describe(a)})", where=s.path,
                                hint="merge only stores prepared with the same options")
        cfg = {k: v for k, v in (s.header.get("config") or {}).items()
               if k not in PER_SHARD_KEYS}
        diff = sorted(k for k in set(cfg) | set(ref_cfg) if cfg.get(k) != ref_cfg.get(k))
        if diff:
            k = diff[0]
            raise DataError(f"cannot merge: prepared with {k}={cfg.get(k)!r} but {ref.path} "
                            f"with {k}={ref_cfg.get(k)!r}"
                            + (f" (and {len(diff) - 1} more setting(s))" if len(diff) > 1
                               else ""), where=s.path,
                            hint="merge only stores prepared with the same options")
        for p in _plates(s):
            if p in seen:
                raise DataError(f"cannot merge: plate {p} is in both this store and "
                                f"{seen[p]}", where=s.path,
                                hint="each plate must be prepared by exactly one shard")
            seen[p] = s.path


def shard_of(store: Store) -> tuple[int, int] | None:
    """The ``(I, N)`` a store was prepared as (``--shard I/N``); ``None`` for a whole one."""
    x = store.header.get("shard")
    if isinstance(x, list) and len(x) == 2 and all(isinstance(v, int) for v in x):
        return int(x[0]), int(x[1])
    return None


_SHARD_HINT = ("merge all N shards of one preparation (`prepare … --shard 0/N` … "
               "`--shard N-1/N`), or stores prepared without --shard")


def check_shards(stores: Sequence[Store]) -> int | None:
    """The shard count N when the stores are the shards of one preparation; ``None`` when
    none is a shard. A :class:`DataError` when only some are shards, their counts differ, a
    shard is given twice or shards are missing (named)."""
    shards = [shard_of(s) for s in stores]
    given = [(s, x) for s, x in zip(stores, shards, strict=True) if x is not None]
    if not given:
        return None
    (first, (i0, n)) = given[0]
    whole = [s for s, x in zip(stores, shards, strict=True) if x is None]
    if whole:
        raise DataError(f"cannot merge: {first.path} is shard {i0}/{n} but {whole[0].path} "
                        "is not a shard", hint=_SHARD_HINT)
    seen: dict[int, Path] = {}
    for s, (i, m) in given:
        if m != n:
            raise DataError(f"cannot merge: shard {i}/{m} is one of {m} shards but "
                            f"{first.path} is shard {i0}/{n}", where=s.path, hint=_SHARD_HINT)
        if i in seen:
            raise DataError(f"cannot merge: shard {i}/{n} is given twice ({seen[i]} and "
                            f"{s.path})", where=s.path, hint="give each shard once")
        seen[i] = s.path
    missing = [i for i in range(n) if i not in seen]
    if missing:
        raise DataError(f"cannot merge: shard{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(f'{i}/{n}' for i in missing)} "
                        f"{'are' if len(missing) > 1 else 'is'} missing (given "
                        f"{len(seen)} of {n}: {', '.join(f'{i}/{n}' for i in sorted(seen))})",
                        hint="prepare the missing shards with the same options, then merge "
                        "all of them")
    return n


def _order(stores: list[Store]) -> tuple[list[Store], dict[str, Any]]:
    """Shards in shard order (after :func:`check_shards`); other stores as given."""
    n = check_shards(stores)
    if n is None:
        return stores, {"ordered_by": "as given"}
    ordered = sorted(stores, key=lambda s: shard_of(s)[0])  # type: ignore[index]
    return ordered, {"ordered_by": "shard", "shards": n}


def _merge_normalization(stores: Sequence[Store]) -> dict[str, Any]:
    norm = dict(stores[0].header.get("normalization") or {})
    scaling = norm.get("scaling")
    if isinstance(scaling, dict) and "per_plate" in scaling:
        per_plate: dict[str, Any] = {}
        for s in stores:
            per_plate.update(((s.header.get("normalization") or {}).get("scaling") or {})
                             .get("per_plate") or {})
        norm["scaling"] = {**scaling, "per_plate": per_plate}
    return norm


def _merge_reports(stores: Sequence[Store]) -> dict[str, Any] | None:
    reports = [s.header.get("report") for s in stores]
    if not all(isinstance(r, dict) for r in reports):
        return None
    out: dict[str, Any] = {}
    for r in reports:
        for k, v in r.items():  # type: ignore[union-attr]
            if isinstance(v, bool) or v is None:
                out.setdefault(k, v)
            elif isinstance(v, (int, float)):
                out[k] = out.get(k, 0) + v
            elif isinstance(v, list):
                out[k] = [*out.get(k, []), *v]
            elif isinstance(v, dict):
                acc = dict(out.get(k, {}))
                for kk, vv in v.items():
                    acc[kk] = acc.get(kk, 0) + vv if isinstance(vv, (int, float)) else vv
                out[k] = acc
            else:
                out.setdefault(k, v)
    if "skipped_examples" in out:
        out["skipped_examples"] = out["skipped_examples"][:10]
    return out


def _check_inputs(inputs: Sequence[str | os.PathLike], out: str | os.PathLike) -> None:
    """At least one input, none given twice, and ``out`` neither one of them nor in one."""
    if not inputs:
        raise DataError("give the stores to merge")
    check_out_name(out)
    target = Path(out).resolve()
    for p in inputs:
        src = Path(p).resolve()
        if src == target or target in src.parents or src in target.parents:
            raise DataError(f"--out {out} is (or holds, or is inside) the input store {p}; "
                            "a merge never writes over its own input",
                            hint="choose a new --out")
    if len({Path(p).resolve() for p in inputs}) != len(inputs):
        raise DataError("a store is given twice", hint="list each store once")


def _copy_stores(stores: Sequence[Store], writer: StoreWriter, chunk: int) -> None:
    """Copy every store not yet done into ``writer``, one unit per store."""
    columns = list(stores[0].obs.columns)
    bar = progress(total=sum(len(s) for s in stores), desc="merge", unit="item")
    try:
        for k, s in enumerate(stores):
            unit = f"store-{k}"
            if unit in writer.done_units:
                bar.update(len(s))
                continue
            for start in range(0, len(s), chunk):
                stop = min(start + chunk, len(s))
                writer.add(s.read(slice(start, stop)), s.obs.iloc[start:stop][columns])
                bar.update(stop - start)
            writer.commit(unit)
    finally:
        bar.close()
        writer.close()


def merge_stores(inputs: Sequence[str | os.PathLike], out: str | os.PathLike, *,
                 overwrite: bool = False, chunk: int = 4096) -> Store:
    """Join stores into ``out`` (see the module docstring).

    Parameters
    ----------
    inputs
        Store directories (at least one): the shards of one preparation (all of them), or
        stores prepared without ``--shard``.
    out
        The merged store to write; never one of the inputs.
    overwrite
        Replace an existing store at ``out``.
    chunk
        Items copied at a time (memory stays bounded by one chunk).

    Returns
    -------
    Store
        The merged, opened store.

    Examples
    --------
    The two shards (one plate each) of a preparation, merged in plate order:

    >>> import tempfile
    >>> import numpy as np
    >>> import pandas as pd
    >>> from bioaug.data.crops import prepare_crops
    >>> from bioaug.data.merge import merge_stores
    >>> tmp = tempfile.mkdtemp()
    >>> np.save(f"{tmp}/cells.npy", np.arange(4 * 8 * 8, dtype=np.uint16).reshape(4, 1, 8, 8))
    >>> pd.DataFrame({"plate": ["P1", "P1", "P2", "P2"]}).to_csv(f"{tmp}/cells.csv", index=False)
    >>> shards = [prepare_crops(f"{tmp}/cells.npy", f"{tmp}/shard{i}", obs=f"{tmp}/cells.csv",
    ...                         channels=["DNA"], crop_size=8, shard=(i, 2)) for i in (1, 0)]
    >>> [s.obs["plate"].tolist() for s in shards]
    [['P2', 'P2'], ['P1', 'P1']]
    >>> store = merge_stores([s.path for s in shards], f"{tmp}/merged")
    >>> len(store), store.obs["plate"].tolist()
    (4, ['P1', 'P1', 'P2', 'P2'])
    """
    _check_inputs(inputs, out)
    stores = [Store.open(p) for p in inputs]
    check_mergeable(stores)
    stores, order = _order(stores)
    ref = stores[0]
    config = {k: v for k, v in (ref.header.get("config") or {}).items()
              if k not in PER_SHARD_KEYS}
    config.update({"plates": [p for s in stores for p in _plates(s)], "shard": None})
    writer = StoreWriter(out, channels=ref.channels, image_size=ref.image_size,
                         dtype=str(ref.dtype), config=config, overwrite=overwrite)
    _copy_stores(stores, writer, chunk)
    merged_from = [{"path": str(s.path), "items": len(s), "plates": _plates(s),
                    "shard": s.header.get("shard"),
                    "header_sha256": sha256_file(s.path / HEADER),
                    "provenance": s.header.get("provenance")} for s in stores]
    extra: dict[str, Any] = {"dataset": ref.header.get("dataset"), "shard": None,
                             "merge": order}
    report = _merge_reports(stores)
    if report is not None:
        extra["report"] = report
    if "columns" in ref.header:
        extra["columns"] = ref.header["columns"]
    return writer.finalize(label_column=ref.label_column,
                           normalization=_merge_normalization(stores), extra=extra,
                           provenance_extra={"merged_from": merged_from})


__all__ = ["PER_SHARD_KEYS", "check_mergeable", "check_shards", "merge_stores", "shard_of"]
