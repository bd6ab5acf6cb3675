"""Pre-cut single-cell crops → a store: imaging flow cytometry, CellProfiler / DeepProfiler
single-cell exports, published single-cell sets.

Sources (a registry by file suffix, :data:`SOURCES`):

- ``.npy`` — one array of crops, ``(N, C, H, W)``, ``(N, H, W, C)`` or ``(N, H, W)`` (one
  channel); read through a memory map.
- ``.npz`` — the array named by ``key``, else the first 4-D array in the file; a
  ``channels`` array (if any) gives the channel names.
- ``.tif`` / ``.tiff`` (also OME-TIFF) — a stack. A 4-D stack is ``N×C×H×W`` (or
  ``N×H×W×C``); an OME-TIFF whose axes name the channel axis (``C`` or ``S``) is put in that
  order by itself. A 3-D stack is pages: one single-channel crop per page, or with ``C``
  channel names, ``C`` consecutive pages per crop (crop 0 channel 0, crop 0 channel 1, …).
- ``.csv`` — one row per cell, naming its image file(s): either one ``FileName_<Ch>``
  column per channel (optionally ``PathName_<Ch>``, as CellProfiler writes; each file one
  plane: TIFF, PNG, OME-Zarr), or one column ``FileName`` / ``file`` / ``path`` naming a
  multi-channel file per cell (``.npy``, ``.tif``, ``.png``; ``C×H×W`` or ``H×W×C`` by the
  layout rule below). Relative paths are resolved against ``root`` (default: the CSV's
  folder). Crops may differ in size when ``crop_size`` is given. The CSV's other columns are
  the obs unless an obs table is given.

**Layout.** ``layout="NCHW"`` or ``"NHWC"``; by default it is inferred when only one
reading puts the channel axis strictly below both image sides (``(N, 3, 40, 40)`` is NCHW,
``(N, 40, 40, 3)`` NHWC); otherwise it is an error asking for the layout.

**Obs.** A CSV with one row per crop, in the array's order, or with ``index_column``
naming the crop's row in the array (then the table may list a subset, in any order).
Every column is carried into ``obs.csv`` (``Metadata_Plate`` becomes ``plate``, as for
LoadData CSVs), plus ``source_row``: the crop's row in the input. A ``plate`` column
makes plates (scaling is per plate); without one the crops are one plate.

**Pixels.** Per plate and channel, the ``percentiles`` (0.1 / 99.9, as
:class:`~bioaug.data.prepare.PrepareOptions`) of *all* the plate's crop pixels, computed
exactly (no sampling, so no seed and nothing that depends on names), map to 0 and 1,
clipped. Then each crop is centre-cropped or padded to ``crop_size`` (default: the native
size; padding ``pad``: ``reflect`` mirrors the crop, ``edge`` repeats its border pixels,
``constant`` fills with 0, the plate's low percentile), optionally resized to ``resize``
(area averaging down, bilinear up), and stored as uint16 (``round(x · 65535)``), like
every microscopy store.

**Order, units, shards.** Plates come in the order they first appear in the obs table and
each plate's crops in table order (with one plate, the table's order). Each plate is one
store unit: an interrupted build resumes at the first unfinished plate. ``shard=(I, N)``
prepares the I-th of N contiguous blocks of plates; :func:`bioaug.data.merge.merge_stores`
joins the shards into exactly the store of one full run.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bioaug.data.cropping import resize_crops
from bioaug.data.fields import parse_shard, shard_plates
from bioaug.data.images import read_field
from bioaug.data.prepare import PrepareOptions
from bioaug.data.scaling import scale_intensity, to_uint16
from bioaug.data.store import PROGRESS, Store, StoreWriter, check_out_name, clear_partial
from bioaug.data.tables import check_header, read_text
from bioaug.errors import (
    BioaugError,
    ConfigError,
    DataError,
    did_you_mean,
    unknown_choice,
    validation_error,
)
from bioaug.io import sha256_file
from bioaug.progress import progress

LAYOUTS = ("NCHW", "NHWC")
PAD_MODES = ("reflect", "edge", "constant")
#: Column added to every crop's obs row: its row in the input array / stack / table.
SOURCE_ROW = "source_row"
#: Columns taken as the store's label column when none is named (the first present).
LABEL_NAMES: tuple[str, ...] = ("label", "class", "moa", "phenotype", "phase")
#: Columns of a per-cell CSV that name one multi-channel file per cell.
FILE_COLUMNS: tuple[str, ...] = ("FileName", "file", "path")
FILE_RE = re.compile(r"^(?:Image_)?FileName_(?P<ch>.+)$")
#: Unit (and plate) name of crops without a plate column.
ONE_PLATE = "all"
CHUNK = 1024


# -- options ------------------------------------------------------------------------------
class CropOptions(BaseModel):
    """How pre-cut crops become store items (``data prepare crops`` flags and defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    crop_size: int | None = Field(None, ge=4, description="centre-crop / pad every crop to "
                                  "this side (default: keep the native size)")
    resize: int | None = Field(None, ge=4, description="resize crops to this side")
    pad: Literal["reflect", "edge", "constant"] = Field(
        "reflect", description="padding when a crop is smaller than --crop-size")
    percentiles: tuple[float, float] = Field(
        PrepareOptions.model_fields["percentiles"].default,
        description=PrepareOptions.model_fields["percentiles"].description)

    @model_validator(mode="after")
    def _consistent(self) -> CropOptions:
        lo, hi = self.percentiles
        if not 0 <= lo < hi <= 100:
            raise ValueError(f"percentiles must satisfy 0 ≤ low < high ≤ 100, got {lo:g}, {hi:g}")
        return self

    @classmethod
    def make(cls, **values: Any) -> CropOptions:
        """Validate ``values``; a mistake is a one-line :class:`ConfigError` per field."""
        try:
            return cls(**values)
        except ValidationError as exc:
            raise validation_error(exc, cls, flags=True) from None

    def to_config(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.model_dump().items()}


# -- pure pixel functions -----------------------------------------------------------------
def infer_layout(shape: Sequence[int]) -> str | None:
    """``NCHW`` or ``NHWC`` when only one puts the channel axis below both image sides."""
    n1, n2, n3 = (int(s) for s in shape[-3:])
    fits = [name for name, c, hw in (("NCHW", n1, (n2, n3)), ("NHWC", n3, (n1, n2)))
            if c < min(hw)]
    return fits[0] if len(fits) == 1 else None


def to_nchw(array: np.ndarray, layout: str | None, n_channels: int | None = None,
            where: str | os.PathLike | None = None) -> tuple[np.ndarray, str]:
    """A view of a crop array as ``(N, C, H, W)``, and the layout it was read with.

    4-D arrays follow ``layout`` (inferred when ``None``, see :func:`infer_layout`); a
    3-D array is pages: ``(N, H, W)`` single-channel crops, or with ``n_channels`` C > 1,
    C consecutive pages per crop.
    """
    if layout is not None and layout not in LAYOUTS:
        raise ConfigError(unknown_choice("layout", str(layout), LAYOUTS))
    if array.ndim == 3:
        c = int(n_channels or 1)
        if array.shape[0] % c:
            raise DataError(f"{array.shape[0]} pages do not split into crops of {c} channels",
                            where=where, hint="check --channels (one name per channel)")
        return array.reshape(array.shape[0] // c, c, *array.shape[1:]), "NCHW"
    if array.ndim != 4:
        raise DataError(f"expected crops as a 4-D (N, C, H, W) / (N, H, W, C) or 3-D "
                        f"(N, H, W) array, got shape {list(array.shape)}", where=where)
    chosen = layout or infer_layout(array.shape)
    if chosen is None:
        raise DataError(f"cannot tell the channel axis of an array of shape "
                        f"{list(array.shape)}", where=where,
                        hint="give --layout NCHW (N, C, H, W) or --layout NHWC (N, H, W, C)")
    return (array if chosen == "NCHW" else np.moveaxis(array, 3, 1)), chosen


def fit_crops(crops: np.ndarray, size: int | None, pad: str = "reflect") -> np.ndarray:
    """Centre-crop and/or pad ``(n, C, H, W)`` crops to ``(n, C, size, size)``.

    An odd surplus is cut (or padded) one pixel more at the bottom / right. ``pad``:
    ``reflect`` (mirror, without repeating the border pixel), ``edge`` (repeat the border),
    ``constant`` (zeros).
    """
    if pad not in PAD_MODES:
        raise ConfigError(unknown_choice("pad mode", pad, PAD_MODES))
    if size is None:
        return crops
    out = crops
    widths = [(0, 0), (0, 0)]
    for axis in (2, 3):
        dim = out.shape[axis]
        if dim > size:
            start = (dim - size) // 2
            out = out.take(np.arange(start, start + size), axis=axis)
        elif dim < size:
            before = (size - dim) // 2
            widths.append((before, size - dim - before))
            continue
        widths.append((0, 0))
    if any(w != (0, 0) for w in widths):
        out = np.pad(out, widths, mode=pad)
    return out


def plate_percentiles(crops: np.ndarray | Sequence[np.ndarray],
                      percentiles: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel low / high percentiles over every pixel of the crops (exact)."""
    if isinstance(crops, np.ndarray):
        lo = np.percentile(crops, percentiles[0], axis=(0, 2, 3))
        hi = np.percentile(crops, percentiles[1], axis=(0, 2, 3))
        return lo, hi
    flat = np.concatenate([c.reshape(c.shape[0], -1) for c in crops], axis=1)
    return (np.percentile(flat, percentiles[0], axis=1),
            np.percentile(flat, percentiles[1], axis=1))


def crops_to_store(crops: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                   opt: CropOptions) -> np.ndarray:
    """Raw ``(n, C, H, W)`` crops → store items: scaled, fitted, resized, uint16."""
    scaled = scale_intensity(crops, lo, hi)
    fitted = fit_crops(scaled, opt.crop_size, opt.pad)
    if opt.resize:
        if fitted.shape[2] != fitted.shape[3]:
            raise ConfigError(f"--resize needs square crops, these are {fitted.shape[3]}×"
                              f"{fitted.shape[2]} (W×H)", hint="give --crop-size as well")
        fitted = resize_crops(np.ascontiguousarray(fitted, dtype=np.float32), opt.resize)
    return to_uint16(fitted)


# -- sources ------------------------------------------------------------------------------
@dataclass
class CropSource:
    """Crops as read from a file, before scaling (see the module docstring).

    ``take(rows)`` returns those crops as ``(n, C, H, W)`` (an array, or a list of
    ``(C, H, W)`` arrays when they come from one file each). ``size`` is the shared
    ``(H, W)`` (the first crop's for per-cell files).
    """

    take: Callable[[np.ndarray], np.ndarray | list[np.ndarray]]
    n: int
    n_channels: int
    size: tuple[int, int]
    where: Path
    channels: list[str] | None = None
    layout: str | None = None
    obs: pd.DataFrame | None = None
    inputs: dict[str, str] = field(default_factory=dict)


def _check_dtype(dtype: np.dtype, where: str | os.PathLike) -> None:
    if dtype == np.bool_ or not (np.issubdtype(dtype, np.integer)
                                 or np.issubdtype(dtype, np.floating)):
        raise DataError(f"crops must hold integer or float pixels, got {dtype}", where=where)


def _array_source(array: np.ndarray, path: Path, layout: str | None, n_channels: int | None,
                  channels: list[str] | None = None) -> CropSource:
    _check_dtype(array.dtype, path)
    nchw, used = to_nchw(array, layout, n_channels, where=path)
    if nchw.shape[0] == 0:
        raise DataError("the file holds no crops (N = 0)", where=path)
    return CropSource(take=lambda rows: np.asarray(nchw[rows]), n=int(nchw.shape[0]),
                      n_channels=int(nchw.shape[1]), size=(int(nchw.shape[2]),
                                                           int(nchw.shape[3])),
                      where=path, channels=channels, layout=used,
                      inputs={"images_sha256": sha256_file(path)})


def read_npy(path: Path, *, layout: str | None = None, n_channels: int | None = None,
             **_: Any) -> CropSource:
    """A ``.npy`` array of crops, memory-mapped."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise DataError(f"cannot read the array ({exc})", where=path) from None
    return _array_source(array, path, layout, n_channels)


def read_npz(path: Path, *, key: str | None = None, layout: str | None = None,
             n_channels: int | None = None, **_: Any) -> CropSource:
    """The ``key`` array (default: the first 4-D one) of an ``.npz``; ``channels`` names."""
    try:
        npz = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise DataError(f"cannot read the archive ({exc})", where=path) from None
    with npz:
        shapes = {k: npz[k].shape for k in npz.files}
        listing = ", ".join(f"{k} {list(s)}" for k, s in shapes.items()) or "(none)"
        if key is not None and key not in shapes:
            raise DataError(f"--key {key}: no such array{did_you_mean(key, shapes)}; the file "
                            f"holds {listing}", where=path)
        name = key or next((k for k, s in shapes.items() if len(s) == 4), None)
        if name is None:
            raise DataError(f"no 4-D array of crops in the file; it holds {listing}",
                            where=path, hint="name the array with --key")
        array = npz[name]
        names = [str(c) for c in npz["channels"].ravel()] if "channels" in shapes \
            and name != "channels" else None
    src = _array_source(array, path, layout, n_channels or (len(names) if names else None),
                        names)
    src.inputs["images_key"] = name
    return src


def _tiff_axes_layout(axes: str, ndim: int) -> tuple[tuple[int, ...] | None, str | None]:
    """A transpose to (N, C, Y, X) from OME / ImageJ axes letters, when they name C."""
    axes = axes.upper().replace("S", "C") if "C" not in axes.upper() else axes.upper()
    if ndim != 4 or "C" not in axes or not axes.endswith("YX"):
        return None, None
    n_axis = next(i for i, a in enumerate(axes[:-2]) if a != "C")
    return (n_axis, axes.index("C"), 2, 3), "NCHW"


def read_tiff_stack(path: Path, *, layout: str | None = None, n_channels: int | None = None,
                    **_: Any) -> CropSource:
    """A multi-page TIFF / OME-TIFF stack of crops (see the module docstring)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            array, axes = series.asarray(), str(series.axes)
    except Exception as exc:  # tifffile raises many types for damaged files
        raise DataError(f"cannot read the TIFF stack ({type(exc).__name__}: {exc})",
                        where=path) from None
    if len(axes) != array.ndim:
        axes = ""
    keep = [i for i in range(array.ndim - 2) if array.shape[i] != 1] + \
        [array.ndim - 2, array.ndim - 1] if array.ndim > 3 else list(range(array.ndim))
    array = array.reshape([array.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep) if axes else ""
    order, found = _tiff_axes_layout(axes, array.ndim)
    if layout is None and order is not None:
        array, layout = array.transpose(order), found
    return _array_source(array, path, layout, n_channels)


# -- per-cell files -----------------------------------------------------------------------
def _read_cell_npy(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def _read_cell_tiff(path: Path) -> np.ndarray:
    import tifffile

    return np.asarray(tifffile.imread(path))


def _read_cell_png(path: Path) -> np.ndarray:
    import cv2

    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise DataError("cannot decode PNG", where=path)
    return arr[:, :, ::-1].copy() if arr.ndim == 3 and arr.shape[2] >= 3 else arr


#: Readers of one multi-channel crop per file, by suffix.
CELL_READERS: dict[str, Callable[[Path], np.ndarray]] = {
    ".npy": _read_cell_npy,
    ".tif": _read_cell_tiff,
    ".tiff": _read_cell_tiff,
    ".png": _read_cell_png,
}


def read_cell_file(path: Path, layout: str | None = None) -> np.ndarray:
    """One crop from its own file as ``(C, H, W)`` (a 2-D image is one channel)."""
    fn = CELL_READERS.get(path.suffix.lower())
    if fn is None:
        raise DataError(f"unsupported crop file '{path.suffix}'; readable: "
                        f"{', '.join(sorted(CELL_READERS))}", where=path)
    if not path.is_file():
        raise DataError("file is missing", where=path,
                        hint="relative paths are resolved against --root (default: the "
                        "CSV's folder)")
    try:
        arr = fn(path)
    except DataError:
        raise
    except Exception as exc:  # decoders raise many types for damaged files
        raise DataError(f"cannot read the crop ({type(exc).__name__}: {exc})",
                        where=path) from None
    _check_dtype(arr.dtype, path)
    if arr.ndim == 2:
        return arr[None]
    return to_nchw(arr[None], layout, where=path)[0][0]


def _resolve_path(text: Any, root: Path) -> Path:
    p = Path(str(text).strip().replace("\\", "/"))
    return p if p.is_absolute() else root / p


def _joined(table: pd.DataFrame, file_col: str, folder_col: str, k: int) -> str:
    """``PathName/FileName`` of row ``k`` (just the file name without a folder column)."""
    name = str(table[file_col].iat[k]).strip()
    if folder_col not in table.columns or pd.isna(table[folder_col].iat[k]):
        return name
    return str(Path(str(table[folder_col].iat[k]).strip().replace("\\", "/")) / name)


def _table_sources(table: pd.DataFrame, root: Path, where: Path
                   ) -> tuple[list[Any], list[str] | None, list[str]]:
    """Per row: the file of the cell (one column) or its per-channel planes."""
    per_channel = {m.group("ch"): c for c in table.columns if (m := FILE_RE.match(str(c)))}
    if per_channel:
        folders = {ch: c.replace("FileName_", "PathName_") for ch, c in per_channel.items()}
        paths = {ch: [_resolve_path(_joined(table, c, folders[ch], k), root)
                      for k in range(len(table))] for ch, c in per_channel.items()}
        rows = [tuple(str(paths[ch][k]) for ch in per_channel) for k in range(len(table))]
        return rows, list(per_channel), [*per_channel.values(), *folders.values()]
    col = next((c for c in FILE_COLUMNS if c in table.columns), None)
    if col is None:
        raise DataError(f"the table names no image files: give a column {' / '.join(FILE_COLUMNS)}"
                        f" (one multi-channel file per cell) or FileName_<Channel> columns "
                        f"(one file per channel); it has {', '.join(map(str, table.columns))}",
                        where=where)
    return [_resolve_path(v, root) for v in table[col]], None, [col]


def read_cell_table(path: Path, *, layout: str | None = None, root: str | os.PathLike | None
                    = None, **_: Any) -> CropSource:
    """A CSV naming one image file per cell, or one per cell and channel."""
    table = read_table(path, "cell file")
    if table.empty:
        raise DataError("the table lists no cells", where=path)
    base = Path(root) if root is not None else path.parent
    rows, names, used = _table_sources(table, base, path)

    def one(k: int) -> np.ndarray:
        src = rows[k]
        try:
            crop = (read_field(src, dtypes=("uint8", "uint16", "float32"))
                    if isinstance(src, tuple) else read_cell_file(src, layout))
        except DataError as exc:
            raise DataError(f"line {k + 2}: {exc.message}", where=exc.where or path,
                            hint=exc.hint) from None
        return crop

    first = one(0)
    digest = hashlib.sha256()
    for r in rows:
        for p in (r if isinstance(r, tuple) else (r,)):
            digest.update(sha256_file(p).encode() if Path(p).is_file() else b"-")

    def take(idx: np.ndarray) -> list[np.ndarray]:
        out = [one(int(k)) for k in idx]
        for k, crop in zip(idx, out, strict=True):
            if crop.shape[0] != first.shape[0]:
                raise DataError(f"line {int(k) + 2}: the crop has {crop.shape[0]} channel(s) "
                                f"but the first has {first.shape[0]}", where=path)
        return out

    obs = table.drop(columns=[c for c in used if c in table.columns])
    return CropSource(take=take, n=len(table), n_channels=int(first.shape[0]),
                      size=(int(first.shape[1]), int(first.shape[2])), where=path,
                      channels=names, layout=layout, obs=obs,
                      inputs={"images_sha256": sha256_file(path),
                              "files_sha256": digest.hexdigest()})


#: Crop sources by file suffix (lower case). One line per format.
SOURCES: dict[str, Callable[..., CropSource]] = {
    ".npy": read_npy,
    ".npz": read_npz,
    ".tif": read_tiff_stack,
    ".tiff": read_tiff_stack,
    ".csv": read_cell_table,
}


def load_crops(path: str | os.PathLike, *, layout: str | None = None, key: str | None = None,
               n_channels: int | None = None, root: str | os.PathLike | None = None
               ) -> CropSource:
    """Open a crop source by its suffix (:data:`SOURCES`)."""
    p = Path(path)
    fn = SOURCES.get(p.suffix.lower())
    if fn is None:
        raise DataError(f"unsupported crop source '{p.suffix}'; readable: "
                        f"{', '.join(sorted(SOURCES))}", where=p)
    if not p.is_file():
        raise DataError("file is missing", where=p)
    if key is not None and fn is not read_npz:
        raise ConfigError("--key applies to .npz archives")
    return fn(p, layout=layout, key=key, n_channels=n_channels, root=root)


# -- channels and obs -----------------------------------------------------------------------
def resolve_channels(given: Sequence[str] | None, known: Sequence[str] | None, n: int,
                     where: Path) -> tuple[list[str], list[int]]:
    """Store channel names and the source channels they take.

    ``given`` names that are all among the file's ``known`` names select and reorder
    channels; otherwise ``given`` renames them (one name per channel). Default: ``known``,
    else ``ch0 … ch{n-1}``.
    """
    if given:
        given = list(given)
        if len(set(given)) != len(given):
            raise ConfigError(f"--channels names a channel twice: {', '.join(given)}")
        if known and all(g in known for g in given):
            return given, [list(known).index(g) for g in given]
        if len(given) != n:
            bad = next((g for g in given if known and g not in known), None)
            hint = unknown_choice("channel", bad, known) if bad and known else None
            raise DataError(f"--channels names {len(given)} channel(s) but the crops have {n}",
                            where=where, hint=hint)
        return given, list(range(n))
    names = list(known) if known else [f"ch{i}" for i in range(n)]
    if len(names) != n:
        raise DataError(f"the file names {len(names)} channel(s) ({', '.join(names)}) but "
                        f"the crops have {n}", where=where, hint="give --channels")
    return names, list(range(n))


def read_table(path: str | os.PathLike, kind: str = "cell") -> pd.DataFrame:
    """A CSV table (``kind``: what it is, for messages), empty cells as missing values and
    text as text; an empty file, another separator than commas or a column named twice is
    a clear error (:func:`bioaug.data.tables.check_header`)."""
    p = Path(path)
    if not p.is_file():
        raise DataError("file is missing", where=p)
    text = read_text(p, kind, strict=True)
    check_header(text, p, kind)
    try:
        return pd.read_csv(io.StringIO(text), keep_default_na=False, na_values=[""],
                           low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"cannot read the {kind} table ({exc})", where=p) from None


def obs_name(column: str) -> str:
    """The obs name of a column: ``Metadata_Plate`` → ``plate``, others as they are."""
    base = re.sub(r"^Image_", "", str(column))
    return base[len("Metadata_"):].lower() if base.startswith("Metadata_") else base


def rename_obs(obs: pd.DataFrame, where: Path) -> pd.DataFrame:
    """``Metadata_*`` columns as their obs names (an error when two names collide)."""
    names = [obs_name(c) for c in obs.columns]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise DataError(f"two columns become the obs column '{dup}'", where=where,
                        hint="rename one of them")
    return obs.set_axis(names, axis=1)


def find_column(obs: pd.DataFrame, column: str | None, flag: str, where: Path) -> str | None:
    """A user-named obs column (as in the CSV, or its obs name); unknown: did you mean."""
    if column is None:
        return None
    for cand in (column, obs_name(column), column.lower()):
        if cand in obs.columns:
            return cand
    raise DataError(f"{flag} {column}: {unknown_choice('column', column, map(str, obs.columns))}",
                    where=where)


def match_obs(obs: pd.DataFrame | None, n: int, index_column: str | None, where: Path
              ) -> tuple[pd.DataFrame, np.ndarray]:
    """The obs rows and the crop (row in the source) each one describes."""
    if obs is None:
        if index_column is not None:
            raise ConfigError("--index-column needs --obs")
        return pd.DataFrame(index=range(n)), np.arange(n)
    if index_column is None:
        if len(obs) != n:
            raise DataError(f"the obs table has {len(obs)} rows but there are {n} crops",
                            where=where, hint="one row per crop, in order; or name the "
                            "column holding each row's crop with --index-column")
        return obs.reset_index(drop=True), np.arange(n)
    values = pd.to_numeric(obs[index_column], errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy() | (values % 1 != 0).to_numpy()
                         | (values < 0).to_numpy() | (values >= n).to_numpy())
    if bad.size:
        k = int(bad[0])
        value = obs[index_column].iat[k]
        shown = repr(value) if isinstance(value, str) else value
        raise DataError(f"line {k + 2}: {index_column} = {shown} is not a "
                        f"crop row (0 … {n - 1}); {bad.size} such row(s)", where=where)
    rows = values.to_numpy().astype(np.int64)
    dup = pd.Series(rows).duplicated().to_numpy()
    if dup.any():
        k = int(np.flatnonzero(dup)[0])
        raise DataError(f"line {k + 2}: crop {rows[k]} is listed twice in {index_column}",
                        where=where)
    return obs.reset_index(drop=True), rows


def plate_groups(obs: pd.DataFrame, where: Path) -> dict[str, np.ndarray]:
    """Obs positions per plate, plates in order of first appearance (one plate without)."""
    if "plate" not in obs.columns:
        return {ONE_PLATE: np.arange(len(obs))}
    plate = obs["plate"]
    if plate.isna().any():
        k = int(np.flatnonzero(plate.isna().to_numpy())[0])
        raise DataError(f"line {k + 2}: the plate is empty", where=where)
    codes, names = pd.factorize(plate.astype(str), sort=False)
    return {str(name): np.flatnonzero(codes == i) for i, name in enumerate(names)}


# -- the driver ---------------------------------------------------------------------------
@dataclass
class _Plan:
    source: CropSource
    channels: list[str]
    take_channels: list[int]
    obs: pd.DataFrame
    rows: np.ndarray
    plates: dict[str, np.ndarray]
    label: str | None
    where: Path


def _plan(images: str | os.PathLike, obs: str | os.PathLike | None, *,
          channels: Sequence[str] | None, layout: str | None, key: str | None,
          index_column: str | None, label: str | None, batch: str | None,
          group: str | None, root: str | os.PathLike | None,
          plates: Sequence[str] | None) -> _Plan:
    source = load_crops(images, layout=layout, key=key, root=root,
                        n_channels=len(channels) if channels else None)
    names, take = resolve_channels(channels, source.channels, source.n_channels, source.where)
    where = Path(obs) if obs is not None else source.where
    table = read_table(obs, "obs") if obs is not None else source.obs
    index_column = find_column(table, index_column, "--index-column", where) \
        if table is not None and index_column else index_column
    table, rows = match_obs(table, source.n, index_column, where)
    table = rename_obs(table, where)
    for flag, col, target in (("--batch", batch, "batch"), ("--group", group, "compound")):
        found = find_column(table, col, flag, where)
        if found is not None and found != target:
            table[target] = table[found]
    if SOURCE_ROW not in table.columns:
        table[SOURCE_ROW] = rows
    label_col = find_column(table, label, "--label", where) if label else \
        next((c for c in LABEL_NAMES if c in table.columns), None)
    groups = plate_groups(table, where)
    if plates:
        for name in plates:
            if str(name) not in groups:
                raise DataError(unknown_choice("plate", str(name), groups), where=where)
        groups = {p: g for p, g in groups.items() if p in {str(x) for x in plates}}
    return _Plan(source=source, channels=names, take_channels=take, obs=table, rows=rows,
                 plates=groups, label=label_col, where=where)


def _plate_items(plan: _Plan, positions: np.ndarray, opt: CropOptions, bar: Any
                 ) -> tuple[list[np.ndarray], list[float], list[float]]:
    """One plate's store items (in chunks) and its per-channel scaling bounds."""
    raw = plan.source.take(plan.rows[positions])
    sel = plan.take_channels
    raw = raw[:, sel] if isinstance(raw, np.ndarray) else [c[sel] for c in raw]
    lo, hi = plate_percentiles(raw, opt.percentiles)
    native = plan.source.size
    out = []
    for start in range(0, len(positions), CHUNK):
        part = raw[start:start + CHUNK]
        if isinstance(part, list):
            sizes = {c.shape[1:] for c in part}
            if opt.crop_size is None and sizes != {native}:
                other = next(s for s in sizes if s != native)
                raise DataError(f"the crops differ in size ({other[1]}×{other[0]} and "
                                f"{native[1]}×{native[0]}, W×H)", where=plan.source.where,
                                hint="give --crop-size to centre-crop / pad them to one size")
            items = [crops_to_store(c[None], lo, hi, opt) for c in part]
            out.append(np.concatenate(items))
        else:
            out.append(crops_to_store(part, lo, hi, opt))
        bar.update(len(part))
    return out, lo.tolist(), hi.tolist()


def prepare_crops(images: str | os.PathLike, out: str | os.PathLike, *,
                  obs: str | os.PathLike | None = None, channels: Sequence[str] | None = None,
                  layout: str | None = None, key: str | None = None,
                  index_column: str | None = None, label: str | None = None,
                  batch: str | None = None, group: str | None = None,
                  root: str | os.PathLike | None = None, plates: Sequence[str] | None = None,
                  shard: tuple[int, int] | str | None = None, overwrite: bool = False,
                  **options: Any) -> Store:
    """Pre-cut single-cell crops → a store (see the module docstring for every step).

    Parameters
    ----------
    images
        ``.npy`` / ``.npz`` array, TIFF / OME-TIFF stack, or a CSV of per-cell files.
    out
        The store directory to write.
    obs
        A CSV, one row per crop (in order, or with ``index_column``): every column is kept.
    channels
        Store channel names (or a selection of the file's named channels).
    layout, key
        ``NCHW`` / ``NHWC`` (default: inferred); the ``.npz`` array to read.
    label, batch, group
        The label column (default: the first of :data:`LABEL_NAMES` present); columns copied
        to ``batch`` and ``compound``.
    root
        The folder a CSV's relative file paths are resolved against (default: its folder).
    plates, shard
        Only these plates; only the I-th of N contiguous blocks of plates.
    overwrite
        Replace an existing store at ``out``.
    **options
        :class:`CropOptions` fields: ``crop_size``, ``resize``, ``pad``, ``percentiles``.

    Returns
    -------
    Store
        The finished, opened store.

    Examples
    --------
    Four 20 × 20 two-channel crops in a ``.npy`` array and their table, centre-cropped to
    16 × 16 and scaled per plate:

    >>> import tempfile
    >>> import numpy as np
    >>> import pandas as pd
    >>> from bioaug.data.crops import prepare_crops
    >>> tmp = tempfile.mkdtemp()
    >>> rng = np.random.default_rng(0)
    >>> np.save(f"{tmp}/cells.npy", rng.integers(0, 4096, (4, 2, 20, 20), dtype=np.uint16))
    >>> pd.DataFrame({"plate": ["P1", "P1", "P2", "P2"], "well": ["A01", "A02"] * 2,
    ...               "label": ["x", "y", "x", "y"]}).to_csv(f"{tmp}/cells.csv", index=False)
    >>> store = prepare_crops(f"{tmp}/cells.npy", f"{tmp}/crops", obs=f"{tmp}/cells.csv",
    ...                       channels=["DNA", "Actin"], crop_size=16)
    >>> len(store), store.channels, store.image_size, store.label_column
    (4, ['DNA', 'Actin'], (16, 16), 'label')
    >>> pixels = store.read_float(slice(None))
    >>> pixels.dtype, round(float(pixels.min()), 2), round(float(pixels.max()), 2)
    (dtype('float32'), 0.0, 1.0)
    """
    check_out_name(out)
    opt = CropOptions.make(**options)
    shard = parse_shard(shard)
    plan = _plan(images, obs, channels=channels, layout=layout, key=key,
                 index_column=index_column, label=label, batch=batch, group=group, root=root,
                 plates=plates)
    names = shard_plates(list(plan.plates), shard)
    h, w = plan.source.size
    side = opt.resize or opt.crop_size
    size = (side, side) if side else (h, w)
    config = {"dataset": "crops", **opt.to_config(), "layout": plan.source.layout,
              "channels": plan.channels, "plates": names,
              "shard": list(shard) if shard else None}
    writer = StoreWriter(out, channels=plan.channels, image_size=size, dtype="uint16",
                         config=config, overwrite=overwrite)
    bounds = _write_plates(writer, plan, names, opt)
    return _finalize(writer, plan, opt, names, bounds, shard)


def _write_plates(writer: StoreWriter, plan: _Plan, names: list[str], opt: CropOptions
                  ) -> dict[str, dict[str, list[float]]]:
    """Write each plate not yet done as one unit; its scaling bounds by plate."""
    bounds: dict[str, dict[str, list[float]]] = {}
    todo = [p for p in names if p not in writer.done_units]
    bar = progress(total=int(sum(len(plan.plates[p]) for p in todo)), desc="prepare crops",
                   unit="crop")
    try:
        for plate in todo:
            pos = plan.plates[plate]
            items, lo, hi = _plate_items(plan, pos, opt, bar)
            for k, part in enumerate(items):
                writer.add(part, plan.obs.iloc[pos[k * CHUNK:k * CHUNK + len(part)]])
            writer.commit(plate)
            bounds[plate] = {"lo": lo, "hi": hi}
    except BioaugError:
        writer.close()
        if not writer.done_units:  # nothing to resume: leave no half-built store behind
            with contextlib.suppress(OSError, DataError):  # the first error is the one to show
                clear_partial(writer.partial, ours=(PROGRESS,), what="store build")
        raise
    finally:
        bar.close()
        writer.close()
    return bounds


def _finalize(writer: StoreWriter, plan: _Plan, opt: CropOptions, names: list[str],
              bounds: dict[str, dict[str, list[float]]], shard: tuple[int, int] | None
              ) -> Store:
    for plate in names:  # plates done by an earlier, interrupted run
        if plate not in bounds:
            raw = plan.source.take(plan.rows[plan.plates[plate]])
            raw = raw[:, plan.take_channels] if isinstance(raw, np.ndarray) else \
                [c[plan.take_channels] for c in raw]
            lo, hi = plate_percentiles(raw, opt.percentiles)
            bounds[plate] = {"lo": lo.tolist(), "hi": hi.tolist()}
    normalization = {
        "scaling": {"method": "per plate and channel percentiles of all crop pixels to "
                              "[0, 1], clipped", "percentiles": list(opt.percentiles),
                    "per_plate": {p: bounds[p] for p in names}},
        "geometry": {"crop_size": opt.crop_size, "pad": opt.pad, "resize": opt.resize},
        "store_scale": "uint16 = round(value * 65535)",
    }
    report = {"crops_listed": int(plan.source.n), "crops": int(sum(len(plan.plates[p])
                                                                    for p in names)),
              "plates": len(names), "native_size": list(plan.source.size)}
    prov = {"images": str(plan.source.where.resolve()), **plan.source.inputs}
    if plan.where != plan.source.where:
        prov.update({"obs": str(plan.where.resolve()), "obs_sha256": sha256_file(plan.where)})
    return writer.finalize(label_column=plan.label, normalization=normalization,
                           extra={"dataset": "crops", "report": report,
                                  "shard": list(shard) if shard else None},
                           provenance_extra=prov)


__all__ = ["CELL_READERS", "LABEL_NAMES", "SOURCES", "CropOptions", "CropSource",
           "crops_to_store", "fit_crops", "infer_layout", "load_crops", "match_obs",
           "plate_percentiles", "prepare_crops", "resolve_channels", "to_nchw"]
