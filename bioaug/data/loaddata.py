"""Any screen's CellProfiler LoadData CSV as a :class:`~bioaug.data.fields.FieldSet`.

The LoadData convention (CellProfiler's LoadData module, JUMP-CP, DeepProfiler) has one row
per field and, per image ``<Name>``:

- ``FileName_<Name>``: the image file (TIFF / OME-TIFF, PNG, or an OME-Zarr image);
- ``PathName_<Name>`` (optional): its folder, absolute or relative;
- ``URL_<Name>`` (instead of the two above): a local path or a ``file://`` URL (remote
  URLs — http, s3 … — are refused with a clear error: download the images first);
- ``Series_<Name>`` (optional): the image (series) inside a multi-series TIFF / OME-TIFF,
  from 0;
- ``Frame_<Name>`` (optional): the plane inside that series (an OME-TIFF page, an OME-Zarr
  channel), from 0;
- ``ChannelNumber_<Name>`` (optional): the instrument's channel number (as JUMP writes it);
  kept as metadata of the channel (``channel_numbers`` in the store header), never used to
  pick a plane;

plus ``Metadata_*`` columns (``Metadata_Plate``, ``Metadata_Well``, ``Metadata_Site``, a
treatment, a MoA …). Column names may carry CellProfiler's ``Image_`` prefix.

**Channels and illumination functions**: ``Orig<Ch>`` names an image as acquired; the
channel is ``<Ch>`` (``FileName_OrigDNA`` → channel ``DNA``; ``--channels`` accepts either
name). ``Illum<Ch>`` names the illumination function of channel ``<Ch>`` (a ``.npy`` or TIFF
written by CellProfiler's CorrectIlluminationCalculate), never a channel. With
``illum="given"`` (the default when such columns exist) every channel needs one and fields
are divided by it; ``compute`` ignores them and computes a function per plate; ``none``
applies no correction.

**Paths**: ``PathName/FileName`` (or ``FileName`` alone) as written; backslashes become
slashes; a relative path is resolved against ``root`` — by default the folder that holds
the CSV. Absolute paths are used as they are.

**Metadata**: every ``Metadata_<Name>`` column is carried into each crop's ``obs`` row as
``<name>`` (lower case: ``plate``, ``well``, ``site``, …). ``label`` names the store's
label column; ``batch`` is copied to ``batch`` and ``group`` (the treatment, left out
together by NSC and the linear probe) to ``compound``, the names evaluation reads.
Without ``Metadata_Plate`` the whole table is one plate named after the CSV.
``image_number`` is ``ImageNumber`` when the CSV has it, else the row number from 1
(CellProfiler's numbering), which is also how a locations table is matched.

**Cells**: found on the nuclei channel, or taken from a locations table (one row per cell:
``ImageNumber`` or the shared ``Metadata_*`` columns identify the field;
``Nuclei_Location_Center_X/Y`` — or any ``*Location_Center_X/Y`` pair, or
``x_col``/``y_col`` — give the centre in pixels), or from a label mask per field.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit
from urllib.request import url2pathname

import numpy as np
import pandas as pd

from bioaug.data.bbbc021 import read_table
from bioaug.data.fields import ILLUM_MODES, FieldSet, select_plates
from bioaug.data.images import READERS, PlaneSource, source_parts
from bioaug.errors import ConfigError, DataError, unknown_choice
from bioaug.io import sha256_file

#: Per-image columns: ``<Kind>_<Name>`` (optionally ``Image_``-prefixed).
IMAGE_COLUMN_RE = re.compile(r"^(?:Image_)?(?P<kind>FileName|PathName|URL|Frame|Series|"
                             r"ChannelNumber)_(?P<key>.+)$")
#: Channel names taken as the nuclear stain when ``nuclei_channel`` is not given.
NUCLEAR_NAMES: tuple[str, ...] = ("dna", "dapi", "hoechst", "nuclei", "nucleus", "h33342")
#: CellProfiler's name prefixes: ``Orig<Ch>`` an image as acquired, ``Illum<Ch>`` its
#: illumination function.
ORIG_PREFIX, ILLUM_PREFIX = "Orig", "Illum"


@dataclass(frozen=True)
class ChannelColumns:
    """One channel of a LoadData CSV: its store name (``DNA``), the image name its columns
    carry (``OrigDNA``) and that of its illumination function (``IllumDNA``), if any."""

    name: str
    key: str
    illum: str | None = None


def _strip(name: str) -> str:
    return re.sub(r"^(?:Image_)?", "", name)


def image_names(df: pd.DataFrame) -> list[str]:
    """The ``<Name>`` of every ``FileName_<Name>`` / ``URL_<Name>`` column, in column order."""
    out: list[str] = []
    for c in df.columns:
        m = IMAGE_COLUMN_RE.match(c)
        if m and m.group("kind") in ("FileName", "URL") and m.group("key") not in out:
            out.append(m.group("key"))
    return out


def channel_name(key: str) -> str:
    """``OrigDNA`` → ``DNA``: CellProfiler's ``Orig`` prefix is not part of the channel."""
    return key[len(ORIG_PREFIX):] if key.startswith(ORIG_PREFIX) and key != ORIG_PREFIX else key


