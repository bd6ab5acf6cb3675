"""Any screen's CellProfiler LoadData CSV as a :class:`~bioaug.data.fields.FieldSet`.

The LoadData convention (CellProfiler's LoadData module, JUMP-CP, DeepProfiler) has one row
per field and, per channel ``<Ch>``:

- ``FileName_<Ch>``: the image file (TIFF / OME-TIFF, PNG, or an OME-Zarr image);
- ``PathName_<Ch>`` (optional): its folder;
- ``Frame_<Ch>`` (optional): the plane inside a multi-plane file (an OME-TIFF page, an
  OME-Zarr channel), counted from 0;

plus ``Metadata_*`` columns (``Metadata_Plate``, ``Metadata_Well``, ``Metadata_Site``, a
treatment, a MoA …). Column names may carry CellProfiler's ``Image_`` prefix.

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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bioaug.data.bbbc021 import read_table
from bioaug.data.fields import FieldSet, select_plates
from bioaug.data.images import READERS, PlaneSource
from bioaug.errors import DataError, unknown_choice
from bioaug.io import sha256_file

FILE_RE = re.compile(r"^(?:Image_)?FileName_(?P<ch>.+)$")
#: Channel names taken as the nuclear stain when ``nuclei_channel`` is not given.
NUCLEAR_NAMES: tuple[str, ...] = ("dna", "dapi", "hoechst", "nuclei", "nucleus", "h33342")


def _strip(name: str) -> str:
    return re.sub(r"^(?:Image_)?", "", name)


def channel_columns(df: pd.DataFrame) -> dict[str, str]:
    """Channel name → its ``FileName_`` column, in the table's column order."""
    out: dict[str, str] = {}
    for c in df.columns:
        m = FILE_RE.match(c)
        if m:
            out[m.group("ch")] = c
    return out


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


def _plane_paths(df: pd.DataFrame, ch: str, root: Path, where: Path
                 ) -> list[PlaneSource | None]:
    fcol = _column(df, "FileName", ch)
    pcol = _column(df, "PathName", ch)
    frcol = _column(df, "Frame", ch)
    out: list[PlaneSource | None] = []
    for k in range(len(df)):
        name = df[fcol].iat[k].strip().replace("\\", "/") if fcol else ""
        if not name:
            out.append(None)
            continue
        folder = df[pcol].iat[k].strip().replace("\\", "/") if pcol else ""
        p = Path(folder) / name if folder else Path(name)
        if not p.is_absolute():
            p = root / p
        frame: int | None = None
        if frcol:
            text = df[frcol].iat[k].strip()
            if text:
                try:
                    frame = int(float(text))
                except ValueError:
                    raise DataError(f"line {k + 2}: {frcol} must be a plane number, got "
                                    f"{text!r}", where=where) from None
        out.append((str(p), frame) if frame is not None else str(p))
    return out


class _Exists:
    """File existence with one directory listing per folder (fast on big screens)."""

    def __init__(self) -> None:
        self.listings: dict[str, set[str] | None] = {}

    def __call__(self, source: PlaneSource) -> bool:
        path = Path(source[0] if isinstance(source, tuple) else source)
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


def _nuclei_index(channels: list[str], nuclei_channel: str | None, where: Path) -> int:
    if nuclei_channel is not None:
        if nuclei_channel not in channels:
            raise DataError(f"--nuclei-channel: {unknown_choice('channel', nuclei_channel, channels)}",
                            where=where)
        return channels.index(nuclei_channel)
    low = [c.lower() for c in channels]
    for i, c in enumerate(low):
        if c in NUCLEAR_NAMES or c.removeprefix("orig") in NUCLEAR_NAMES:
            return i
    for i, c in enumerate(low):
        if any(n in c for n in NUCLEAR_NAMES):
            return i
    return 0


