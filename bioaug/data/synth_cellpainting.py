"""A small synthetic Cell Painting screen with a CellProfiler LoadData CSV.

:func:`synth_cellpainting` writes the five Cell Painting channels (Bray et al. 2016,
Nature Protocols: Hoechst → DNA, concanavalin A → ER, SYTO 14 → RNA, phalloidin + WGA →
AGP, MitoTracker → Mito) as 16-bit TIFFs, one file per channel and field, and describes
them the way CellProfiler and JUMP-CP do::

    ROOT/load_data.csv     Metadata_Plate, Metadata_Well, Metadata_Site, Metadata_Batch,
                           Metadata_Compound, Metadata_Concentration (µM; 0 for DMSO),
                           Metadata_MoA, FileName_<Ch>, PathName_<Ch>
    ROOT/cells.csv         the true cell centres: ImageNumber, Metadata_Plate/Well/Site,
                           ObjectNumber, Nuclei_Location_Center_X/Y (pixels)
    ROOT/images/<plate>/<plate>_<well>_s<site>_<Ch>.tif
    ROOT/twin.json         what was written, with which arguments

With ``masks`` a nuclei label image per field (16-bit PNG, column ``NucleiMask``) is
written too. Paths in the CSV are relative to ROOT, as ``bioaug data prepare images``
resolves them.

Generative model (per cell): a soft elliptical nucleus (DNA, with chromatin texture and,
for DNA damage, bright foci) inside a larger cell body; ER concentrated round the nucleus
(tighter and brighter under ER stress); RNA in the cytoplasm and in 2–3 nucleoli; AGP as
a cortical ring (broken into cytoplasmic puncta by actin disruptors); mitochondria as
elongated dots along radial lines (many small round fragments under an uncoupler).
Nuisance per plate and channel: a stain gain, a background and an off-centre vignette;
shot and read noise per pixel. Each of the four phenotypes has two compounds, so
not-same-compound matching (NSC) has a neighbour to find. One seed gives the same bytes.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from bioaug.data.store import begin_partial, check_out_name, replace_dir
from bioaug.errors import ConfigError, DataError
from bioaug.io import atomic_write_json, atomic_write_text, provenance

CHANNELS: tuple[str, ...] = ("DNA", "ER", "RNA", "AGP", "Mito")
CONTROL = "DMSO"
#: (compound, mechanism) of every treatment; the first is the negative control.
TREATMENTS: tuple[tuple[str, str], ...] = (
    ("DMSO", CONTROL),
    ("tunicamycin", "ER stress"), ("thapsigargin", "ER stress"),
    ("FCCP", "Mitochondrial uncoupler"), ("CCCP", "Mitochondrial uncoupler"),
    ("latrunculin B", "Actin disruptor"), ("cytochalasin D", "Actin disruptor"),
    ("etoposide", "DNA damage"), ("camptothecin", "DNA damage"),
)
ROWS = "ABCDEFGHIJKLMNOP"
MARKER = "twin.json"


def _seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8],
                          "little")


def place_cells(n: int, size: tuple[int, int], min_dist: float, rng: np.random.Generator
                ) -> np.ndarray:
    """Up to ``n`` centres ``(y, x)``, at least ``min_dist`` apart, 4 px inside the field."""
    h, w = size
    out: list[np.ndarray] = []
    for _ in range(n * 30):
        if len(out) >= n:
            break
        c = rng.uniform((4, 4), (h - 5, w - 5))
        if all(np.hypot(*(c - o)) >= min_dist for o in out):
            out.append(c)
    return np.asarray(out).reshape(-1, 2)


def render_cell(moa: str, rng: np.random.Generator, half: int = 24
                ) -> tuple[np.ndarray, np.ndarray]:
    """One cell centred in a ``(5, 2·half+1, 2·half+1)`` float patch, and its nucleus mask."""
    side = 2 * half + 1
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float32)
    theta = rng.uniform(0, np.pi)
    c, s = np.cos(theta), np.sin(theta)
    u, v = c * xx + s * yy, -s * xx + c * yy
    rn = rng.uniform(5.5, 7.0) * (1.15 if moa == "DNA damage" else 1.0)
    asp = rng.uniform(1.0, 1.25)
    dn = np.sqrt((u / (rn * asp)) ** 2 + (v * asp / rn) ** 2)  # 1 on the nuclear edge
    nucleus = 1 / (1 + np.exp((dn - 1) * 8))
    rc = rn * rng.uniform(2.2, 2.7)
    dc = np.hypot(u / 1.15, v * 1.15) / rc
    body = 1 / (1 + np.exp((dc - 1) * 10))
    cyto = np.clip(body - nucleus, 0, None)
    r = np.hypot(xx, yy)
    out = np.zeros((5, side, side), np.float32)
    tex = ndimage.gaussian_filter(rng.standard_normal((side, side)), 1.2).astype(np.float32)
    dna = nucleus * np.clip(1 + 1.5 * tex, 0.2, None)
    if moa == "DNA damage":
        for fy, fx in rng.uniform(-0.6, 0.6, (6, 2)) * rn:
            dna += 2.5 * np.exp(-((yy - fy) ** 2 + (xx - fx) ** 2) / 1.5) * nucleus
    out[0] = dna
    spread = 0.35 if moa == "ER stress" else 0.9
    out[1] = cyto * np.exp(-np.clip(r - rn, 0, None) / (spread * rc)) * \
        (1.8 if moa == "ER stress" else 1.0)
    rna = 0.5 * cyto
    nuc_size = 2.5 if moa == "ER stress" else 1.2
    for fy, fx in rng.uniform(-0.45, 0.45, (int(rng.integers(2, 4)), 2)) * rn:
        rna += 2.0 * np.exp(-((yy - fy) ** 2 + (xx - fx) ** 2) / (2 * nuc_size)) * nucleus
    out[2] = rna
    if moa == "Actin disruptor":
        agp = 0.15 * body
        for _ in range(8):
            a, d = rng.uniform(0, 2 * np.pi), rng.uniform(1.2 * rn, 0.9 * rc)
            agp += 2.5 * np.exp(-((yy - d * np.sin(a)) ** 2 + (xx - d * np.cos(a)) ** 2) / 2.0)
    else:
        agp = np.exp(-((dc - 1) * rc) ** 2 / (2 * 1.3**2)) + 0.15 * body
    out[3] = agp * body.clip(0.05, None)
    mito = np.zeros((side, side), np.float32)
    if moa == "Mitochondrial uncoupler":
        for _ in range(30):
            a, d = rng.uniform(0, 2 * np.pi), rng.uniform(1.1 * rn, 0.95 * rc)
            mito += np.exp(-((yy - d * np.sin(a)) ** 2 + (xx - d * np.cos(a)) ** 2) / 1.0)
    else:
        for _ in range(14):
            a, d = rng.uniform(0, 2 * np.pi), rng.uniform(1.2 * rn, 0.85 * rc)
            cy, cx = d * np.sin(a), d * np.cos(a)
            along = (yy - cy) * np.sin(a) + (xx - cx) * np.cos(a)
            across = -(yy - cy) * np.cos(a) + (xx - cx) * np.sin(a)
            mito += np.exp(-(along**2) / (2 * 3.0**2) - across**2 / (2 * 0.8**2))
    out[4] = mito * body
    return out, nucleus > 0.5


def _vignette(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = rng.uniform(0.35, 0.65, 2) * (h, w)
    fall = rng.uniform(0.2, 0.4)
    r2 = ((yy - cy) / h) ** 2 + ((xx - cx) / w) ** 2
    return (1 - fall * r2 / r2.max()).astype(np.float32)


def render_field(moa: str, size: tuple[int, int], n_cells: int, plate_gain: np.ndarray,
                 vignettes: np.ndarray, background: np.ndarray, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A ``(5, H, W)`` uint16 field, its cell centres ``(n, 2)`` (y, x) and a label image."""
    h, w = size
    half = 24
    centres = place_cells(n_cells, size, 24.0, rng)
    canvas = np.zeros((5, h + 2 * half, w + 2 * half), np.float32)
    labels = np.zeros((h + 2 * half, w + 2 * half), np.uint16)
    exact = np.zeros_like(centres)
    for k, (cy, cx) in enumerate(centres):
        iy, ix = round(float(cy)), round(float(cx))
        exact[k] = (iy, ix)
        patch, nuc = render_cell(moa, rng, half)
        brightness = rng.lognormal(0, 0.15, (5, 1, 1)).astype(np.float32)
        canvas[:, iy:iy + 2 * half + 1, ix:ix + 2 * half + 1] += patch * brightness
        region = labels[iy:iy + 2 * half + 1, ix:ix + 2 * half + 1]
        region[nuc & (region == 0)] = k + 1
    signal = np.clip(canvas[:, half:half + h, half:half + w], 0, None) * plate_gain[:, None, None] * vignettes
    signal = signal * 6000.0 + background[:, None, None]
    noisy = rng.normal(signal, np.sqrt(signal) + 20.0)
    field = np.clip(np.rint(noisy), 0, 65535).astype(np.uint16)
    return field, exact, labels[half:half + h, half:half + w]