def _illum_base(key: str) -> str | None:
    return key[len(ILLUM_PREFIX):] if key.startswith(ILLUM_PREFIX) and key != ILLUM_PREFIX \
        else None


def channel_columns(df: pd.DataFrame, where: Path | None = None
                    ) -> tuple[dict[str, ChannelColumns], list[str]]:
    """Channels (store name → :class:`ChannelColumns`, in column order) and the
    illumination image names (``Illum<Ch>``) that match no channel."""
    keys = image_names(df)
    illums = {channel_name(b): k for k in keys if (b := _illum_base(k)) is not None}
    out: dict[str, ChannelColumns] = {}
    for key in keys:
        if _illum_base(key) is not None:
            continue
        name = channel_name(key)
        if name in out:
            raise DataError(f"the image columns of '{out[name].key}' and '{key}' both give "
                            f"channel '{name}'", where=where, hint="keep one of them")
        out[name] = ChannelColumns(name, key, illums.get(name))
    return out, [k for n, k in illums.items() if n not in out]


#: Per-image columns that describe the image a ``FileName_`` / ``URL_`` column names, and
#: mean nothing without one.
COMPANION_KINDS: tuple[str, ...] = ("PathName", "Frame", "Series", "ChannelNumber")


def check_image_columns(df: pd.DataFrame, where: Path | None = None) -> None:
    """Every per-image column belongs to an image, and paths are given one way.

    A ``PathName_<Name>`` (or ``Frame_`` / ``Series_`` / ``ChannelNumber_``) column without
    ``FileName_<Name>`` or ``URL_<Name>`` would drop that image without a word; a
    ``FileName_<Name>`` without ``PathName_<Name>`` while other images have one would look
    for its files in another folder. Both are a :class:`DataError` naming the column.
    """
    named = set(image_names(df))
    for c in df.columns:
        m = IMAGE_COLUMN_RE.match(c)
        if m and m.group("kind") in COMPANION_KINDS and m.group("key") not in named:
            key = m.group("key")
            raise DataError(f"column {c} has no FileName_{key} (or URL_{key}) column: image "
                            f"'{key}' would be left out", where=where,
                            hint=f"add FileName_{key} (the file names), or remove {c}; images "
                            f"named: {', '.join(sorted(named)) or 'none'}")
    files = [k for k in named if _column(df, "FileName", k) is not None]
    with_path = [k for k in files if _column(df, "PathName", k) is not None]
    without = [k for k in files if k not in with_path]
    if with_path and without:
        k = sorted(without)[0]
        raise DataError(f"column {_column(df, 'FileName', k)} has no PathName_{k} column, but "
                        f"{', '.join('PathName_' + x for x in sorted(with_path)[:3])} "
                        f"{'are' if len(with_path) > 1 else 'is'} given: its files would be "
                        "looked for in another folder", where=where,
                        hint=f"add PathName_{k} (the folder of each file), or give every "
                        "image's folder the same way")


def _column(df: pd.DataFrame, kind: str, ch: str) -> str | None:
    for c in (f"{kind}_{ch}", f"Image_{kind}_{ch}"):
        if c in df.columns:
            return c
    return None


