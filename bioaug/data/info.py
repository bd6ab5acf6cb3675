"""Summaries behind ``bioaug data info``: a store, or a BBBC021 folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bioaug.data import bbbc021
from bioaug.data.store import IMAGES, PROGRESS, Store
from bioaug.errors import DataError


def info_bbbc021(root: str | os.PathLike, examples: int = 5) -> dict[str, Any]:
    """Fields, plates, weeks, treatments, MoA classes and image files present/missing."""
    return bbbc021.info(root, examples=examples)


def info_store(path: str | os.PathLike) -> dict[str, Any]:
    """A store's summary, or a clear error for something that is not a complete store."""
    p = Path(path)
    partial = p.with_name(p.name + ".partial")
    if not p.exists() and partial.is_dir() and (partial / PROGRESS).is_file():
        import json

        prog = json.loads((partial / PROGRESS).read_text(encoding="utf-8"))
        raise DataError(f"the store is half-written: {len(prog.get('units', []))} unit(s), "
                        f"{prog.get('items', 0)} items so far", where=partial,
                        hint="run the command that built it again to resume")
    if p.is_dir() and (p / PROGRESS).is_file() and not (p / "header.json").exists():
        raise DataError("the store is half-written (no header yet)", where=p,
                        hint="run the command that built it again to resume")
    if p.is_dir() and not (p / IMAGES).exists() and not (p / "header.json").exists():
        hint = None
        if (p / bbbc021.IMAGE_CSV).exists():
            hint = f"this looks like a BBBC021 folder: `bioaug data info bbbc021 --root {p}`"
        raise DataError(f"{p} is not a bioaug store (no header.json, no {IMAGES})", hint=hint)
    store = Store.open(p)
    out = store.summary()
    out["size_mb"] = round((p / IMAGES).stat().st_size / 2**20, 1)
    for key in ("dataset", "report", "splits"):
        if key in store.header:
            out[key] = store.header[key]
    obs = store.obs
    for col in ("plate", "batch", "compound", "split"):
        if col in obs.columns:
            out[f"n_{col}"] = int(obs[col].nunique())
    return out
