"""BBBC021 v1 metadata and raw images (Caie et al. 2010; Ljosa et al. 2013).

The dataset ships two tables:

- ``BBBC021_v1_image.csv``: one row per field (13,200 = 55 plates × 60 wells × 4 sites) with
  the file and folder of the three channels (w1 DAPI, w2 Tubulin, w4 Actin), the plate,
  well, replicate, compound and concentration;
- ``BBBC021_v1_moa.csv``: the 103 (compound, concentration) treatments with a mechanism of
  action (12 classes) plus DMSO.

:func:`load_metadata` parses both, whatever re-saved variant is at hand (quoted or not,
3 or 6 decimals, LF / CRLF / CR line endings, a UTF-8 BOM), joins the MoA on
(compound, concentration) with a tolerance that follows the printed precision, and derives
``batch`` (the week, from the plate name ``Week4_27481`` → ``Week4``) and ``site`` (from the
file name ``…_s<k>_w…``).

Raw images are 16-bit TIFFs, 1280×1024. They are found in the published layout
``ROOT/WeekN/WeekN_PLATE/<file>.tif`` or in the one-folder-per-plate layout the per-plate
zips unpack to (``ROOT/WeekN_PLATE/<file>.tif``); :func:`locate_fields` resolves either.
:func:`read_field` reads the three channels of one field and raises :class:`FieldError`
(with a short ``reason``) for a missing, corrupt or ill-shaped file.
"""

from __future__ import annotations

import io
import itertools
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bioaug.data import images
from bioaug.data.fields import plate_sort_key
from bioaug.data.images import FieldError, read_plane  # noqa: F401  (re-exported)
from bioaug.data.tables import check_header, read_text
from bioaug.errors import DataError

IMAGE_CSV = "BBBC021_v1_image.csv"
MOA_CSV = "BBBC021_v1_moa.csv"
#: Channel names in store order, and the wavelength index used in the file names.
CHANNELS: tuple[str, ...] = ("DAPI", "Tubulin", "Actin")
WAVELENGTHS: dict[str, int] = {"DAPI": 1, "Tubulin": 2, "Actin": 4}
IMAGE_COLUMNS: tuple[str, ...] = (
    "TableNumber", "ImageNumber",
    "Image_FileName_DAPI", "Image_PathName_DAPI",
    "Image_FileName_Tubulin", "Image_PathName_Tubulin",
    "Image_FileName_Actin", "Image_PathName_Actin",
    "Image_Metadata_Plate_DAPI", "Image_Metadata_Well_DAPI", "Replicate",
    "Image_Metadata_Compound", "Image_Metadata_Concentration",
)
#: Columns that are quoted in the published file (the others are numbers).
IMAGE_QUOTED: frozenset[str] = frozenset(c for c in IMAGE_COLUMNS if c.startswith("Image_")
                                         and c != "Image_Metadata_Concentration")
MOA_COLUMNS: tuple[str, ...] = ("compound", "concentration", "moa")
MOA_QUOTED: frozenset[str] = frozenset({"compound", "moa"})
#: The 12 mechanisms of action of BBBC021 (plus the DMSO control).
MOA_CLASSES: tuple[str, ...] = (
    "Actin disruptors", "Aurora kinase inhibitors", "Cholesterol-lowering", "DNA damage",
    "DNA replication", "Eg5 inhibitors", "Epithelial", "Kinase inhibitors",
    "Microtubule destabilizers", "Microtubule stabilizers", "Protein degradation",
    "Protein synthesis",
)
CONTROL = "DMSO"
FILE_RE = re.compile(r"^(?P<prefix>.*?)(?P<well>[A-Pa-p]\d{2})_s(?P<site>\d+)_w(?P<wave>\d)"
                     r"(?P<guid>[^.]*)\.tiff?$")
WEEK_RE = re.compile(r"^(Week\d+)(?:_|$)", re.IGNORECASE)