def obs_name(column: str) -> str:
    """The ``obs`` name of a CSV column: ``Metadata_Plate`` → ``plate``."""
    base = _strip(column)
    if base.startswith("Metadata_"):
        return base[len("Metadata_"):].lower()
    return base


def _file_url(parts: SplitResult, text: str, where: str) -> Path:
    if parts.netloc not in ("", "localhost"):
        raise DataError(f"{where}: {text!r} is a file on another host ({parts.netloc})",
                        hint="give a local path or a file:///… URL of this machine")
    return Path(url2pathname(parts.path))


#: URL schemes read from this machine; every other scheme is remote and refused.
LOCAL_URL_SCHEMES: dict[str, Callable[[SplitResult, str, str], Path]] = {"file": _file_url}


def url_path(text: str, where: str) -> Path:
    """A ``URL_<Ch>`` value as a local path: a plain path or a ``file://`` URL; a remote
    URL (http, https, s3 …) is a clear error (``where``: the line and column)."""
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if len(scheme) <= 1:  # no scheme, or a Windows drive letter
        return Path(text)
    opener = LOCAL_URL_SCHEMES.get(scheme)
    if opener is None:
        raise DataError(f"{where}: {text!r} is a remote URL ({scheme}); remote URLs are not "
                        "fetched", hint="download the images and point PathName_<Ch> / "
                        "FileName_<Ch> (or a relative path and --root) at them")
    return opener(parts, text, where)


def _cell(df: pd.DataFrame, col: str | None, k: int) -> str:
    return df[col].iat[k].strip().replace("\\", "/") if col else ""


def _plane_number(df: pd.DataFrame, col: str | None, k: int, where: Path) -> int | None:
    text = df[col].iat[k].strip() if col else ""
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0 or value != int(value):
        raise DataError(f"line {k + 2}: {col} must be a plane number (0, 1, …), got {text!r}",
                        where=where)
    return int(value)


def _row_path(df: pd.DataFrame, key: str, k: int, root: Path, where: Path) -> str | None:
    """The file of image ``key`` on row ``k``: PathName/FileName, else its URL."""
    name = _cell(df, _column(df, "FileName", key), k)
    if name:
        folder = _cell(df, _column(df, "PathName", key), k)
        p = Path(folder) / name if folder else Path(name)
    else:
        ucol = _column(df, "URL", key)
        url = _cell(df, ucol, k)
        if not url:
            return None
        p = url_path(url, f"line {k + 2}: {ucol}")
    return str(p if p.is_absolute() else root / p)


def _plane_paths(df: pd.DataFrame, key: str, root: Path, where: Path
                 ) -> list[PlaneSource | None]:
    """The plane of image ``key`` on every row: its file, ``Frame_`` and ``Series_``."""
    frcol, secol = _column(df, "Frame", key), _column(df, "Series", key)
    out: list[PlaneSource | None] = []
    for k in range(len(df)):
        path = _row_path(df, key, k, root, where)
        frame = _plane_number(df, frcol, k, where) if path else None
        series = _plane_number(df, secol, k, where) if path else None
        out.append(path if path is None or (frame is None and series is None) else
                   (path, frame) if series is None else (path, frame, series))
    return out


def _channel_numbers(df: pd.DataFrame, specs: Sequence[ChannelColumns]) -> dict[str, list[Any]]:
    """``ChannelNumber_<Ch>`` (the instrument's channel) per channel: metadata, no plane."""
    out: dict[str, list[Any]] = {}
    for sp in specs:
        col = _column(df, "ChannelNumber", sp.key)
        if col is not None:
            values = _numeric(df[col]).dropna().unique().tolist()
            out[sp.name] = sorted((v.item() if hasattr(v, "item") else v) for v in values)
    return out


class _Exists:
    """File existence with one directory listing per folder (fast on big screens)."""

    def __init__(self) -> None:
        self.listings: dict[str, set[str] | None] = {}

    def __call__(self, source: PlaneSource) -> bool:
        path = source_parts(source)[0]
        key = str(path.parent)
        if key not in self.listings:
            try:
                self.listings[key] = set(os.listdir(path.parent))
            except OSError:
                self.listings[key] = None
        names = self.listings[key]
        return names is not None and path.name in names


