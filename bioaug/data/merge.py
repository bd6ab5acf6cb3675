"""Join crop stores prepared separately (plates as parallel jobs) into one store.

``bioaug data prepare … --shard I/N`` prepares the I-th of N contiguous blocks of plates
into its own store; :func:`merge_stores` joins such stores. They must agree on everything
that makes items comparable — channels (names and order), item size, pixel type, label
column, obs columns and every preparation setting but the plate list — and may not share
a plate. Stores that all carry a shard of the same N are put in shard order, so the merged
store equals one full preparation item for item; others keep the order given.

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

from bioaug.data.store import HEADER, Store, StoreWriter
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


def _order(stores: list[Store]) -> tuple[list[Store], dict[str, Any]]:
    shards = [s.header.get("shard") for s in stores]
    info: dict[str, Any] = {"ordered_by": "as given"}
    if all(isinstance(x, list) and len(x) == 2 for x in shards) and \
            len({x[1] for x in shards}) == 1:  # type: ignore[index]
        n = int(shards[0][1])  # type: ignore[index]
        idx = [int(x[0]) for x in shards]  # type: ignore[index]
        if len(set(idx)) != len(idx):
            dup = next(i for i in idx if idx.count(i) > 1)
            raise DataError(f"cannot merge: shard {dup}/{n} is given twice",
                            where=stores[idx.index(dup)].path)
        stores = [s for _, s in sorted(zip(idx, stores, strict=True), key=lambda t: t[0])]
        info = {"ordered_by": "shard", "shards": n,
                "shards_missing": [i for i in range(n) if i not in idx]}
    return stores, info


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


def merge_stores(inputs: Sequence[str | os.PathLike], out: str | os.PathLike, *,
                 overwrite: bool = False, chunk: int = 4096) -> Store:
    """Join stores into ``out`` (see the module docstring).

    Parameters
    ----------
    inputs
        Store directories (at least one), e.g. the shards of one preparation.
    out
        The merged store to write; never one of the inputs.
    overwrite
        Replace an existing store at ``out``.
    chunk
        Items copied at a time (memory stays bounded by one chunk).

    Returns
    -------
    The merged, opened store.
    """
    if not inputs:
        raise DataError("give the stores to merge")
    target = Path(out).resolve()
    for p in inputs:
        src = Path(p).resolve()
        if src == target or target in src.parents or src in target.parents:
            raise DataError(f"--out {out} is (or holds, or is inside) the input store {p}; "
                            "a merge never writes over its own input",
                            hint="choose a new --out")
    if len({Path(p).resolve() for p in inputs}) != len(inputs):
        raise DataError("a store is given twice", hint="list each store once")
    stores = [Store.open(p) for p in inputs]
    check_mergeable(stores)
    stores, order = _order(stores)
    ref = stores[0]
    config = {k: v for k, v in (ref.header.get("config") or {}).items()
              if k not in PER_SHARD_KEYS}
    plates = [p for s in stores for p in _plates(s)]
    config.update({"plates": plates, "shard": None})
    writer = StoreWriter(out, channels=ref.channels, image_size=ref.image_size,
                         dtype=str(ref.dtype), config=config, overwrite=overwrite)
    columns = list(ref.obs.columns)
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
    merged_from = [{"path": str(s.path), "items": len(s), "plates": _plates(s),
                    "shard": s.header.get("shard"),
                    "header_sha256": sha256_file(s.path / HEADER),
                    "provenance": s.header.get("provenance")} for s in stores]
    extra: dict[str, Any] = {"dataset": ref.header.get("dataset"), "shard": None,
                             "merge": order}
    report = _merge_reports(stores)
    if report is not None:
        extra["report"] = report
    for key in ("columns",):
        if key in ref.header:
            extra[key] = ref.header[key]
    return writer.finalize(label_column=ref.label_column,
                           normalization=_merge_normalization(stores), extra=extra,
                           provenance_extra={"merged_from": merged_from})


__all__ = ["PER_SHARD_KEYS", "check_mergeable", "merge_stores"]
