"""The one on-disk format every stage reads: a crop store.

A store is a directory::

    STORE/
      header.json    format, version, shape [N, C, H, W], dtype, channel names,
                     normalisation, label column, provenance, "complete": true
      images.raw     the image array, C-order, no header: np.memmap(dtype, shape)
      obs.csv        one row per item (labels and metadata), same order as images

Reads are random access through a memory map: nothing is loaded into RAM until indexed.

Writes go through :class:`StoreWriter` into ``STORE.partial/``. Work is committed in
*units* (a plate, a class, a chunk): :meth:`StoreWriter.commit` flushes the images and
rows of a unit to disk and records it in ``progress.json``. A build that is killed and
started again truncates whatever was written after the last commit and skips the units
already done, so resuming never duplicates an item. :meth:`StoreWriter.finalize` writes
the header and renames ``STORE.partial`` to ``STORE``: a directory named ``STORE`` is
always complete.

Names ending in ``.partial`` are therefore never outputs (:func:`check_out_name`), and a
scratch folder is deleted only when it is recognisably one (:func:`clear_partial`): a
folder holding a complete store (its ``header.json``) is never deleted, whatever its name.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bioaug.errors import ConfigError, DataError, validation_error
from bioaug.io import atomic_write_json, provenance

FORMAT = "bioaug-store"
VERSION = 1
HEADER = "header.json"
IMAGES = "images.raw"
OBS = "obs.csv"
PROGRESS = "progress.json"
#: Suffix of the scratch folder an output is written in until it is complete.
PARTIAL_SUFFIX = ".partial"
#: File that marks a scratch folder made by :func:`begin_partial` (one bioaug may delete).
PARTIAL_MARKER = ".bioaug-partial"
#: Everything a finished store directory holds; anything else was put there by someone else.
STORE_FILES = frozenset({HEADER, IMAGES, OBS})
DTYPES = ("uint8", "uint16", "float16", "float32")
#: Axis order of ``images.raw``: items, channels, height, width.
LAYOUT = "NCHW"
#: Scale that maps each stored dtype to float in [0, 1].
DTYPE_SCALE = {"uint8": 255.0, "uint16": 65535.0, "float16": 1.0, "float32": 1.0}


def to_float(array: np.ndarray) -> np.ndarray:
    """Convert stored pixels to float32 in [0, 1] (uint8 / 255, uint16 / 65535)."""
    scale = DTYPE_SCALE.get(str(array.dtype))
    if scale is None:
        raise DataError(f"unsupported image dtype {array.dtype}; stores hold {', '.join(DTYPES)}")
    out = array.astype(np.float32, copy=True)
    if scale != 1.0:
        out /= scale
    return out


#: Items read at a time when a float store is scanned for non-finite pixels.
FINITE_CHUNK = 2048


def nonfinite_items(store: Store, chunk: int = FINITE_CHUNK,
                    items: range | None = None) -> np.ndarray:
    """Indices of the items (of ``items``, default all) with a NaN or infinite pixel,
    scanned ``chunk`` items at a time. Integer stores always hold finite pixels and are
    not read."""
    if store.dtype.kind != "f":
        return np.zeros(0, dtype=np.int64)
    items = range(len(store)) if items is None else items
    bad = [np.zeros(0, dtype=np.int64)]
    for start in range(items.start, items.stop, chunk):
        block = np.asarray(store.images[start:min(start + chunk, items.stop)])
        bad.append(np.flatnonzero(~np.isfinite(block.reshape(len(block), -1)).all(axis=1))
                   + start)
    return np.concatenate(bad)


def is_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a finished store (its header and image file).

    Parameters
    ----------
    path
        A folder.

    Returns
    -------
    bool
        True for a complete store; False for anything else (a missing folder, a build still
        in ``PATH.partial``, another folder). :meth:`Store.open` says what is wrong.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from bioaug.data.store import is_store, write_store
    >>> tmp = tempfile.mkdtemp()
    >>> is_store(f"{tmp}/crops")
    False
    >>> _ = write_store(f"{tmp}/crops", np.zeros((2, 1, 4, 4), dtype=np.uint8),
    ...                 [{"plate": "P1"}, {"plate": "P2"}], channels=["DNA"])
    >>> is_store(f"{tmp}/crops"), is_store(tmp)
    (True, False)
    """
    p = Path(path)
    return (p / HEADER).is_file() and (p / IMAGES).is_file()