def _numeric(values: pd.Series) -> pd.Series:
    """Numbers where every non-empty value is one (integers stay integers), else text."""
    text = values.astype(str).str.strip()
    nums = pd.to_numeric(text.where(text != ""), errors="coerce")
    if text.eq("").all() or nums[text != ""].isna().any():
        return text.where(text != "", None)
    if (nums.dropna() == np.round(nums.dropna())).all() and not nums.isna().any():
        return nums.astype(np.int64)
    return nums


def _resolve(df: pd.DataFrame, column: str | None, flag: str, where: Path) -> str | None:
    """A user-named column: the CSV name, with or without ``Metadata_``, or its obs name."""
    if column is None:
        return None
    by_obs = {obs_name(c): c for c in df.columns}
    for cand in (column, f"Metadata_{column}", f"Image_Metadata_{column}"):
        if cand in df.columns:
            return cand
    if column in by_obs:
        return by_obs[column]
    if column.lower() in by_obs:
        return by_obs[column.lower()]
    raise DataError(f"{flag} {column}: {unknown_choice('column', column, df.columns)}",
                    where=where)


def _channel_named(word: str, specs: dict[str, ChannelColumns], available: Sequence[str],
                   flag: str, where: Path) -> str:
    """A channel named by the user: its store name (``DNA``) or CSV name (``OrigDNA``)."""
    word = str(word).strip()
    if word in available:
        return word
    by_key = {specs[n].key: n for n in available}
    if word in by_key:
        return by_key[word]
    raise DataError(f"{flag}: {unknown_choice('channel', word, available)}", where=where)


def _nuclei_index(channels: list[str], nuclei_channel: str | None) -> int:
    if nuclei_channel is not None:
        return channels.index(nuclei_channel)
    low = [c.lower() for c in channels]
    for i, c in enumerate(low):
        if c in NUCLEAR_NAMES:
            return i
    for i, c in enumerate(low):
        if any(n in c for n in NUCLEAR_NAMES):
            return i
    return 0


def resolve_illum(mode: str | None, specs: dict[str, ChannelColumns], chosen: Sequence[str],
                  unmatched: Sequence[str], where: Path) -> str:
    """The illumination mode: ``mode``, or by default ``given`` when the CSV has
    ``Illum<Ch>`` columns, else ``compute``. ``given`` needs one for every chosen channel."""
    names = [sp.illum for sp in specs.values() if sp.illum] + list(unmatched)
    if mode is None:
        mode = "given" if names else "compute"
    if mode not in ILLUM_MODES:
        raise ConfigError(f"--illum: {unknown_choice('mode', mode, ILLUM_MODES)}")
    if mode != "given":
        return mode
    if not names:
        raise DataError("--illum given: the LoadData table has no FileName_Illum<Ch> (or "
                        "URL_Illum<Ch>) columns", where=where,
                        hint="add the illumination functions CellProfiler wrote, or use "
                        "--illum compute (a smoothed mean image per plate) or --illum none")
    for ch in chosen:
        if specs[ch].illum is None:
            raise DataError(f"--illum given: channel '{ch}' (FileName_{specs[ch].key}) has no "
                            f"illumination function: no FileName_Illum{ch} column", where=where,
                            hint=f"illumination columns found: {', '.join(names)}; add "
                            f"FileName_Illum{ch} / PathName_Illum{ch}, or use --illum compute "
                            "or --illum none")
    return mode


def _pick_channels(specs: dict[str, ChannelColumns], channels: Sequence[str] | None,
                   masks_column: str | None, df: pd.DataFrame, where: Path
                   ) -> tuple[list[str], str | None, str | None]:
    """The chosen channels, the mask channel and the mask column (see ``masks_column``)."""
    mask_ch = mask_col = None
    if masks_column is not None:
        if masks_column in specs or masks_column in {sp.key for sp in specs.values()}:
            mask_ch = _channel_named(masks_column, specs, list(specs), "--masks-column", where)
        elif masks_column in df.columns:
            mask_col = masks_column
        else:
            raise DataError(f"--masks-column {masks_column}: not a FileName_<name> channel nor a "
                            f"column{_suggest(masks_column, [*specs, *df.columns])}",
                            where=where, hint=f"channels: {', '.join(specs)}")
    available = [c for c in specs if c != mask_ch]
    if channels:
        chosen = [_channel_named(c, specs, available, "--channels", where) for c in channels]
        if len(set(chosen)) != len(chosen):
            raise DataError(f"--channels names a channel twice: {', '.join(chosen)}")
    else:
        chosen = available
    if not chosen:
        raise DataError("no image channels left (the mask column was the only FileName_ "
                        "column)", where=where)
    return chosen, mask_ch, mask_col