def load_data_fieldset(path: str | os.PathLike, *, root: str | os.PathLike | None = None,
                       channels: Sequence[str] | None = None, label: str | None = None,
                       batch: str | None = None, group: str | None = None,
                       nuclei_channel: str | None = None,
                       locations: str | os.PathLike | None = None, x_col: str | None = None,
                       y_col: str | None = None, masks_column: str | None = None,
                       plates: Sequence[str] | None = None) -> FieldSet:
    """Parse a LoadData CSV (see the module docstring) into a :class:`FieldSet`."""
    where = Path(path)
    if where.is_dir():
        raise DataError(f"{where} is a directory; give the LoadData CSV file",
                        hint="e.g. --load-data screen/load_data.csv")
    df = read_table(where, (), kind="LoadData")
    base = Path(root) if root is not None else where.resolve().parent
    if root is not None and not base.is_dir():
        raise DataError(f"--root {base} is not a directory")
    found = channel_columns(df)
    if not found:
        raise DataError("the LoadData table has no FileName_<Channel> columns",
                        where=where, hint=f"found columns: {', '.join(df.columns)}; a LoadData "
                        "CSV names each channel's file in FileName_<Channel> (and its folder "
                        "in PathName_<Channel>)")
    mask_ch = None
    mask_col = None
    if masks_column is not None:
        if masks_column in found:
            mask_ch = masks_column
        elif masks_column in df.columns:
            mask_col = masks_column
        else:
            raise DataError(f"--masks-column {masks_column}: not a FileName_<name> channel nor a "
                            f"column{_suggest(masks_column, [*found, *df.columns])}",
                            where=where, hint=f"channels: {', '.join(found)}")
    available = [c for c in found if c != mask_ch]
    if channels:
        chosen = [str(c).strip() for c in channels]
        for c in chosen:
            if c not in available:
                raise DataError(f"--channels: {unknown_choice('channel', c, available)}",
                                where=where)
        if len(set(chosen)) != len(chosen):
            raise DataError(f"--channels names a channel twice: {', '.join(chosen)}")
    else:
        chosen = available
    if not chosen:
        raise DataError("no image channels left (the mask column was the only FileName_ "
                        "column)", where=where)
    planes = {ch: _plane_paths(df, ch, base, where) for ch in chosen}
    # -- metadata carried into obs ------------------------------------------------------
    obs = pd.DataFrame(index=df.index)
    for c in df.columns:
        if _strip(c).startswith("Metadata_"):
            name = obs_name(c)
            if name in obs.columns:
                raise DataError(f"columns {c} and another give the same obs column "
                                f"'{name}'", where=where)
            # plate and well names stay text as written ("0123" is not 123)
            obs[name] = df[c].str.strip() if name in ("plate", "well") else _numeric(df[c])
    label_src = _resolve(df, label, "--label", where)
    batch_src = _resolve(df, batch, "--batch", where)
    group_src = _resolve(df, group, "--group", where)
    for src in (label_src, batch_src, group_src):
        if src is not None and obs_name(src) not in obs.columns:
            obs[obs_name(src)] = _numeric(df[src])
    if batch_src is not None:
        obs["batch"] = obs[obs_name(batch_src)]
    if group_src is not None:
        obs["compound"] = obs[obs_name(group_src)]
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
    fields = pd.DataFrame({"plate": obs["plate"], "line": np.arange(len(df)) + 2},
                          index=df.index)
    fields = select_plates(fields, list(plates) if plates else None, where)
    obs = obs.loc[fields.index]
    # -- files present / missing --------------------------------------------------------
    exists = _Exists()
    sources: dict[Any, tuple[PlaneSource, ...]] = {}
    missing: dict[Any, str] = {}
    masks: dict[Any, PlaneSource] | None = {} if masks_column is not None else None
    mask_planes = (_plane_paths(df, mask_ch, base, where) if mask_ch is not None else
                   [(str(base / v.strip().replace("\\", "/")) if v.strip() else None)
                    for v in df[mask_col]] if mask_col is not None else None)
    for k, idx in enumerate(fields.index):
        row = [planes[ch][idx] for ch in chosen]
        if mask_planes is not None:
            row_mask = mask_planes[idx]
            row_all = [*row, row_mask]
        else:
            row_all = row
        absent = [s for s in row_all if s is None or not _present(exists, s)]
        if absent:
            s = absent[0]
            missing[idx] = (f"line {int(fields['line'].iat[k])}: " +
                            (str(s[0] if isinstance(s, tuple) else s) if s is not None else
                             "an empty FileName"))
            continue
        sources[idx] = tuple(row)  # type: ignore[arg-type]
        if masks is not None:
            masks[idx] = row_mask  # type: ignore[assignment]
    # -- cells from a locations table ---------------------------------------------------
    centres = lines = None
    report: dict[str, Any] = {}
    provenance = {"source": str(where.resolve()), "load_data_sha256": sha256_file(where),
                  "image_root": str(base)}
    if locations is not None:
        centres, lines, unmatched = read_locations(locations, df, fields.index, x_col, y_col)
        report["locations_unmatched_rows"] = unmatched
        provenance["locations_sha256"] = sha256_file(locations)
    elif x_col is not None or y_col is not None:
        raise DataError("--x-col/--y-col name columns of a --locations table; give one")
    if locations is not None and masks_column is not None:
        raise DataError("give either --locations or --masks-column, not both")
    columns = [*obs.columns, "center_x", "center_y", "nucleus_area"]
    label_name = obs_name(label_src) if label_src is not None else None
    return FieldSet(
        dataset="images", channels=list(chosen), fields=fields, obs=obs, sources=sources,
        missing=missing, where=where, label_column=label_name, columns=columns,
        nuclei_channel=_nuclei_index(chosen, nuclei_channel, where),
        centres=centres, centre_lines=lines,
        centres_file=Path(locations) if locations is not None else None, masks=masks,
        config={"nuclei_channel": None if (centres is not None or masks is not None) else
                chosen[_nuclei_index(chosen, nuclei_channel, where)],
                "label": label_name, "batch": batch_src, "group": group_src,
                "masks_column": masks_column},
        report=report,
        extra={"columns": {"label": label_name, "batch": batch_src, "group": group_src}},
        provenance=provenance,
        missing_hint=f"relative paths are resolved against {base} (change it with --root)")


def _present(exists: _Exists, source: PlaneSource) -> bool:
    path = Path(source[0] if isinstance(source, tuple) else source)
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


__all__ = ["NUCLEAR_NAMES", "READERS", "channel_columns", "load_data_fieldset", "obs_name",
           "read_locations"]