# -- scratch folders (OUT.partial) -----------------------------------------------------------
def check_out_name(path: str | os.PathLike, flag: str = "--out") -> Path:
    """``path`` as a Path; a name ending in ``.partial`` is a :class:`ConfigError`.

    ``OUT.partial`` is where ``OUT`` is written until it is complete, so an output of that
    name would be taken for scratch space by a later build of ``OUT``.
    """
    p = Path(path)
    if p.name.endswith(PARTIAL_SUFFIX):
        stem = p.name[:-len(PARTIAL_SUFFIX)] or "out"
        raise ConfigError(f"{flag} {p}: names ending in '{PARTIAL_SUFFIX}' are reserved for "
                          "outputs still being written", hint=f"choose another name, e.g. "
                          f"{flag} {p.with_name(stem)}")
    return p


def partial_dir(path: str | os.PathLike) -> Path:
    """The scratch folder ``OUT.partial`` that ``OUT`` is written in."""
    p = Path(path)
    return p.with_name(p.name + PARTIAL_SUFFIX)


def check_partial(partial: Path, ours: Sequence[str] = (PARTIAL_MARKER,),
                  what: str = "write") -> bool:
    """Whether the scratch folder ``partial`` exists; a :class:`DataError` when it is not
    scratch space: a complete store, a file or link, or a non-empty folder holding none of
    ``ours`` (the files an interrupted ``what`` leaves; a build stopped just after writing
    its header still holds them beside it)."""
    if not partial.exists() and not partial.is_symlink():
        return False
    ours_found = partial.is_dir() and any((partial / m).exists() for m in ours)
    if (partial / HEADER).is_file() and not ours_found:
        target = partial.with_name(partial.name[:-len(PARTIAL_SUFFIX)])
        raise DataError(f"{partial} holds a complete store ({HEADER}); refusing to delete or "
                        "reuse it", hint=f"it is not scratch space: rename it (e.g. to "
                        f"{target.name} if that is free) or move it away, then run again")
    if partial.is_symlink() or not partial.is_dir() or (
            any(partial.iterdir()) and not ours_found):
        raise DataError(f"{partial} exists and is not an interrupted {what}; refusing to "
                        "delete it", hint="move it away, then run again")
    return True


def clear_partial(partial: Path, ours: Sequence[str] = (PARTIAL_MARKER,),
                  what: str = "write") -> None:
    """Delete the scratch folder an interrupted write left, after :func:`check_partial`."""
    if check_partial(partial, ours, what):
        shutil.rmtree(partial)


def begin_partial(out: str | os.PathLike, what: str = "write") -> Path:
    """A fresh, marked scratch folder for ``out`` (what an interrupted write left is
    cleared first, see :func:`clear_partial`)."""
    partial = partial_dir(out)
    clear_partial(partial, what=what)
    partial.mkdir(parents=True)
    (partial / PARTIAL_MARKER).touch()
    return partial