def _lines(positions: np.ndarray, limit: int = 5) -> str:
    """``"3, 7 and 9"`` / ``"3, 7, 9, 11, 12 … (8 lines)"``: CSV lines of row positions."""
    lines = [str(int(k) + 2) for k in positions]
    if len(lines) > limit:
        return ", ".join(lines[:limit]) + f" … ({len(lines)} lines)"
    return lines[0] if len(lines) == 1 else ", ".join(lines[:-1]) + " and " + lines[-1]


def _check_plates(obs: pd.DataFrame, df: pd.DataFrame, where: Path) -> None:
    """An empty ``Metadata_Plate`` would make a plate of its own: name its lines."""
    if "plate" not in obs.columns:
        return
    empty = np.flatnonzero(obs["plate"].fillna("").astype(str).str.strip().eq("").to_numpy())
    if empty.size:
        col = next(c for c in df.columns
                   if _strip(c).startswith("Metadata_") and obs_name(c) == "plate")
        raise DataError(f"line{'s' if empty.size > 1 else ''} {_lines(empty)}: {col} is empty",
                        where=where, hint="give every field its plate (scaling and "
                        "illumination are per plate)")


def check_unique_fields(fields: pd.DataFrame, planes: dict[str, list[PlaneSource | None]],
                        where: Path) -> None:
    """Two rows naming the same image files would give every cell twice: name their
    lines (the first few pairs)."""
    first: dict[tuple[Any, ...], int] = {}
    pairs: list[tuple[int, int]] = []
    for k, idx in enumerate(fields.index):
        key = tuple(planes[ch][idx] for ch in planes)
        if any(v is None for v in key):
            continue
        line = int(fields["line"].iat[k])
        if key in first:
            pairs.append((first[key], line))
        else:
            first[key] = line
    if pairs:
        shown = "; ".join(f"lines {a} and {b}" for a, b in pairs[:3])
        more = f" ({len(pairs)} repeated rows)" if len(pairs) > 3 else ""
        raise DataError(f"rows name the same image files: {shown}{more}; each field must be "
                        "listed once, or its cells are cropped twice", where=where,
                        hint="remove the repeated rows")


def _metadata_obs(df: pd.DataFrame, where: Path, label: str | None, batch: str | None,
                  group: str | None) -> tuple[pd.DataFrame, list[str | None]]:
    """The ``obs`` of every field (see the module docstring) and the resolved columns."""
    obs = pd.DataFrame(index=df.index)
    for c in df.columns:
        if _strip(c).startswith("Metadata_"):
            name = obs_name(c)
            if name in obs.columns:
                raise DataError(f"columns {c} and another give the same obs column "
                                f"'{name}'", where=where)
            # plate and well names stay text as written ("0123" is not 123)
            obs[name] = df[c].str.strip() if name in ("plate", "well") else _numeric(df[c])
    srcs = [_resolve(df, v, flag, where) for v, flag in
            ((label, "--label"), (batch, "--batch"), (group, "--group"))]
    for src in srcs:
        if src is not None and obs_name(src) not in obs.columns:
            obs[obs_name(src)] = _numeric(df[src])
    if srcs[1] is not None:
        obs["batch"] = obs[obs_name(srcs[1])]
    if srcs[2] is not None:
        obs["compound"] = obs[obs_name(srcs[2])]
    _check_plates(obs, df, where)
    if "plate" not in obs.columns:
        obs.insert(0, "plate", where.stem)
    for c in ("plate", "well"):
        if c in obs.columns:
            obs[c] = obs[c].astype(str)
    img_col = "ImageNumber" if "ImageNumber" in df.columns else \
        ("Image_ImageNumber" if "Image_ImageNumber" in df.columns else None)
    if img_col is not None:
        numbers = pd.to_numeric(df[img_col].str.strip(), errors="coerce")
        if numbers.isna().any():
            k = int(np.flatnonzero(numbers.isna())[0])
            raise DataError(f"line {k + 2}: {img_col} must be an integer, got "
                            f"{df[img_col].iat[k]!r}", where=where)
        obs["image_number"] = numbers.astype(np.int64)
    else:
        obs["image_number"] = np.arange(1, len(df) + 1)
    return obs, srcs