#: Columns of the parsed field table (one row per field).
FIELD_COLUMNS: tuple[str, ...] = (
    "image_number", "table_number", "plate", "well", "site", "replicate", "batch",
    "compound", "concentration", "moa", "path",
    "file_DAPI", "file_Tubulin", "file_Actin", "line",
)


# -- CSV reading ----------------------------------------------------------------------
def read_table(path: str | os.PathLike, required: Sequence[str], *, kind: str) -> pd.DataFrame:
    """Read a CSV as strings, whatever its quoting and line endings; check its columns.

    Column names are stripped of whitespace. An empty file, another separator than commas
    and a column named twice are errors (:mod:`bioaug.data.tables`); so are missing
    columns, each named with the columns that were found.
    """
    p = Path(path)
    text = read_text(p, kind)
    check_header(text, p, kind)
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False,
                         skipinitialspace=True)
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"the {kind} table is not valid CSV: {exc}", where=p) from exc
    df.columns = [str(c).strip().strip('"') for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(
            f"the {kind} table lacks column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}", where=p,
            hint=f"found columns: {', '.join(df.columns)}; expected: {', '.join(required)}")
    return df


def _decimals(values: Iterable[str]) -> int:
    """The largest number of decimals printed in a column of numbers (as text)."""
    best = 0
    for v in values:
        v = v.strip()
        if "e" in v.lower():
            return 12
        if "." in v:
            best = max(best, len(v.split(".", 1)[1]))
    return best


def _numbers(df: pd.DataFrame, column: str, path: Path, *, integer: bool) -> np.ndarray:
    values = pd.to_numeric(df[column].str.strip(), errors="coerce")
    bad = values.isna() & (df[column].str.strip() != "")
    if integer:
        bad |= values.notna() & (values != np.round(values))
    if bad.any() or values.isna().any():
        i = int(np.flatnonzero(bad | values.isna())[0])
        raise DataError(f"line {i + 2}: column {column} must be "
                        f"{'an integer' if integer else 'a number'}, got {df[column].iloc[i]!r}",
                        where=path)
    return values.to_numpy(dtype=np.int64 if integer else np.float64)


# -- the joined table -----------------------------------------------------------------
@dataclass
class Metadata:
    """The parsed BBBC021 metadata: one row per field (:data:`FIELD_COLUMNS`)."""

    fields: pd.DataFrame
    moa: pd.DataFrame
    image_csv: Path
    moa_csv: Path
    unmatched_moa: pd.DataFrame = field(default_factory=pd.DataFrame)
    tolerance: float = 0.0

    @property
    def plates(self) -> list[str]:
        return sorted(self.fields["plate"].unique(), key=plate_sort_key)

    def treatments(self) -> pd.DataFrame:
        """MoA-annotated (compound, concentration) pairs seen in the fields, without DMSO."""
        t = self.fields[self.fields["moa"].notna() & (self.fields["moa"] != CONTROL)]
        return t[["compound", "concentration", "moa"]].drop_duplicates().reset_index(drop=True)

    def summary(self) -> dict[str, Any]:
        f = self.fields
        annotated = f[f["moa"].notna()]
        classes = sorted(c for c in annotated["moa"].unique() if c != CONTROL)
        return {
            "image_csv": str(self.image_csv),
            "moa_csv": str(self.moa_csv),
            "fields": len(f),
            "plates": int(f["plate"].nunique()),
            "weeks": int(f["batch"].nunique()),
            "wells": int(f.groupby(["plate", "well"]).ngroups),
            "compounds": int(f["compound"].nunique()),
            "compound_concentrations": int(f.groupby(["compound", "concentration"]).ngroups),
            "treatments": len(self.treatments()),
            "moa_classes": classes,
            "n_moa_classes": len(classes),
            "has_control": bool((f["moa"] == CONTROL).any()),
            "annotated_fields": len(annotated),
            "unannotated_fields": int(f["moa"].isna().sum()),
            "moa_rows_without_fields": self.unmatched_moa.to_dict("records"),
            "moa_labels_unknown": sorted(set(self.moa["moa"]) - {*MOA_CLASSES, CONTROL}),
            "fields_per_moa": {str(k): int(v) for k, v in
                               annotated["moa"].value_counts().sort_index().items()},
            "batches": sorted(f["batch"].unique(), key=plate_sort_key),
        }


def find_csvs(root: str | os.PathLike) -> tuple[Path, Path]:
    """Locate the two metadata tables in ``root`` (or one or two folders below it)."""
    r = Path(root)
    if r.is_file():
        r = r.parent
    if not r.is_dir():
        raise DataError(f"{r} is not a directory", hint="give the BBBC021 root with --root")
    found: list[Path] = []
    for name in (IMAGE_CSV, MOA_CSV):
        candidates = [r / name, *sorted(r.glob(f"*/{name}")), *sorted(r.glob(f"*/*/{name}"))]
        hit = next((c for c in candidates if c.is_file()), None)
        if hit is None:
            raise DataError(f"no {name} in {r}", hint="fetch it with `bioaug data fetch bbbc021 "
                            f"--out {r}` or point --root at the folder holding it")
        found.append(hit)
    return found[0], found[1]


def parse_moa_table(path: str | os.PathLike) -> tuple[pd.DataFrame, int]:
    """The MoA table with float concentrations, and its printed number of decimals."""
    p = Path(path)
    df = read_table(p, MOA_COLUMNS, kind="MoA")
    out = pd.DataFrame({
        "compound": df["compound"].str.strip(),
        "concentration": _numbers(df, "concentration", p, integer=False),
        "moa": df["moa"].str.strip(),
        "line": np.arange(len(df)) + 2,
    })
    empty = out[(out["compound"] == "") | (out["moa"] == "")]
    if len(empty):
        row = empty.iloc[0]
        raise DataError(f"line {row['line']}: a MoA row needs a compound and a moa",
                        where=p)
    return out, _decimals(df["concentration"])


def parse_image_table(path: str | os.PathLike) -> tuple[pd.DataFrame, int]:
    """The image table as one row per field (:data:`FIELD_COLUMNS` minus ``moa``)."""
    p = Path(path)
    df = read_table(p, IMAGE_COLUMNS, kind="image")
    text = {c: df[c].str.strip() for c in IMAGE_COLUMNS}
    plate = text["Image_Metadata_Plate_DAPI"]
    week = plate.str.extract(WEEK_RE)[0]
    from_path = text["Image_PathName_DAPI"].str.split("/").str[0].str.extract(WEEK_RE)[0]
    batch = week.fillna(from_path)
    if batch.isna().any():
        i = int(np.flatnonzero(batch.isna())[0])
        raise DataError(f"line {i + 2}: cannot derive the week from plate {plate.iloc[i]!r} "
                        f"or folder {text['Image_PathName_DAPI'].iloc[i]!r}", where=p,
                        hint="plates are named WeekN_PLATE (e.g. Week4_27481)")
    batch = batch.str.capitalize()
    sites = np.zeros(len(df), dtype=np.int64)
    for ch in CHANNELS:
        m = text[f"Image_FileName_{ch}"].str.extract(FILE_RE)
        s = pd.to_numeric(m["site"], errors="coerce").fillna(0).astype(np.int64).to_numpy()
        sites = np.where(sites == 0, s, sites)
    if (sites == 0).any():
        i = int(np.flatnonzero(sites == 0)[0])
        raise DataError(f"line {i + 2}: cannot read the site from file name "
                        f"{text['Image_FileName_DAPI'].iloc[i]!r}", where=p,
                        hint="file names look like <Well>_s<site>_w<1|2|4><GUID>.tif")
    fields = pd.DataFrame({
        "image_number": _numbers(df, "ImageNumber", p, integer=True),
        "table_number": _numbers(df, "TableNumber", p, integer=True),
        "plate": plate,
        "well": text["Image_Metadata_Well_DAPI"].str.upper(),
        "site": sites,
        "replicate": _numbers(df, "Replicate", p, integer=True),
        "batch": batch,
        "compound": text["Image_Metadata_Compound"],
        "concentration": _numbers(df, "Image_Metadata_Concentration", p, integer=False),
        "path": text["Image_PathName_DAPI"].str.replace("\\", "/", regex=False).str.strip("/"),
        "file_DAPI": text["Image_FileName_DAPI"],
        "file_Tubulin": text["Image_FileName_Tubulin"],
        "file_Actin": text["Image_FileName_Actin"],
        "line": np.arange(len(df)) + 2,
    })
    return fields, _decimals(df["Image_Metadata_Concentration"])


def match_moa(fields: pd.DataFrame, moa: pd.DataFrame, tolerance: float
              ) -> tuple[pd.Series, pd.DataFrame]:
    """Join the MoA onto fields by compound and concentration within ``tolerance``.

    Returns the MoA per field (``NaN`` where the treatment has none) and the MoA rows that
    match no field. Two MoA rows for one treatment with different labels are an error.
    """
    table: dict[str, list[tuple[float, str, int]]] = {}
    for row in moa.itertuples(index=False):
        table.setdefault(row.compound, []).append((row.concentration, row.moa, row.line))
    for compound, rows in table.items():
        rows.sort()
        for (c1, m1, l1), (c2, m2, l2) in itertools.pairwise(rows):
            if abs(c1 - c2) <= tolerance and m1 != m2:
                raise DataError(f"lines {l1} and {l2} give {compound} at {c1:g} two MoAs "
                                f"({m1!r}, {m2!r})")
    pairs = fields[["compound", "concentration"]].drop_duplicates()
    labels: dict[tuple[str, float], str] = {}
    used: set[int] = set()
    for compound, conc in pairs.itertuples(index=False):
        rows = table.get(compound)
        if not rows:
            continue
        best = min(rows, key=lambda r: abs(r[0] - conc))
        if abs(best[0] - conc) <= tolerance + 1e-9 * max(abs(conc), 1.0):
            labels[(compound, conc)] = best[1]
            used.add(best[2])
    keys = list(zip(fields["compound"], fields["concentration"], strict=True))
    out = pd.Series([labels.get(k, np.nan) for k in keys], index=fields.index, dtype=object)
    unmatched = moa[~moa["line"].isin(used)][["compound", "concentration", "moa", "line"]]
    return out, unmatched.reset_index(drop=True)


def load_metadata(root: str | os.PathLike | None = None, *,
                  image_csv: str | os.PathLike | None = None,
                  moa_csv: str | os.PathLike | None = None) -> Metadata:
    """Parse and join the BBBC021 tables found in ``root`` (or given explicitly).

    Parameters
    ----------
    root
        A folder holding ``BBBC021_v1_image.csv`` and ``BBBC021_v1_moa.csv``.
    image_csv, moa_csv
        The two tables, given explicitly (each overrides the one found in ``root``).

    Returns
    -------
    Metadata
        ``fields``: one row per field (plate, well, site, compound, concentration, its MoA
        or DMSO or missing, the channel files); ``moa``: the MoA table; ``plates``.

    Examples
    --------
    The published tables, shipped with bioaug:

    >>> import tempfile
    >>> from bioaug.data.bbbc021 import load_metadata, write_bundled_metadata
    >>> meta = load_metadata(write_bundled_metadata(tempfile.mkdtemp()))
    >>> len(meta.fields), len(meta.plates), len(meta.treatments())
    (13200, 55, 103)
    >>> meta.plates[0], int((meta.fields["moa"] == "DMSO").sum())
    ('Week1_22123', 1320)
    """
    if image_csv is None or moa_csv is None:
        if root is None:
            raise DataError("load_metadata needs a root folder or both CSV paths")
        found_img, found_moa = find_csvs(root)
        image_csv = image_csv or found_img
        moa_csv = moa_csv or found_moa
    image_csv, moa_csv = Path(image_csv), Path(moa_csv)
    fields, dec_img = parse_image_table(image_csv)
    moa, dec_moa = parse_moa_table(moa_csv)
    # Half a unit of the coarser printed precision: 6 decimals → 5e-7, 3 decimals → 5e-4.
    tolerance = 0.5 * 10.0 ** (-min(dec_img, dec_moa, 12))
    labels, unmatched = match_moa(fields, moa, tolerance)
    fields["moa"] = labels
    fields = fields[list(FIELD_COLUMNS)]
    dup = fields.duplicated(["plate", "well", "site"], keep=False)
    if dup.any():
        d = fields[dup].iloc[0]
        raise DataError(f"line {d['line']}: plate {d['plate']} well {d['well']} site "
                        f"{d['site']} appears more than once", where=image_csv)
    return Metadata(fields=fields.reset_index(drop=True), moa=moa, image_csv=image_csv,
                    moa_csv=moa_csv, unmatched_moa=unmatched, tolerance=tolerance)


#: The two published tables, shipped inside the package (the image table xz-compressed;
#: both byte-identical to the files of the Broad Bioimage Benchmark Collection).
BUNDLED: dict[str, str] = {IMAGE_CSV: "BBBC021_v1_image.csv.xz", MOA_CSV: "bbbc021_moa.csv"}


def bundled_csv_bytes(name: str) -> bytes:
    """The bytes of a published BBBC021 metadata table shipped with bioaug.

    ``name`` is :data:`IMAGE_CSV` or :data:`MOA_CSV`. Source: the Broad Bioimage Benchmark
    Collection (Ljosa et al. 2012), dataset by Caie et al. 2010 (see
    ``datasets/bbbc021.yaml``); the checksums there match these bytes.
    """
    import lzma
    from importlib import resources

    if name not in BUNDLED:
        raise DataError(f"no bundled table {name!r}; bundled: {', '.join(BUNDLED)}")
    data = (resources.files("bioaug.data") / "resources" / BUNDLED[name]).read_bytes()
    return lzma.decompress(data) if BUNDLED[name].endswith(".xz") else data


def write_bundled_metadata(folder: str | os.PathLike) -> Path:
    """Write the two shipped BBBC021 tables into ``folder`` (a metadata-only root that
    :func:`load_metadata` and ``bioaug data info bbbc021`` read).

    Parameters
    ----------
    folder
        Where to write them (made if missing); each file is written atomically.

    Returns
    -------
    Path
        ``folder``, holding ``BBBC021_v1_image.csv`` and ``BBBC021_v1_moa.csv``,
        byte-identical to the files of the Broad Bioimage Benchmark Collection.

    Examples
    --------
    >>> import hashlib
    >>> import tempfile
    >>> from bioaug.data.bbbc021 import write_bundled_metadata
    >>> root = write_bundled_metadata(f"{tempfile.mkdtemp()}/bbbc021")
    >>> sorted(p.name for p in root.iterdir())
    ['BBBC021_v1_image.csv', 'BBBC021_v1_moa.csv']
    >>> hashlib.sha256((root / "BBBC021_v1_moa.csv").read_bytes()).hexdigest()[:12]
    'cddb6c6b72c0'
    """
    from bioaug.io import atomic_path

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name in BUNDLED:
        with atomic_path(out / name) as tmp:
            tmp.write_bytes(bundled_csv_bytes(name))
    return out


def select_plates(meta_fields: pd.DataFrame, plates: Sequence[str] | None) -> pd.DataFrame:
    """Keep the fields of ``plates`` (full names like ``Week4_27481`` or bare ids ``27481``)."""
    if not plates:
        return meta_fields
    known = sorted(meta_fields["plate"].unique(), key=plate_sort_key)
    by_id = {p.split("_", 1)[-1]: p for p in known}
    chosen: list[str] = []
    from bioaug.errors import unknown_choice

    for name in plates:
        name = str(name).strip()
        if name in known:
            chosen.append(name)
        elif name in by_id:
            chosen.append(by_id[name])
        else:
            raise DataError(unknown_choice("plate", name, known))
    return meta_fields[meta_fields["plate"].isin(chosen)]


# -- image files ----------------------------------------------------------------------
def plate_dir_candidates(root: Path, path: str, plate: str) -> list[Path]:
    """Where a plate's TIFFs may live: the published ``WeekN/WeekN_PLATE`` or a flat folder."""
    last = path.split("/")[-1] if path else plate
    cands = [root / path, root / last, root / plate, root / "images" / path, root / "images" / last]
    seen: list[Path] = []
    for c in cands:
        if c not in seen:
            seen.append(c)
    return seen


@dataclass
class Located:
    """Resolved file paths per field and what is missing."""

    paths: dict[int, tuple[Path, Path, Path]]  # field index → channel paths (present fields)
    missing: pd.DataFrame  # index, plate, well, site, missing channel file(s)
    plate_dirs: dict[str, Path | None]

    def missing_summary(self, examples: int = 5) -> dict[str, Any]:
        m = self.missing
        return {
            "fields_missing": len(m),
            "files_missing": int(m["n_missing"].sum()) if len(m) else 0,
            "plates_without_folder": sorted(p for p, d in self.plate_dirs.items() if d is None),
            "examples": [str(x) for x in m["example"].head(examples)] if len(m) else [],
        }


def locate_fields(root: str | os.PathLike, fields: pd.DataFrame) -> Located:
    """Find every field's three TIFFs under ``root`` (either layout); list what is missing."""
    r = Path(root)
    if r.is_file():  # a metadata CSV given as the root, as find_csvs accepts
        r = r.parent
    plate_dirs: dict[str, Path | None] = {}
    listings: dict[str, set[str]] = {}
    for (plate, path), _ in fields.groupby(["plate", "path"], sort=False):
        hit = next((c for c in plate_dir_candidates(r, path, plate) if c.is_dir()), None)
        plate_dirs[plate] = hit
        listings[plate] = set(os.listdir(hit)) if hit is not None else set()
    paths: dict[int, tuple[Path, Path, Path]] = {}
    miss_rows: list[dict[str, Any]] = []
    cols = [f"file_{c}" for c in CHANNELS]
    for idx, plate, well, site, *files in fields[["plate", "well", "site", *cols]].itertuples():
        d = plate_dirs[plate]
        names = listings[plate]
        absent = [f for f in files if f not in names]
        if absent or d is None:
            where = d if d is not None else r / fields.at[idx, "path"]
            miss_rows.append({"index": idx, "plate": plate, "well": well, "site": int(site),
                              "n_missing": len(absent),
                              "example": str(where / absent[0])})
        else:
            paths[idx] = (d / files[0], d / files[1], d / files[2])
    missing = pd.DataFrame(miss_rows, columns=["index", "plate", "well", "site", "n_missing",
                                               "example"])
    return Located(paths=paths, missing=missing, plate_dirs=plate_dirs)


def read_tiff(path: str | os.PathLike) -> np.ndarray:
    """One 2-D TIFF plane, its dtype preserved; :class:`FieldError` when unusable."""
    return read_plane(path)


def read_field(paths: Sequence[str | os.PathLike],
               expected_shape: tuple[int, int] | None = None,
               dtypes: Sequence[str] = ("uint16",)) -> np.ndarray:
    """Read one field's channels into ``(C, H, W)`` (BBBC021 images are 16-bit).

    :func:`bioaug.data.images.read_field` with BBBC021's pixel type; raises
    :class:`FieldError` with ``reason`` missing / corrupt / dtype / shape.
    """
    return images.read_field(paths, expected_shape=expected_shape, dtypes=dtypes)


def info(root: str | os.PathLike, examples: int = 5) -> dict[str, Any]:
    """``bioaug data info bbbc021``: the metadata summary plus which image files are present."""
    meta = load_metadata(root)
    out = meta.summary()
    loc = locate_fields(root, meta.fields)
    out["root"] = str(Path(root))
    out["images"] = {"fields_complete": len(loc.paths), **loc.missing_summary(examples)}
    return out