def replace_dir(partial: Path, out: Path) -> None:
    """Move the finished scratch folder to ``out``. An earlier ``out`` is moved aside under a
    hidden name of its own and deleted only once the new one is in place."""
    (partial / PARTIAL_MARKER).unlink(missing_ok=True)
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.urandom(4).hex()}")
        os.replace(out, old)
        os.replace(partial, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(partial, out)


class StoreHeader(BaseModel):
    """The validated facts of ``header.json`` every reader relies on (other keys pass)."""

    model_config = ConfigDict(extra="allow")

    format: Literal["bioaug-store"]
    version: int = Field(ge=1, le=VERSION)
    shape: tuple[int, int, int, int]
    dtype: Literal["uint8", "uint16", "float16", "float32"]
    channels: list[str]
    label_column: str | None = None
    complete: bool = False

    @field_validator("shape")
    @classmethod
    def _shape(cls, v: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        if v[0] < 0 or min(v[1:]) < 1:
            raise ValueError(f"must be [items ≥ 0, channels ≥ 1, height ≥ 1, width ≥ 1], "
                             f"got {list(v)}")
        return v

    @model_validator(mode="after")
    def _channels_match(self) -> StoreHeader:
        if len(self.channels) != self.shape[1]:
            raise ValueError(f"channels lists {len(self.channels)} name(s) "
                             f"({', '.join(self.channels)}) but shape has {self.shape[1]} "
                             "channel plane(s)")
        if len(set(self.channels)) != len(self.channels):
            raise ValueError(f"channels names a channel twice: {', '.join(self.channels)}")
        return self


def validate_header(header: dict[str, Any], where: str | os.PathLike) -> StoreHeader:
    """Validate a store header; a problem is one :class:`DataError` naming the file."""
    try:
        return StoreHeader.model_validate(header)
    except ValidationError as exc:
        raise validation_error(exc, StoreHeader, what="invalid store header", where=where,
                               error=DataError, hint="the store is damaged or was not written "
                               "by bioaug; rebuild it") from None


def _no_store_hint(p: Path) -> str:
    """What to do when there is no store at ``p`` (its scratch folder may say why)."""
    partial = partial_dir(p)
    if (partial / HEADER).is_file():
        return (f"{partial} holds a complete store under a scratch name; rename it to "
                f"{p.name} (or give that path)")
    if partial.exists():
        return f"a build was interrupted: {partial} exists; run the same command again to " \
               "resume it"
    return "build one with `bioaug data prepare`"


def _read_header(p: Path) -> dict[str, Any]:
    """The header of the store at ``p``: a complete store of a version this bioaug reads."""
    if not p.exists():
        raise DataError(f"no store at {p}", hint=_no_store_hint(p))
    if not p.is_dir() or not (p / HEADER).is_file():
        raise DataError(f"{p} is not a bioaug store (no {HEADER})",
                        hint="a store is a directory made by `bioaug data prepare`")
    try:
        header = json.loads((p / HEADER).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read the store header: {exc}", where=p / HEADER) from exc
    if not isinstance(header, dict):
        raise DataError(f"{p} is not a bioaug store (the header is not a JSON object)",
                        where=p / HEADER)
    if header.get("format") != FORMAT:
        raise DataError(f"{p} is not a bioaug store (format {header.get('format')!r})",
                        where=p / HEADER)
    try:
        newer = int(header.get("version", 0)) > VERSION
    except (TypeError, ValueError):
        newer = False  # reported by validate_header
    if newer:
        raise DataError(f"store version {header.get('version')} is newer than this bioaug "
                        f"reads (≤{VERSION})", where=p / HEADER, hint="upgrade bioaug")
    if not header.get("complete", False):
        raise DataError("the store is incomplete (its build did not finish)", where=p,
                        hint="run the command that built it again to resume")
    return header


def _rebuild_hint(p: Path, header: dict[str, Any], name: str) -> str:
    """How to get a store's lost file ``name`` back."""
    dataset = (header.get("config") or {}).get("dataset") or header.get("dataset")
    command = f"`bioaug data prepare {dataset} … --out {p} --overwrite`" if dataset \
        else "the command that built it (with --overwrite)"
    return f"restore {p / name} from a copy, or rebuild the store with {command}"


def _check_images(p: Path, header: dict[str, Any], shape: tuple[int, ...],
                  dtype: np.dtype) -> None:
    """``images.raw`` exists and holds exactly the bytes the header's shape and dtype need."""
    f = p / IMAGES
    if not f.is_file():
        raise DataError(f"{IMAGES} is missing from the store {p}: the header is there but "
                        "not the pixels", where=p, hint=_rebuild_hint(p, header, IMAGES))
    expected = int(np.prod(shape)) * dtype.itemsize
    size = f.stat().st_size
    if size != expected:
        raise DataError(f"{IMAGES} has {size} bytes but the header's shape {list(shape)} "
                        f"and dtype {dtype} need {expected}", where=p,
                        hint="the store is damaged; rebuild it")


def _read_obs(p: Path, header: dict[str, Any]) -> pd.DataFrame:
    """The store's ``obs.csv`` (text columns as text); a missing or unreadable one is a
    :class:`DataError` (a store of no items may hold an empty one)."""
    f = p / OBS
    if not f.is_file():
        raise DataError(f"{OBS} is missing from the store {p}", where=p,
                        hint=_rebuild_hint(p, header, OBS))
    text_columns = {c: str for c, kind in (header.get("obs_dtypes") or {}).items()
                    if kind == "str"}
    try:
        return pd.read_csv(f, keep_default_na=False, na_values=[""], low_memory=False,
                           dtype=text_columns or None)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"cannot read {OBS}: {exc}", where=p,
                        hint=_rebuild_hint(p, header, OBS)) from None


def recorded_image_size(header: dict[str, Any]) -> tuple[int, int] | None:
    """The item size (H, W) a header records besides its shape: ``image_size``, else the
    crop side of the preparation (``resize`` or ``crop_size``); ``None`` when neither."""
    size = header.get("image_size")
    if isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size):
        return int(size[0]), int(size[1])
    config = header.get("config") or {}
    side = config.get("resize") or config.get("crop_size")
    if isinstance(side, int) and not isinstance(side, bool) and side > 0:
        return side, side
    return None


def check_layout(header: dict[str, Any], shape: tuple[int, ...], where: Path) -> None:
    """The header's shape is (items, channels, height, width) of what it records elsewhere:
    its layout, the channels of its preparation and its item size. A shape with the right
    byte count but another order or split (``[N, C, W, H]``, ``[N, C, H/2, 2W]``) is a
    :class:`DataError`."""
    layout = header.get("layout", LAYOUT)
    config_channels = (header.get("config") or {}).get("channels")
    size = recorded_image_size(header)
    problem = None
    if layout != LAYOUT:
        problem = f"its layout is {layout!r}; stores are {LAYOUT}"
    elif isinstance(config_channels, list) and len(config_channels) != shape[1]:
        problem = (f"the preparation recorded {len(config_channels)} channel(s) "
                   f"({', '.join(map(str, config_channels))}) but the shape has {shape[1]}")
    elif size is not None and tuple(shape[2:]) != size:
        problem = (f"the items are {size[0]}×{size[1]} (H×W) as recorded, but the shape "
                   f"says {shape[2]}×{shape[3]}")
    if problem:
        raise DataError(f"the header's shape {list(shape)} does not fit the store's layout "
                        f"(items, channels, height, width): {problem}", where=where,
                        hint="the store is damaged or its header was edited; rebuild it")


@dataclass
class Store:
    """A read-only, memory-mapped crop store (see the module docstring for the layout).

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from bioaug.data.store import Store, write_store
    >>> path = f"{tempfile.mkdtemp()}/crops"
    >>> images = np.arange(2 * 1 * 4 * 4, dtype=np.uint8).reshape(2, 1, 4, 4)
    >>> _ = write_store(path, images, [{"well": "A01"}, {"well": "A02"}], channels=["DNA"])
    >>> store = Store.open(path)
    >>> len(store), store.n_channels, store.dtype, store.obs["well"].tolist()
    (2, 1, dtype('uint8'), ['A01', 'A02'])
    >>> store.read(1)[0, 0].tolist()
    [16, 17, 18, 19]
    """

    path: Path
    header: dict[str, Any]
    images: np.ndarray
    obs: pd.DataFrame

    @classmethod
    def open(cls, path: str | os.PathLike) -> Store:
        """Open the complete store at ``path``; anything else is a clear :class:`DataError`."""
        p = Path(path)
        header = _read_header(p)
        checked = validate_header(header, p / HEADER)
        shape = tuple(checked.shape)
        dtype = np.dtype(checked.dtype)
        _check_images(p, header, shape, dtype)
        images = (np.memmap(p / IMAGES, dtype=dtype, mode="r", shape=shape) if shape[0] > 0
                  else np.zeros(shape, dtype=dtype))
        obs = _read_obs(p, header)
        if len(obs) != shape[0]:
            raise DataError(f"{OBS} has {len(obs)} rows but the store holds {shape[0]} images",
                            where=p, hint="the store is damaged; rebuild it")
        check_layout(header, shape, p / HEADER)
        return cls(path=p, header=header, images=images, obs=obs)

    # -- basic facts -----------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def channels(self) -> list[str]:
        return list(self.header["channels"])

    @property
    def n_channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    @property
    def dtype(self) -> np.dtype:
        return self.images.dtype

    @property
    def label_column(self) -> str | None:
        return self.header.get("label_column")

    # -- reads ---------------------------------------------------------------------
    def read(self, index: int | Sequence[int] | np.ndarray | slice) -> np.ndarray:
        """Items in their stored dtype, ``(B, C, H, W)`` (``(C, H, W)`` for an int)."""
        if isinstance(index, (int, np.integer, slice)):
            return np.asarray(self.images[index])
        idx = np.asarray(index, dtype=np.int64)
        order = np.argsort(idx, kind="stable")
        out = np.empty((len(idx), *self.images.shape[1:]), dtype=self.images.dtype)
        out[order] = self.images[idx[order]]  # sorted reads are sequential on disk
        return out

    def read_float(self, index: int | Sequence[int] | np.ndarray | slice) -> np.ndarray:
        """Items as float32 in [0, 1]."""
        return to_float(self.read(index))

    def summary(self) -> dict[str, Any]:
        """A JSON-able summary (what ``bioaug data info STORE`` prints)."""
        out: dict[str, Any] = {
            "path": str(self.path),
            "items": len(self),
            "channels": self.channels,
            "image_size": list(self.image_size),
            "dtype": str(self.dtype),
            "label_column": self.label_column,
            "columns": list(self.obs.columns),
            "normalization": self.header.get("normalization"),
            "provenance": self.header.get("provenance"),
        }
        label = self.label_column
        if label and label in self.obs.columns:
            labels = self.obs[label]
            out["classes"] = {str(k): int(v) for k, v in
                              labels.dropna().astype(str).value_counts().sort_index().items()}
            if labels.isna().any():
                out["unlabelled"] = int(labels.isna().sum())
        return out


class StoreWriter:
    """Build a store unit by unit, resumably (see the module docstring).

    ``with StoreWriter(path, channels=[...], image_size=(H, W), dtype="uint16") as w:``
    then, per unit not in ``w.done_units``: ``w.add(images, rows)`` any number of times and
    ``w.commit(unit)``; finally ``w.finalize(...)``. Opening a writer on a path whose
    ``.partial`` directory was made with other settings is an error unless ``overwrite``.

    Examples
    --------
    A build of two units; a writer opened again on the same path skips the units done:

    >>> import tempfile
    >>> import numpy as np
    >>> from bioaug.data.store import StoreWriter
    >>> path = f"{tempfile.mkdtemp()}/crops"
    >>> with StoreWriter(path, channels=["DNA"], image_size=(4, 4), dtype="uint8") as w:
    ...     w.add(np.zeros((2, 1, 4, 4), dtype=np.uint8), [{"plate": "P1"}] * 2)
    ...     w.commit("P1")
    >>> with StoreWriter(path, channels=["DNA"], image_size=(4, 4), dtype="uint8") as w:
    ...     done = sorted(w.done_units)
    ...     w.add(np.ones((1, 1, 4, 4), dtype=np.uint8), [{"plate": "P2"}])
    ...     w.commit("P2")
    ...     store = w.finalize()
    >>> done, len(store), store.obs["plate"].tolist()
    (['P1'], 3, ['P1', 'P1', 'P2'])
    """

    def __init__(self, path: str | os.PathLike, *, channels: Sequence[str],
                 image_size: tuple[int, int], dtype: str = "uint16",
                 config: dict[str, Any] | None = None, overwrite: bool = False) -> None:
        if dtype not in DTYPES:
            raise DataError(f"unsupported store dtype '{dtype}'; use one of {', '.join(DTYPES)}")
        self.path = check_out_name(path)
        self.partial = partial_dir(self.path)
        self.channels = list(channels)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.dtype = np.dtype(dtype)
        self.config = dict(config or {})
        self._item_bytes = len(self.channels) * self.image_size[0] * self.image_size[1] \
            * self.dtype.itemsize
        self._signature = {"channels": self.channels, "image_size": list(self.image_size),
                           "dtype": dtype, "config": self.config}
        self._check_target(overwrite)
        if overwrite:
            clear_partial(self.partial, ours=(PROGRESS,), what="store build")
        else:
            check_partial(self.partial, ours=(PROGRESS,), what="store build")
        self.partial.mkdir(parents=True, exist_ok=True)
        self._progress = self._load_progress()
        self._restore_to_last_commit()
        self._img = open(self.partial / IMAGES, "ab")  # noqa: SIM115 — closed in close()
        self._rows: list[dict[str, Any]] = []
        self._pending = 0
        self._columns: list[str] | None = self._progress.get("columns")

    def _check_target(self, overwrite: bool) -> None:
        """``path`` is free, or (with ``overwrite``) a store holding nothing else."""
        if self.path.exists() and not overwrite:
            raise DataError(f"{self.path} already exists",
                            hint="pass --overwrite to replace it, or choose another --out")
        if self.path.exists() and not is_store(self.path) and (
                not self.path.is_dir() or any(self.path.iterdir())):
            raise DataError(f"{self.path} exists and is not a bioaug store; refusing to "
                            "replace it", hint="choose a new or empty --out")
        if self.path.is_dir() and is_store(self.path):
            foreign = sorted(e.name for e in self.path.iterdir() if e.name not in STORE_FILES)
            if foreign:
                raise DataError(f"{self.path} holds files a store does not "
                                f"({', '.join(foreign[:3])}{' …' if len(foreign) > 3 else ''}); "
                                "refusing to replace it", hint="move them out, or choose "
                                "another --out")

    # -- progress bookkeeping -------------------------------------------------------
    def _load_progress(self) -> dict[str, Any]:
        f = self.partial / PROGRESS
        if not f.exists():
            fresh = {"signature": self._signature, "units": [], "items": 0, "columns": None}
            atomic_write_json(f, fresh)
            return fresh
        prog = json.loads(f.read_text(encoding="utf-8"))
        if prog.get("signature") != self._signature:
            raise DataError(
                f"an interrupted build at {self.partial} was started with other settings",
                hint="run with the same options to resume it, or pass --overwrite to start over")
        return prog

    def _restore_to_last_commit(self) -> None:
        n = int(self._progress["items"])
        img = self.partial / IMAGES
        if img.exists() and img.stat().st_size != n * self._item_bytes:
            with open(img, "r+b") as fh:
                fh.truncate(n * self._item_bytes)
        obs = self.partial / OBS
        if obs.exists():
            df = pd.read_csv(obs, keep_default_na=False, na_values=[""], low_memory=False) \
                if obs.stat().st_size else pd.DataFrame()
            if len(df) != n:
                df.iloc[:n].to_csv(obs, index=False)

    @property
    def done_units(self) -> set[str]:
        return set(self._progress["units"])

    @property
    def n_items(self) -> int:
        return int(self._progress["items"]) + self._pending

    # -- writing --------------------------------------------------------------------
    def add(self, images: np.ndarray, rows: Iterable[dict[str, Any]] | pd.DataFrame) -> None:
        """Append items (``(n, C, H, W)`` in the store dtype) and their metadata rows."""
        images = np.asarray(images)
        expected = (len(self.channels), *self.image_size)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise DataError(f"images of shape {list(images.shape)} do not fit a store of items "
                            f"{list(expected)}")
        if images.dtype != self.dtype:
            raise DataError(f"images are {images.dtype} but the store holds {self.dtype}")
        rows_list = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else list(rows)
        if len(rows_list) != len(images):
            raise DataError(f"{len(images)} images but {len(rows_list)} metadata rows")
        self._img.write(np.ascontiguousarray(images).tobytes())
        self._rows.extend(rows_list)
        self._pending += len(images)

    def commit(self, unit: str) -> None:
        """Make everything added since the last commit durable and mark ``unit`` done."""
        self._img.flush()
        os.fsync(self._img.fileno())
        if self._rows:
            df = pd.DataFrame(self._rows)
            if self._columns is None:
                self._columns = list(df.columns)
                # text columns stay text when read back (class names like "0", "7")
                self._progress["obs_dtypes"] = {
                    c: "str" if df[c].dtype == object or pd.api.types.is_string_dtype(df[c])
                    else None for c in df.columns}
            else:
                extra = [c for c in df.columns if c not in self._columns]
                if extra:
                    raise DataError(f"metadata columns {extra} appeared after the first unit")
                df = df.reindex(columns=self._columns)
            obs = self.partial / OBS
            header = not obs.exists() or obs.stat().st_size == 0
            df.to_csv(obs, mode="a", header=header, index=False)
        self._progress["items"] = int(self._progress["items"]) + self._pending
        self._progress["units"].append(str(unit))
        self._progress["columns"] = self._columns
        atomic_write_json(self.partial / PROGRESS, self._progress)
        self._rows, self._pending = [], 0

    def finalize(self, *, label_column: str | None = None,
                 normalization: dict[str, Any] | None = None,
                 extra: dict[str, Any] | None = None,
                 provenance_extra: dict[str, Any] | None = None) -> Store:
        """Write the header and move the finished store into place."""
        if self._pending:
            raise DataError("finalize() called with uncommitted items; call commit() first")
        self.close()
        n = int(self._progress["items"])
        obs = self.partial / OBS
        if not obs.exists():
            pd.DataFrame(columns=self._columns or []).to_csv(obs, index=False)
        header = {
            "format": FORMAT,
            "version": VERSION,
            "shape": [n, len(self.channels), *self.image_size],
            "dtype": str(self.dtype),
            "channels": self.channels,
            "label_column": label_column,
            "normalization": normalization or {},
            "layout": LAYOUT,
            "image_size": list(self.image_size),
            "units": self._progress["units"],
            "obs_dtypes": self._progress.get("obs_dtypes") or {},
            "config": self.config,
            **(extra or {}),
            "provenance": provenance(**(provenance_extra or {})),
            "complete": True,
        }
        atomic_write_json(self.partial / HEADER, header)
        (self.partial / PROGRESS).unlink(missing_ok=True)
        replace_dir(self.partial, self.path)
        return Store.open(self.path)

    def close(self) -> None:
        if not self._img.closed:
            self._img.close()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_store(path: str | os.PathLike, images: np.ndarray, obs: pd.DataFrame | Sequence[dict],
                *, channels: Sequence[str], label_column: str | None = None,
                normalization: dict[str, Any] | None = None, overwrite: bool = False,
                chunk: int = 4096, provenance_extra: dict[str, Any] | None = None) -> Store:
    """Write an in-memory array and table as a store in one go (small data, tests, digits).

    Parameters
    ----------
    path
        The store directory to write (built in ``PATH.partial``, then renamed).
    images
        ``(N, C, H, W)`` in a store dtype (``uint8``, ``uint16``, ``float16``, ``float32``).
    obs
        One row per image: a DataFrame or a list of dicts.
    channels
        The ``C`` channel names.
    label_column
        The ``obs`` column holding the class labels, if any.
    normalization
        How the pixels were scaled, recorded in the header.
    overwrite
        Replace an existing store at ``path`` (never anything that is not a store).
    chunk
        Images committed at a time (an interrupted write resumes from the last commit).
    provenance_extra
        More provenance for the header.

    Returns
    -------
    Store
        The finished, opened store.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from bioaug.data.store import write_store
    >>> images = np.full((3, 2, 8, 8), 65535, dtype=np.uint16)
    >>> store = write_store(f"{tempfile.mkdtemp()}/crops", images,
    ...                     [{"plate": "P1", "label": "a"}, {"plate": "P1", "label": "b"},
    ...                      {"plate": "P2", "label": "a"}],
    ...                     channels=["DNA", "Actin"], label_column="label")
    >>> len(store), store.channels, store.image_size, store.summary()["classes"]
    (3, ['DNA', 'Actin'], (8, 8), {'a': 2, 'b': 1})
    >>> store.read_float([2, 0]).shape, float(store.read_float(1).max())
    ((2, 2, 8, 8), 1.0)
    """
    images = np.asarray(images)
    obs_df = obs if isinstance(obs, pd.DataFrame) else pd.DataFrame(list(obs))
    with StoreWriter(path, channels=channels, image_size=images.shape[2:],
                     dtype=str(images.dtype), overwrite=overwrite) as w:
        for start in range(0, len(images), chunk):
            unit = f"chunk-{start}"
            if unit in w.done_units:
                continue
            w.add(images[start:start + chunk], obs_df.iloc[start:start + chunk])
            w.commit(unit)
        return w.finalize(label_column=label_column, normalization=normalization,
                          provenance_extra=provenance_extra)