@dataclass
class _Files:
    """The planes of the usable fields, the missing ones, masks and illumination."""

    sources: dict[Any, tuple[PlaneSource, ...]]
    missing: dict[Any, str]
    masks: dict[Any, PlaneSource] | None
    illum: dict[Any, tuple[PlaneSource, ...]] | None


def _collect_files(fields: pd.DataFrame, planes: dict[str, list[PlaneSource | None]],
                   illum_planes: dict[str, list[PlaneSource | None]] | None,
                   mask_planes: list[Any] | None) -> _Files:
    exists = _Exists()
    files = _Files({}, {}, {} if mask_planes is not None else None,
                   {} if illum_planes is not None else None)
    for k, idx in enumerate(fields.index):
        row = [p[idx] for p in planes.values()]
        ill = [p[idx] for p in illum_planes.values()] if illum_planes is not None else []
        extra = [mask_planes[idx]] if mask_planes is not None else []
        absent = [s for s in (*row, *extra, *ill) if s is None or not _present(exists, s)]
        if absent:
            s = absent[0]
            what = str(source_parts(s)[0]) if s is not None else "an empty FileName"
            files.missing[idx] = f"line {int(fields['line'].iat[k])}: {what}"
            continue
        files.sources[idx] = tuple(row)  # type: ignore[arg-type]
        if files.masks is not None:
            files.masks[idx] = extra[0]
        if files.illum is not None:
            files.illum[idx] = tuple(ill)  # type: ignore[arg-type]
    return files


def _read_load_data(path: str | os.PathLike, root: str | os.PathLike | None
                    ) -> tuple[pd.DataFrame, Path, Path]:
    """The LoadData table (its image columns checked), its path and the image root."""
    where = Path(path)
    if where.is_dir():
        raise DataError(f"{where} is a directory; give the LoadData CSV file",
                        hint="e.g. --load-data screen/load_data.csv")
    df = read_table(where, (), kind="LoadData")
    base = Path(root) if root is not None else where.resolve().parent
    if root is not None and not base.is_dir():
        raise DataError(f"--root {base} is not a directory")
    return df, where, base


def _mask_planes(df: pd.DataFrame, specs: dict[str, ChannelColumns], mask_ch: str | None,
                 mask_col: str | None, base: Path, where: Path) -> list[Any] | None:
    """The label mask of every row: a mask channel's planes, or a plain column's paths."""
    if mask_ch is not None:
        return _plane_paths(df, specs[mask_ch].key, base, where)
    if mask_col is not None:
        return [(str(base / v.strip().replace("\\", "/")) if v.strip() else None)
                for v in df[mask_col]]
    return None


def _cell_centres(locations: str | os.PathLike | None, df: pd.DataFrame, fields: pd.DataFrame,
                  x_col: str | None, y_col: str | None, masks_column: str | None,
                  report: dict[str, Any], provenance: dict[str, Any]
                  ) -> tuple[dict[Any, np.ndarray] | None, dict[Any, np.ndarray] | None]:
    """Cell centres and their lines from a locations table (``None`` without one)."""
    if locations is None:
        if x_col is not None or y_col is not None:
            raise DataError("--x-col/--y-col name columns of a --locations table; give one")
        return None, None
    centres, lines, unmatched_rows = read_locations(locations, df, fields.index, x_col, y_col)
    report["locations_unmatched_rows"] = unmatched_rows
    provenance["locations_sha256"] = sha256_file(locations)
    if masks_column is not None:
        raise DataError("give either --locations or --masks-column, not both")
    return centres, lines