def _check(name: str, value: int, low: int) -> int:
    if int(value) != value or value < low:
        raise ConfigError(f"--{name.replace('_', '-')} must be a whole number ≥ {low}, "
                          f"got {value}")
    return int(value)


#: Peak bytes per field pixel while one field is rendered (five float32 planes and their
#: float64 noise), measured with tracemalloc on 1024×1280 fields, rounded up.
FIELD_BYTES_PER_PIXEL = 216
#: Padding on each side of a field while its cells are rendered (half a cell patch).
FIELD_PAD = 24


def field_memory(size: tuple[int, int]) -> int:
    """Bytes needed to render one field of ``size`` (H, W)."""
    h, w = size
    return FIELD_BYTES_PER_PIXEL * (h + 2 * FIELD_PAD) * (w + 2 * FIELD_PAD)


def check_field_memory(size: tuple[int, int], available: int | None = None) -> None:
    """A clear error before rendering when a field of ``size`` cannot fit in memory."""
    from bioaug.data.memory import available_memory, check_memory, largest_fitting

    free = available_memory() if available is None else available
    if free is None:
        return
    side = largest_fitting(lambda x: field_memory((x, x)), free, low=64)
    check_memory(field_memory(size), f"a {size[0]}x{size[1]} field (--size)",
                 largest=(f"the largest square field that fits is about {side}x{side}"
                          if side else "not even a 64x64 field fits"), available=free)