def load_data_fieldset(path: str | os.PathLike, *, root: str | os.PathLike | None = None,
                       channels: Sequence[str] | None = None, label: str | None = None,
                       batch: str | None = None, group: str | None = None,
                       nuclei_channel: str | None = None,
                       locations: str | os.PathLike | None = None, x_col: str | None = None,
                       y_col: str | None = None, masks_column: str | None = None,
                       plates: Sequence[str] | None = None, illum: str | None = None
                       ) -> FieldSet:
    """Parse a LoadData CSV (see the module docstring) into a :class:`FieldSet`.

    ``illum``: ``given`` / ``compute`` / ``none`` (default: ``given`` when the CSV has
    ``Illum<Ch>`` columns, else ``compute``). Image columns that name no image, rows naming
    the same files and empty plates are errors naming the column or the lines.
    """
    df, where, base = _read_load_data(path, root)
    specs, unmatched = channel_columns(df, where)
    if not specs:
        raise DataError("the LoadData table has no FileName_<Channel> columns",
                        where=where, hint=f"found columns: {', '.join(df.columns)}; a LoadData "
                        "CSV names each channel's file in FileName_<Channel> (and its folder "
                        "in PathName_<Channel>)")
    check_image_columns(df, where)
    chosen, mask_ch, mask_col = _pick_channels(specs, channels, masks_column, df, where)
    nuc = (_channel_named(nuclei_channel, specs, chosen, "--nuclei-channel", where)
           if nuclei_channel is not None else None)
    mode = resolve_illum(illum, specs, chosen, unmatched, where)
    planes = {ch: _plane_paths(df, specs[ch].key, base, where) for ch in chosen}
    illum_planes = ({ch: _plane_paths(df, specs[ch].illum, base, where)  # type: ignore[arg-type]
                     for ch in chosen} if mode == "given" else None)
    obs, (label_src, batch_src, group_src) = _metadata_obs(df, where, label, batch, group)
    fields = pd.DataFrame({"plate": obs["plate"], "line": np.arange(len(df)) + 2},
                          index=df.index)
    fields = select_plates(fields, list(plates) if plates else None, where)
    check_unique_fields(fields, planes, where)
    files = _collect_files(fields, planes, illum_planes,
                           _mask_planes(df, specs, mask_ch, mask_col, base, where))
    report: dict[str, Any] = {}
    provenance = {"source": str(where.resolve()), "load_data_sha256": sha256_file(where),
                  "image_root": str(base)}
    centres, lines = _cell_centres(locations, df, fields, x_col, y_col, masks_column, report,
                                   provenance)
    label_name = obs_name(label_src) if label_src is not None else None
    nuclei_index = _nuclei_index(chosen, nuc)
    extra: dict[str, Any] = {"columns": {"label": label_name, "batch": batch_src,
                                         "group": group_src},
                             "csv_channels": {ch: specs[ch].key for ch in chosen}}
    numbers = _channel_numbers(df, [specs[ch] for ch in chosen])
    if numbers:
        extra["channel_numbers"] = numbers
    return FieldSet(
        dataset="images", channels=list(chosen), fields=fields, obs=obs.loc[fields.index],
        sources=files.sources, missing=files.missing, where=where, label_column=label_name,
        columns=[*obs.columns, "center_x", "center_y", "nucleus_area"],
        nuclei_channel=nuclei_index, centres=centres, centre_lines=lines,
        centres_file=Path(locations) if locations is not None else None, masks=files.masks,
        config={"nuclei_channel": None if (centres is not None or files.masks is not None)
                else chosen[nuclei_index],
                "label": label_name, "batch": batch_src, "group": group_src,
                "masks_column": masks_column},
        report=report, extra=extra, provenance=provenance,
        missing_hint=f"relative paths are resolved against {base} (change it with --root)",
        illum_mode=mode, illum=files.illum)


def _present(exists: _Exists, source: PlaneSource) -> bool:
    path = source_parts(source)[0]
    if path.suffix.lower() == ".zarr" or any(p.suffix.lower() == ".zarr" for p in path.parents):
        return path.exists()
    return exists(source)


def _suggest(word: str, choices: Sequence[str]) -> str:
    from bioaug.errors import did_you_mean

    return did_you_mean(word, list(choices))


def _pick_xy(columns: Sequence[str], x_col: str | None, y_col: str | None, where: Path
             ) -> tuple[str, str]:
    if x_col is not None or y_col is not None:
        if x_col is None or y_col is None:
            raise DataError("give both --x-col and --y-col", where=where)
        for c, flag in ((x_col, "--x-col"), (y_col, "--y-col")):
            if c not in columns:
                raise DataError(f"{flag}: {unknown_choice('column', c, columns)}", where=where)
        return x_col, y_col
    for prefix in ("Nuclei_", "Cells_", ""):
        xs = [c for c in columns if c.startswith(prefix) and c.endswith("Location_Center_X")]
        if xs:
            x = xs[0]
            y = x[:-1] + "Y"
            if y in columns:
                return x, y
    raise DataError("the locations table has no Nuclei_Location_Center_X/Y columns",
                    where=where, hint=f"found columns: {', '.join(columns)}; name the "
                    "coordinate columns with --x-col and --y-col")


def read_locations(path: str | os.PathLike, load_data: pd.DataFrame, index: pd.Index,
                   x_col: str | None = None, y_col: str | None = None
                   ) -> tuple[dict[Any, np.ndarray], dict[Any, np.ndarray], int]:
    """Cell centres per field from a locations table: centres ``(n, 2)`` as (y, x), their
    line numbers in the table, and how many rows match no field."""
    where = Path(path)
    loc = read_table(where, (), kind="locations")
    x, y = _pick_xy(list(loc.columns), x_col, y_col, where)
    lines = np.arange(len(loc)) + 2
    xy = []
    for c in (x, y):
        v = pd.to_numeric(loc[c].str.strip(), errors="coerce")
        if v.isna().any():
            k = int(np.flatnonzero(v.isna())[0])
            raise DataError(f"line {k + 2}: {c} must be a number, got {loc[c].iat[k]!r}",
                            where=where)
        xy.append(v.to_numpy(np.float64))
    # which field each cell belongs to
    img_col = next((c for c in ("ImageNumber", "Image_ImageNumber") if c in loc.columns), None)
    if img_col is not None:
        ld_col = next((c for c in ("ImageNumber", "Image_ImageNumber")
                       if c in load_data.columns), None)
        field_keys = (load_data[ld_col].str.strip().astype(str).tolist() if ld_col else
                      [str(k + 1) for k in range(len(load_data))])
        cell_keys = [str(int(float(v))) if v.strip() else "" for v in loc[img_col]]
        key_of = {k: i for i, k in zip(load_data.index, field_keys, strict=True)}
    else:
        shared = [c for c in loc.columns if _strip(c).startswith("Metadata_")
                  and c in load_data.columns]
        if not shared:
            raise DataError("cannot tell which field each cell belongs to: the locations "
                            "table needs ImageNumber or the Metadata_ columns of the LoadData "
                            "CSV (e.g. Metadata_Plate, Metadata_Well, Metadata_Site)",
                            where=where)
        field_keys = ["\x1f".join(load_data[c].iat[i].strip() for c in shared)
                      for i in range(len(load_data))]
        cell_keys = ["\x1f".join(loc[c].iat[i].strip() for c in shared) for i in range(len(loc))]
        key_of = {k: i for i, k in zip(load_data.index, field_keys, strict=True)}
    wanted = set(index)
    rows: dict[Any, list[int]] = {}
    unmatched = 0
    for j, key in enumerate(cell_keys):
        i = key_of.get(key)
        if i is None:
            unmatched += 1
            continue
        if i in wanted:
            rows.setdefault(i, []).append(j)
    centres = {i: np.stack([xy[1][r], xy[0][r]], 1) for i, r in rows.items()}
    line_map = {i: lines[r] for i, r in rows.items()}
    for i in wanted:
        centres.setdefault(i, np.zeros((0, 2)))
        line_map.setdefault(i, np.zeros(0, dtype=np.int64))
    return centres, line_map, unmatched


__all__ = ["COMPANION_KINDS", "NUCLEAR_NAMES", "READERS", "ChannelColumns",
           "channel_columns", "channel_name", "check_image_columns", "check_unique_fields",
           "load_data_fieldset", "obs_name", "read_locations", "resolve_illum", "url_path"]