def _check_out(root: Path, overwrite: bool) -> None:
    """``root`` is new, or (with ``overwrite``) a Cell Painting twin."""
    check_out_name(root)
    if root.exists():
        if not (root / MARKER).is_file():
            raise DataError(f"{root} exists and is not a Cell Painting twin; refusing to "
                            "write over it", hint="choose a new --out")
        if not overwrite:
            raise DataError(f"{root} already exists", hint="pass --overwrite to replace it")


def _field_row(plate: str, p: int, well: str, site: int, compound: str,
               moa: str) -> dict[str, Any]:
    """The metadata columns of one field's LoadData row."""
    return {"Metadata_Plate": plate, "Metadata_Well": well, "Metadata_Site": site,
            "Metadata_Batch": f"Batch{p + 1}", "Metadata_Compound": compound,
            "Metadata_Concentration": 0.0 if moa == CONTROL else 1.0, "Metadata_MoA": moa}


def _write_field(folder: Path, row: dict[str, Any], field: np.ndarray, labels: np.ndarray,
                 masks: bool) -> None:
    """One field's TIFFs (and nuclei mask); their names go into ``row``."""
    plate, well, site = row["Metadata_Plate"], row["Metadata_Well"], row["Metadata_Site"]
    for c, ch in enumerate(CHANNELS):
        name = f"{plate}_{well}_s{site}_{ch}.tif"
        _write_tiff(folder / name, field[c])
        row[f"FileName_{ch}"] = name
        row[f"PathName_{ch}"] = f"images/{plate}"
    if masks:
        import cv2

        name = f"{plate}_{well}_s{site}_nuclei.png"
        cv2.imwrite(str(folder / name), labels)
        row["NucleiMask"] = f"images/{plate}/{name}"


def _synth_plate(partial: Path, p: int, first_image: int, *, wells_per_plate: int,
                 sites: int, size: tuple[int, int], cells_per_field: int, seed: int,
                 masks: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Write plate ``p``'s fields; its LoadData rows and its cells (true centres)."""
    plate = f"CP{p + 1:02d}"
    prng = np.random.default_rng(_seed(seed, "plate", p))
    gain = prng.lognormal(0, 0.2, 5).astype(np.float32)
    vign = np.stack([_vignette(size, prng) for _ in CHANNELS])
    background = prng.uniform(300, 700, 5).astype(np.float32)
    folder = partial / "images" / plate
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    cells: list[dict[str, Any]] = []
    for k in range(wells_per_plate):
        compound, moa = TREATMENTS[k % len(TREATMENTS)]
        well = f"{ROWS[k // 24]}{k % 24 + 1:02d}"
        for site in range(1, sites + 1):
            rng = np.random.default_rng(_seed(seed, plate, well, site))
            n = int(rng.poisson(cells_per_field)) or 1
            field, centres, labels = render_field(moa, size, n, gain, vign, background, rng)
            row = _field_row(plate, p, well, site, compound, moa)
            _write_field(folder, row, field, labels, masks)
            rows.append(row)
            cells += [{"ImageNumber": first_image + len(rows), "ObjectNumber": j + 1,
                       "Metadata_Plate": plate, "Metadata_Well": well, "Metadata_Site": site,
                       "Nuclei_Location_Center_X": cx, "Nuclei_Location_Center_Y": cy}
                      for j, (cy, cx) in enumerate(centres)]
    return rows, cells


def synth_cellpainting(out: str | os.PathLike, *, plates: int = 2, wells_per_plate: int = 9,
                       sites: int = 2, size: tuple[int, int] = (256, 256),
                       cells_per_field: int = 12, seed: int = 0, masks: bool = False,
                       overwrite: bool = False) -> Path:
    """Write a small Cell Painting screen (see the module docstring).

    Parameters
    ----------
    out
        The folder to write (written as ``OUT.partial`` and renamed when complete).
    plates
        Plates; each is one batch with its own stain gains and vignette.
    wells_per_plate
        Wells per plate; wells cycle through :data:`TREATMENTS` (9 give one each).
    sites
        Fields per well.
    size
        Field size ``(H, W)`` in pixels (at least 64 × 64, and small enough that a field
        fits in the memory available).
    cells_per_field
        Cells per field (fewer when they do not fit 24 px apart).
    seed
        The seed; the same arguments give the same bytes.
    masks
        Also write a nuclei label image per field (column ``NucleiMask``).
    overwrite
        Replace an existing twin at ``out`` (never a folder that is not one).

    Returns
    -------
    Path
        The folder written: ``load_data.csv`` (one row per field, the LoadData layout
        :func:`bioaug.data.prepare.prepare_images` reads), ``cells.csv``, ``twin.json`` and
        ``images/<plate>/`` of 16-bit TIFFs.

    Examples
    --------
    >>> import tempfile
    >>> import pandas as pd
    >>> from bioaug.data.synth_cellpainting import synth_cellpainting
    >>> screen = synth_cellpainting(f"{tempfile.mkdtemp()}/screen", plates=2,
    ...                             wells_per_plate=3, sites=1, size=(64, 64))
    >>> fields = pd.read_csv(screen / "load_data.csv")
    >>> len(fields), [c for c in fields.columns if c.startswith("FileName_")]
    (6, ['FileName_DNA', 'FileName_ER', 'FileName_RNA', 'FileName_AGP', 'FileName_Mito'])
    >>> fields["Metadata_Plate"].unique().tolist()
    ['CP01', 'CP02']
    """
    plates = _check("plates", plates, 1)
    kw: dict[str, Any] = {
        "wells_per_plate": _check("wells", wells_per_plate, 1), "sites": _check("sites", sites, 1),
        "cells_per_field": _check("cells_per_field", cells_per_field, 1),
        "seed": _check("seed", seed, 0), "masks": bool(masks)}
    h, w = (int(size[0]), int(size[1]))
    if h < 64 or w < 64:
        raise ConfigError(f"--size must be at least 64x64, got {h}x{w}")
    if kw["wells_per_plate"] > 24 * 16:
        raise ConfigError(f"--wells: a plate has at most 384 wells, got {wells_per_plate}")
    root = Path(out)
    _check_out(root, overwrite)
    check_field_memory((h, w))
    partial = begin_partial(root, what="synthetic screen")
    rows: list[dict[str, Any]] = []
    cells: list[dict[str, Any]] = []
    for p in range(plates):
        plate_rows, plate_cells = _synth_plate(partial, p, len(rows), size=(h, w), **kw)
        rows += plate_rows
        cells += plate_cells
    atomic_write_text(partial / "load_data.csv", pd.DataFrame(rows).to_csv(index=False))
    atomic_write_text(partial / "cells.csv", pd.DataFrame(cells).to_csv(index=False))
    atomic_write_json(partial / MARKER, {
        "twin": "cellpainting", "channels": list(CHANNELS),
        "arguments": {"plates": plates, **{k: kw[k] for k in ("wells_per_plate", "sites")},
                      "size": [h, w], **{k: kw[k] for k in ("cells_per_field", "seed", "masks")}},
        "fields": len(rows), "cells": len(cells), "provenance": provenance()})
    replace_dir(partial, root)
    return root


def _write_tiff(path: Path, plane: np.ndarray) -> None:
    import tifffile

    tifffile.imwrite(path, plane, photometric="minisblack")


__all__ = ["CHANNELS", "CONTROL", "TREATMENTS", "render_cell", "render_field",
           "synth_cellpainting"]
