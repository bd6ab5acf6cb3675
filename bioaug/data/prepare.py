"""Microscope fields → single-cell crops in a store: one path for every image source.

An adapter turns a source into a :class:`~bioaug.data.fields.FieldSet` — BBBC021's CSVs
(:func:`prepare_bbbc021`) or any screen's CellProfiler LoadData CSV
(:func:`prepare_images`) — and :func:`prepare_fields` streams it plate by plate (one
plate's crops and two ``(C, H, W)`` accumulators in memory, whatever the number of plates
or channels):

1. **Scan** every field of the plate once: accumulate the per-channel mean image and keep
   the raw values at 4096 fixed random pixel positions per field (drawn from a fixed seed
   and the field size: what a store holds depends on the pixels, never on plate, folder or
   file names).
2. **Illumination function** (``illum``): ``compute`` (as CellProfiler's
   CorrectIlluminationCalculate with a smoothed mean, used for BBBC021 by Ljosa et al.
   2013 and DeepProfiler): the mean image, Gaussian-smoothed with a large sigma
   (``illum_sigma`` × the field's longer side, done on an 8× reduced copy), normalised to
   mean 1, per plate and channel; ``given``: the functions that come with the data (a
   LoadData CSV's ``Illum<Ch>`` columns); ``none``: no correction. Fields are divided by
   it.
3. **Intensity scaling** per plate and channel: the ``percentiles`` (0.1 / 99.9) of the
   corrected pixels (the stored samples divided by the illumination at their positions)
   map to 0 and 1, clipped. 8- and 16-bit images alike.
4. **Cells**: nuclei on the scaled nuclei channel (DAPI / DNA) — Gaussian smoothing
   (σ = 2 px), one Otsu threshold per plate (stable on fields with few cells), connected
   components, touching nuclei split by a distance-transform watershed, objects smaller
   than ``min_area`` or larger than ``max_area`` pixels and those touching the field's
   border dropped (:mod:`bioaug.data.segmentation`); centres are
   intensity-weighted centroids. Or given: the centres of a locations table (CellProfiler
   ``Nuclei_Location_Center_X/Y``) or the centroids of a label mask per field.
5. **Crops** of ``crop_size`` centred on each cell. Edge handling (``edge``): ``"skip"``
   (default: a cell whose crop would leave the field is dropped, so no crop holds invented
   pixels) or ``"reflect"`` (mirror-pad the field). Optional ``resize`` (area averaging
   when shrinking). Stored as uint16 (``round(x · 65535)``; [0, 1] floats keep 16-bit
   precision, half the size of float32, and uint8 would lose the dim end of the range).

Each plate is one store unit: an interrupted run resumes at the first unfinished plate,
never duplicating crops. ``shard=(I, N)`` prepares the I-th of N contiguous blocks of
plates into its own store (a cluster array job); :func:`bioaug.data.merge.merge_stores`
joins the shards. Unusable fields (missing / corrupt / wrong pixel type or shape, a
missing channel) are skipped and reported; with ``strict`` the first one is fatal.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from scipy import ndimage

from bioaug.data.bbbc021 import (
    CHANNELS,
    CONTROL,
    load_metadata,
    locate_fields,
)
from bioaug.data.bbbc021 import select_plates as bbbc021_select_plates
from bioaug.data.fields import FieldSet, parse_shard, plate_sort_key, shard_plates
from bioaug.data.images import (
    FieldError,
    PlaneSource,
    label_centres,
    read_field,
    read_illumination,
    read_labels,
    split_source,
)
from bioaug.data.parallel import Runner
from bioaug.data.segmentation import find_nuclei, otsu_threshold
from bioaug.data.store import Store, StoreWriter
from bioaug.errors import ConfigError, DataError, validation_error
from bioaug.io import atomic_write_json, sha256_file
from bioaug.progress import progress

N_SAMPLES = 4096
#: Seed of the sampled pixel positions: fixed, so that names never change a store.
SAMPLE_SEED = 0
#: What each illumination mode does (recorded in the store header).
ILLUM_METHODS: dict[str, str] = {
    "given": "the illumination functions given with the data (Illum<Ch> columns); fields "
             "divided by them",
    "compute": "smoothed mean image per plate and channel, normalised to mean 1; fields "
               "divided by it",
    "none": "no illumination correction",
}
EDGE_MODES = ("skip", "reflect")
OBS_COLUMNS = ("plate", "well", "site", "replicate", "batch", "compound", "concentration",
               "moa", "center_x", "center_y", "image_number", "nucleus_area")


# -- pure image functions ---------------------------------------------------------------
def illumination_function(mean_image: np.ndarray, sigma_frac: float = 0.1,
                          reduce: int = 8) -> np.ndarray:
    """Smoothed mean image normalised to mean 1, per channel: ``(C, H, W)`` float32.

    Smoothing runs on a ``reduce``× block-averaged copy (sigma scaled accordingly) and is
    interpolated back, which is fast at any field size.
    """
    mean_image = np.asarray(mean_image, dtype=np.float64)
    _, h, w = mean_image.shape
    f = block_factor(h, w, reduce)
    return illumination_from_blocks(block_sum(mean_image, f) / (f * f), (h, w), f, sigma_frac)


def block_factor(h: int, w: int, reduce: int = 8) -> int:
    """The block size used to reduce a field before smoothing (at least 16 blocks a side)."""
    return max(1, min(reduce, h // 16, w // 16))


def block_sum(image: np.ndarray, f: int) -> np.ndarray:
    """Sums over ``f``×``f`` blocks (the remainder rows/columns are left out): float64."""
    c, h, w = image.shape
    hs, ws = h // f, w // f
    return image[:, :hs * f, :ws * f].reshape(c, hs, f, ws, f).sum((2, 4), dtype=np.float64)


def illumination_from_blocks(small: np.ndarray, shape: tuple[int, int], f: int,
                             sigma_frac: float = 0.1) -> np.ndarray:
    """:func:`illumination_function` from the block means of the mean image."""
    h, w = shape
    hs, ws = small.shape[1:]
    sigma = max(sigma_frac * max(h, w) / f, 0.5)
    # odd (point) reflection continues the gradient across the border, so a vignette is
    # not flattened at the edges as plain mirroring would do
    pad = int(np.ceil(4 * sigma)) + 1
    padded = np.pad(small, ((0, 0), (pad, pad), (pad, pad)), mode="reflect", reflect_type="odd")
    smooth = ndimage.gaussian_filter(padded, (0, sigma, sigma), mode="nearest")
    ay = _interp_matrix(h, hs, f, pad)
    ax = _interp_matrix(w, ws, f, pad)
    full = np.einsum("ij,cjk,lk->cil", ay, smooth, ax, optimize=True)
    floor = 1e-3 * np.maximum(full.mean(axis=(1, 2), keepdims=True), 1e-12)
    full = np.maximum(full, floor)
    full /= full.mean(axis=(1, 2), keepdims=True)
    return full.astype(np.float32)


def _interp_matrix(n_out: int, n_in: int, f: int, pad: int) -> np.ndarray:
    """Linear interpolation from block centres (``f`` pixels, ``pad`` cells of padding)."""
    pos = (np.arange(n_out) - (f - 1) / 2.0) / f + pad
    lo = np.clip(np.floor(pos).astype(np.int64), 0, n_in + 2 * pad - 2)
    t = pos - lo
    m = np.zeros((n_out, n_in + 2 * pad))
    m[np.arange(n_out), lo] = 1 - t
    m[np.arange(n_out), lo + 1] = t
    return m


def scale_intensity(image: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Map ``lo`` → 0 and ``hi`` → 1 per channel, clipped: float32 in [0, 1]."""
    lo = np.asarray(lo, dtype=np.float32)[:, None, None]
    span = np.maximum(np.asarray(hi, dtype=np.float32)[:, None, None] - lo, 1e-6)
    out = (image.astype(np.float32) - lo) / span
    return np.clip(out, 0.0, 1.0, out=out)


def crop_cells(image: np.ndarray, centres: np.ndarray, size: int, edge: str = "skip"
               ) -> tuple[np.ndarray, np.ndarray]:
    """Crops ``(n, C, size, size)`` centred on ``centres`` (y, x); returns crops and kept idx."""
    if edge not in EDGE_MODES:
        raise ConfigError(f"unknown edge mode '{edge}'; use one of {', '.join(EDGE_MODES)}")
    c, h, w = image.shape
    half = size // 2
    iy = np.rint(centres[:, 0]).astype(np.int64) if len(centres) else np.zeros(0, np.int64)
    ix = np.rint(centres[:, 1]).astype(np.int64) if len(centres) else np.zeros(0, np.int64)
    y0, x0 = iy - half, ix - half
    if edge == "skip":
        keep = np.flatnonzero((y0 >= 0) & (x0 >= 0) & (y0 + size <= h) & (x0 + size <= w))
        src, oy, ox = image, 0, 0
    else:
        keep = np.arange(len(centres))
        src = np.pad(image, ((0, 0), (size, size), (size, size)), mode="reflect" if
                     min(h, w) > size else "symmetric")
        oy = ox = size
    out = np.empty((len(keep), c, size, size), dtype=image.dtype)
    for j, i in enumerate(keep):
        out[j] = src[:, y0[i] + oy:y0[i] + oy + size, x0[i] + ox:x0[i] + ox + size]
    return out, keep


def resize_crops(crops: np.ndarray, size: int) -> np.ndarray:
    """Resize ``(n, C, s, s)`` float crops to ``size`` (area averaging down, bilinear up)."""
    import cv2

    n, c, s, _ = crops.shape
    if s == size or n == 0:
        return crops
    interp = cv2.INTER_AREA if size < s else cv2.INTER_LINEAR
    flat = crops.reshape(n * c, s, s).transpose(1, 2, 0)
    out = np.empty((size, size, n * c), dtype=np.float32)
    # OpenCV takes a limited number of channels per call: 4 for area averaging.
    step = 4 if interp == cv2.INTER_AREA else 128
    for start in range(0, n * c, step):
        part = np.ascontiguousarray(flat[:, :, start:start + step], dtype=np.float32)
        r = cv2.resize(part, (size, size), interpolation=interp)
        out[:, :, start:start + step] = r.reshape(size, size, -1)
    return out.transpose(2, 0, 1).reshape(n, c, size, size)


def to_uint16(x: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(x, 0.0, 1.0) * 65535.0).astype(np.uint16)


def sample_positions(shape: tuple[int, int], n: int = N_SAMPLES, seed: int = SAMPLE_SEED
                     ) -> np.ndarray:
    """``n`` distinct flat pixel positions of an ``H×W`` field, sorted: a function of the
    seed and the field size only (never of a plate, folder or file name)."""
    h, w = int(shape[0]), int(shape[1])
    rng = np.random.default_rng([int(seed), h, w])
    return np.sort(rng.choice(h * w, size=min(n, h * w), replace=False))


# -- options ----------------------------------------------------------------------------
class PrepareOptions(BaseModel):
    """How fields become crops; the one source of the ``data prepare`` flags and defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    crop_size: int = Field(96, ge=8, description="crop side in pixels")
    resize: int | None = Field(None, ge=4, description="resize crops to this side")
    edge: Literal["skip", "reflect"] = Field(
        "skip", description="cells near the border: drop them (skip) or mirror-pad (reflect)")
    percentiles: tuple[float, float] = Field(
        (0.1, 99.9), description="intensity scaling percentiles per plate and channel")
    illum_sigma: float = Field(0.1, gt=0, le=1, description="illumination smoothing, as a "
                               "fraction of the field's longer side")
    nucleus_sigma: float = Field(2.0, ge=0, description="smoothing before nucleus "
                                 "thresholding (pixels)")
    min_area: int = Field(50, ge=1, description="smallest nucleus in pixels")
    max_area: int = Field(8000, ge=1, description="largest nucleus in pixels")
    illum: Literal["given", "compute", "none"] | None = Field(
        None, description="illumination correction: given (the LoadData CSV's Illum<Ch> "
        "functions), compute (a smoothed mean image per plate and channel) or none; default: "
        "given when the CSV has Illum<Ch> columns, else compute")

    @model_validator(mode="after")
    def _consistent(self) -> PrepareOptions:
        lo, hi = self.percentiles
        if not 0 <= lo < hi <= 100:
            raise ValueError(f"percentiles must satisfy 0 ≤ low < high ≤ 100, got {lo:g}, {hi:g}")
        if self.max_area < self.min_area:
            raise ValueError(f"max_area ({self.max_area}) must be at least min_area "
                             f"({self.min_area})")
        return self

    @classmethod
    def make(cls, **values: Any) -> PrepareOptions:
        """Validate ``values``; a mistake is a one-line :class:`ConfigError` per field."""
        try:
            return cls(**values)
        except ValidationError as exc:
            raise validation_error(exc, cls, flags=True) from None

    @property
    def out_size(self) -> int:
        return int(self.resize or self.crop_size)

    def to_config(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.model_dump().items()}


# -- worker functions (run in-process or in a pool) --------------------------------------
_ILLUM_CACHE: dict[str, np.ndarray] = {}


def _illum(path: str) -> np.ndarray:
    arr = _ILLUM_CACHE.get(path)
    if arr is None:
        if len(_ILLUM_CACHE) >= 4:  # a plate may have a few given functions
            _ILLUM_CACHE.pop(next(iter(_ILLUM_CACHE)))
        arr = _ILLUM_CACHE[path] = np.load(path)
    return arr


def _scan_chunk(task: tuple[list[tuple[Any, tuple[PlaneSource, ...]]], tuple[int, int] | None,
                            np.ndarray | None, tuple[str, ...]]) -> dict[str, Any]:
    """Pass 1 over some fields: block-reduced sum image, pixel samples, errors."""
    items, shape, positions, dtypes = task
    total: np.ndarray | None = None
    samples: list[np.ndarray] = []
    errors: list[tuple[Any, str, str]] = []
    good: list[Any] = []
    for idx, paths in items:
        try:
            img = read_field(paths, expected_shape=shape, dtypes=dtypes)
        except FieldError as exc:
            errors.append((idx, exc.reason, exc.format()))
            continue
        if shape is None:
            shape = img.shape[1:]
        # the mean image is only ever used block-reduced: accumulate it that way
        blocks = block_sum(img, block_factor(*img.shape[1:]))
        total = blocks if total is None else total + blocks
        flat = img.reshape(img.shape[0], -1)
        samples.append(flat[:, positions] if positions is not None else flat[:, ::97])
        good.append(idx)
    return {"sum": total, "samples": samples, "errors": errors, "good": good, "shape": shape}


@dataclass(frozen=True)
class _CropTask:
    index: Any
    sources: tuple[PlaneSource, ...]
    shape: tuple[int, int]
    illum_path: str
    lo: list[float]
    hi: list[float]
    threshold: float | None
    opt: PrepareOptions
    nuclei_channel: int
    dtypes: tuple[str, ...]
    centres: np.ndarray | None = None
    mask: PlaneSource | None = None


def _crop_field(t: _CropTask) -> dict[str, Any]:
    """Pass 2 on one field: correct, scale, find (or take) the cells, crop."""
    try:
        img = read_field(t.sources, expected_shape=t.shape, dtypes=t.dtypes)
        if t.mask is not None:
            labels = read_labels(t.mask)
            if labels.shape != tuple(t.shape):
                raise FieldError(f"label mask is {labels.shape[1]}×{labels.shape[0]} (W×H) but "
                                 f"the field is {t.shape[1]}×{t.shape[0]}", reason="shape",
                                 where=split_source(t.mask)[0])
    except FieldError as exc:
        return {"index": t.index, "error": (exc.reason, exc.format())}
    corrected = img.astype(np.float32) / _illum(t.illum_path)
    scaled = scale_intensity(corrected, np.asarray(t.lo), np.asarray(t.hi))
    if t.mask is not None:
        centres, areas = label_centres(labels)
    elif t.centres is not None:
        centres = np.asarray(t.centres, dtype=np.float64).reshape(-1, 2)
        areas = np.full(len(centres), -1, dtype=np.int64)
    else:
        centres, areas = find_nuclei(scaled[t.nuclei_channel], float(t.threshold or 0.0),
                                     sigma=t.opt.nucleus_sigma, min_area=t.opt.min_area,
                                     max_area=t.opt.max_area)
    crops, keep = crop_cells(scaled, centres, t.opt.crop_size, t.opt.edge)
    if t.opt.resize and t.opt.resize != t.opt.crop_size:
        crops = resize_crops(crops, t.opt.resize)
    return {"index": t.index, "crops": to_uint16(crops), "centres": centres[keep],
            "areas": areas[keep], "found": len(centres)}


# -- the driver ---------------------------------------------------------------------------
@dataclass
class PlateReport:
    plate: str
    fields: int = 0
    fields_used: int = 0
    crops: int = 0
    nuclei: int = 0
    skipped: dict[str, list[str]] = dc_field(default_factory=dict)
    lo: list[float] = dc_field(default_factory=list)
    hi: list[float] = dc_field(default_factory=list)
    threshold: float | None = None

    def skip(self, reason: str, message: str) -> None:
        self.skipped.setdefault(reason, []).append(message)


def prepare_fields(fs: FieldSet, out: str | os.PathLike, options: PrepareOptions, *,
                   workers: int = 1, strict: bool = False, overwrite: bool = False,
                   shard: tuple[int, int] | str | None = None) -> Store:
    """Prepare a :class:`FieldSet` into a crop store (the steps of the module docstring).

    Parameters
    ----------
    fs
        The fields, from an adapter (:func:`prepare_bbbc021`, :func:`prepare_images`).
    out
        The store directory to write (``OUT.partial`` while building).
    options
        Pixel processing: crop size, edge handling, percentiles, nucleus sizes.
    workers
        Processes (1: in this process).
    strict
        Stop at the first missing or unusable field instead of skipping it.
    overwrite
        Replace an existing store at ``out`` (never anything that is not a store).
    shard
        ``(I, N)`` or ``"I/N"``: prepare only the I-th of N contiguous blocks of plates.

    Returns
    -------
    The finished, opened :class:`~bioaug.data.store.Store`.
    """
    if int(workers) < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    shard = parse_shard(shard)
    plate_names = shard_plates(sorted(fs.fields["plate"].astype(str).unique(),
                                      key=plate_sort_key), shard)
    fields = fs.fields[fs.fields["plate"].astype(str).isin(plate_names)]
    if fields.empty:
        raise DataError("no fields to prepare", where=fs.where)
    n_missing = sum(1 for i in fields.index if i in fs.missing)
    if n_missing and strict:
        examples = [fs.missing[i] for i in fields.index if i in fs.missing][:3]
        raise DataError(f"{n_missing} of {len(fields)} fields lack image files, e.g. "
                        f"{'; '.join(examples)}", where=fs.where,
                        hint=(fs.missing_hint + ", or " if fs.missing_hint else "") +
                        "drop --strict to skip them")
    if n_missing == len(fields):
        examples = [fs.missing[i] for i in fields.index][:2]
        raise DataError(f"none of the {len(fields)} fields has all its image files "
                        f"(e.g. {'; '.join(examples)})", where=fs.where, hint=fs.missing_hint)
    illum = options.illum or fs.illum_mode
    if illum == "given" and fs.illum is None:
        raise DataError(f"--illum given: {fs.dataset} comes without illumination functions",
                        where=fs.where, hint="use --illum compute (a smoothed mean image per "
                        "plate and channel) or --illum none")
    config = {"dataset": fs.dataset, **options.to_config(), **fs.config,
              "channels": list(fs.channels), "detection": fs.detection, "plates": plate_names,
              "shard": list(shard) if shard else None, "illum": illum}
    writer = StoreWriter(out, channels=list(fs.channels),
                         image_size=(options.out_size, options.out_size), dtype="uint16",
                         config=config, overwrite=overwrite)
    reports_dir = writer.partial / "plates"
    reports_dir.mkdir(exist_ok=True)
    for stale in writer.partial.glob("illum-*.npy"):  # left by an interrupted run
        stale.unlink()
    by_plate = {str(p): g for p, g in fields.groupby(fields["plate"].astype(str), sort=False)}
    todo = [p for p in plate_names if p not in writer.done_units]
    n_todo = int(sum(len(by_plate[p]) for p in todo))
    runner = Runner(workers)
    bar = progress(total=n_todo, desc="prepare", unit="field")
    try:
        for plate in todo:
            rep = _prepare_plate(fs, plate, by_plate[plate], options, writer, runner, strict, bar)
            atomic_write_json(reports_dir / f"{_safe_name(plate)}.json", rep.__dict__)
            writer.commit(plate)
    finally:
        bar.close()
        runner.close()
        writer.close()
    reports = [json.loads((reports_dir / f"{_safe_name(p)}.json").read_text(encoding="utf-8"))
               for p in plate_names]
    total_crops = sum(r["crops"] for r in reports)
    skipped, first = skip_tally(reports)
    if total_crops == 0:
        raise _no_cells_error(fs, options, reports, skipped, first, len(fields))
    examples: list[str] = []
    for r in reports:
        for msgs in r["skipped"].values():
            examples += msgs[:2]
    report = {
        "fields_listed": len(fields),
        "fields_used": int(sum(r["fields_used"] for r in reports)),
        "fields_skipped": skipped,
        "skipped_examples": examples[:10],
        "nuclei_found": int(sum(r["nuclei"] for r in reports)),
        "crops": int(total_crops),
        "empty_plates": [r["plate"] for r in reports if r["crops"] == 0],
        **fs.report,
    }
    normalization = {
        "illumination": {"mode": illum, "method": ILLUM_METHODS[illum],
                         **({"sigma_fraction_of_field": options.illum_sigma}
                            if illum == "compute" else {})},
        "scaling": {"method": "per plate and channel percentiles to [0, 1], clipped",
                    "percentiles": list(options.percentiles),
                    "per_plate": {r["plate"]: {"lo": r["lo"], "hi": r["hi"]} for r in reports}},
        "store_scale": "uint16 = round(value * 65535)",
    }
    extra = {"dataset": fs.dataset, "report": report, "shard": list(shard) if shard else None,
             **fs.extra}
    shutil.rmtree(reports_dir)  # everything they hold is in the header now
    return writer.finalize(label_column=fs.label_column, normalization=normalization,
                           extra=extra, provenance_extra=fs.provenance)


def skip_tally(reports: Sequence[dict[str, Any]]) -> tuple[dict[str, int], dict[str, str]]:
    """Skipped fields per reason over the plate reports, and the first example of each."""
    counts: dict[str, int] = {}
    first: dict[str, str] = {}
    for r in reports:
        for reason, msgs in r["skipped"].items():
            counts[reason] = counts.get(reason, 0) + len(msgs)
            if msgs:
                first.setdefault(reason, msgs[0])
    return counts, first


def _no_cells_error(fs: FieldSet, options: PrepareOptions, reports: Sequence[dict[str, Any]],
                    skipped: dict[str, int], first: dict[str, str], n_fields: int
                    ) -> DataError:
    """Why a preparation ended with no crops: the skipped fields by reason (one example
    each) first, then what to check about cell finding."""
    used = int(sum(r["fields_used"] for r in reports))
    hint = {"nuclei": f"check the images ({fs.channels[fs.nuclei_channel]} channel) or "
                      "lower --min-area",
            "locations": "check that the locations table matches the fields",
            "masks": "check that the label masks hold objects"}[fs.detection]
    if options.edge == "skip":
        hint += ("; with --edge skip, cells whose crop does not fit in the field are "
                 "dropped: try a smaller --crop-size or --edge reflect")
    if not skipped:
        return DataError("no cells were found in any field; the store was not finalised",
                         where=fs.where, hint=hint)
    tally = "\n".join(f"  {reason}: {n} field{'s' if n > 1 else ''}, e.g. {first[reason]}"
                       for reason, n in sorted(skipped.items(), key=lambda kv: -kv[1]))
    if used == 0:
        hint = "every field was skipped: fix the first reason above" + \
            (f"; {fs.missing_hint}" if "missing" in skipped and fs.missing_hint else "")
    return DataError(f"no cells were found: {sum(skipped.values())} of {n_fields} fields were "
                     f"skipped and {used} used; the store was not finalised; skipped:\n{tally}",
                     where=fs.where, hint=hint)


def _safe_name(plate: str) -> str:
    """A file name for a plate's report (plate names may hold any character)."""
    return hashlib.sha256(plate.encode("utf-8")).hexdigest()[:16]


def _check_centres(fs: FieldSet, idx: Any, shape: tuple[int, int]) -> None:
    """Given cell centres must lie inside the field; the first that does not is an error."""
    c = fs.centres.get(idx) if fs.centres is not None else None
    if c is None or not len(c):
        return
    h, w = shape
    bad = np.flatnonzero((c[:, 0] < 0) | (c[:, 1] < 0) | (c[:, 0] > h - 1) | (c[:, 1] > w - 1))
    if bad.size:
        k = int(bad[0])
        line = int(fs.centre_lines[idx][k]) if fs.centre_lines is not None else None
        row = fs.fields.loc[idx]
        raise DataError(f"{'line ' + str(line) + ': ' if line else ''}cell centre x={c[k, 1]:g}, "
                        f"y={c[k, 0]:g} lies outside the {w}×{h} image of plate "
                        f"{row['plate']} field {idx} ({bad.size} such cells in that field)",
                        where=fs.centres_file or fs.where,
                        hint="coordinates are pixels from the top-left corner (0 … width-1); "
                        "check --x-col/--y-col and that the table matches the images")


def _plate_shape(fs: FieldSet, present: list[Any], dtypes: tuple[str, ...]
                 ) -> tuple[int, tuple[int, int]] | None:
    """Channels and ``(H, W)`` of a plate: the most common among its first readable fields
    (``None`` when none can be read)."""
    shapes: list[tuple[int, ...]] = []
    for i in present:
        try:
            shapes.append(read_field(fs.sources[i], dtypes=dtypes).shape)
        except FieldError:
            continue
        if len(shapes) >= 5:
            break
    if not shapes:
        return None
    n_channels, *hw = max(set(shapes), key=shapes.count)
    return int(n_channels), (int(hw[0]), int(hw[1]))


def _prepare_plate(fs: FieldSet, plate: str, pf: pd.DataFrame, opt: PrepareOptions,
                   writer: StoreWriter, runner: Runner, strict: bool, bar: Any) -> PlateReport:
    rep = PlateReport(plate=plate, fields=len(pf))
    for idx in pf.index:
        if idx in fs.missing:
            rep.skip("missing", f"{fs.missing[idx]}: file is missing")
    present = [i for i in pf.index if i in fs.sources]
    if not present:
        bar.update(len(pf))
        return rep
    dt = tuple(fs.dtypes)
    found = _plate_shape(fs, present, dt)
    if found is None:
        # every field is unusable: let the scan record why
        res = _scan_chunk(([(i, fs.sources[i]) for i in present], None, None, dt))
        for _i, reason, msg in res["errors"]:
            if strict:
                raise DataError(msg)
            rep.skip(reason, msg)
        bar.update(len(pf))
        return rep
    n_channels, shape = found
    for i in present:
        _check_centres(fs, i, shape)
    # pass 1: mean image and pixel samples
    positions = sample_positions(shape)
    per = max(1, min(16, -(-len(present) // max(runner.workers * 2, 1))))
    chunks = [present[s:s + per] for s in range(0, len(present), per)]
    f = block_factor(*shape)
    total = np.zeros((n_channels, shape[0] // f, shape[1] // f))
    samples: list[np.ndarray] = []
    good: list[Any] = []
    tasks = [([(i, fs.sources[i]) for i in ch], shape, positions, dt) for ch in chunks]
    for res in runner.map(_scan_chunk, tasks):
        for _i, reason, msg in res["errors"]:
            if strict:
                raise DataError(msg, hint="drop --strict to skip unusable fields")
            rep.skip(reason, msg)
        if res["sum"] is not None:
            total += res["sum"]
        samples += res["samples"]
        good += res["good"]
    if good:
        mean_blocks = total / (len(good) * f * f)
        funcs, which = _plate_illumination(fs, opt, good, mean_blocks, shape, rep, strict)
        samples = [x for x, i in zip(samples, good, strict=True) if i in which]
        good = [i for i in good if i in which]
    if not good:
        bar.update(len(pf))
        return rep
    ill_at = [u.reshape(u.shape[0], -1)[:, positions] for u in funcs]
    corr = np.concatenate([x / ill_at[which[i]] for x, i in zip(samples, good, strict=True)],
                          axis=1)
    lo = np.percentile(corr, opt.percentiles[0], axis=1)
    hi = np.percentile(corr, opt.percentiles[1], axis=1)
    threshold = None
    if fs.detection == "nuclei":
        k = fs.nuclei_channel
        scaled_nuc = np.clip((corr[k] - lo[k]) / max(hi[k] - lo[k], 1e-6), 0, 1)
        threshold = otsu_threshold(scaled_nuc)
    rep.lo, rep.hi, rep.threshold = lo.tolist(), hi.tolist(), threshold
    # fresh names per run: workers cache the loaded functions by path
    paths = [writer.partial / f"illum-{os.urandom(6).hex()}.npy" for _ in funcs]
    for path, u in zip(paths, funcs, strict=True):
        np.save(path, u)
    # pass 2: crops, streamed into the store in the table's order
    tasks2 = (_CropTask(index=i, sources=fs.sources[i], shape=shape,
                        illum_path=str(paths[which[i]]), lo=lo.tolist(), hi=hi.tolist(),
                        threshold=threshold, opt=opt, nuclei_channel=fs.nuclei_channel,
                        dtypes=dt, centres=(fs.centres.get(i, np.zeros((0, 2)))
                                            if fs.centres is not None else None),
                        mask=fs.masks.get(i) if fs.masks is not None else None)
              for i in good)
    bar.update(len(pf) - len(good))
    try:
        _crop_plate(fs, good, tasks2, writer, runner, rep, strict, bar)
    finally:
        for path in paths:
            path.unlink(missing_ok=True)
    return rep


def _crop_plate(fs: FieldSet, good: list[Any], tasks: Any, writer: StoreWriter,
                runner: Runner, rep: PlateReport, strict: bool, bar: Any) -> None:
    """Pass 2 of a plate: crop its fields and add them to the store in the table's order."""
    columns = fs.obs_columns
    field_obs = fs.obs.loc[good].to_dict("index")
    for res in runner.map(_crop_field, tasks):
        bar.update(1)
        i = res["index"]
        if "error" in res:
            reason, msg = res["error"]
            if strict:
                raise DataError(msg, hint="drop --strict to skip unusable fields")
            rep.skip(reason, msg)
            continue
        rep.fields_used += 1
        rep.nuclei += int(res["found"])
        n = len(res["crops"])
        if n == 0:
            continue
        base = field_obs[i]
        rows = []
        for (cy, cx), a in zip(res["centres"], res["areas"], strict=True):
            cell = {"center_x": round(float(cx), 2), "center_y": round(float(cy), 2),
                    "nucleus_area": int(a) if a >= 0 else None}
            rows.append({c: cell[c] if c in cell else base.get(c) for c in columns})
        writer.add(res["crops"], rows)
        rep.crops += n


def _given_illumination(sources: tuple[PlaneSource, ...], shape: tuple[int, int]
                        ) -> np.ndarray:
    """The given functions of one field's channels as ``(C, H, W)`` float32."""
    planes = []
    for src in sources:
        u = read_illumination(src)
        if u.shape != tuple(shape):
            raise FieldError(f"illumination function is {u.shape[1]}×{u.shape[0]} (W×H) but "
                             f"the plate's fields are {shape[1]}×{shape[0]}",
                             reason="illumination", where=split_source(src)[0])
        planes.append(u)
    return np.stack(planes)


def _plate_illumination(fs: FieldSet, opt: PrepareOptions, good: list[Any],
                        mean_blocks: np.ndarray, shape: tuple[int, int], rep: PlateReport,
                        strict: bool) -> tuple[list[np.ndarray], dict[Any, int]]:
    """The illumination functions of a plate (``(C, H, W)`` each) and, for every field
    that can use one, the index of its own; fields whose given function cannot be read
    are skipped (reason ``illumination``)."""
    mode = opt.illum or fs.illum_mode
    if mode == "compute":
        f = block_factor(*shape)
        return [illumination_from_blocks(mean_blocks, shape, f, opt.illum_sigma)], \
            {i: 0 for i in good}
    if mode == "none":
        return [np.ones((len(fs.channels), *shape), np.float32)], {i: 0 for i in good}
    assert fs.illum is not None
    funcs: list[np.ndarray] = []
    index: dict[tuple[PlaneSource, ...], int | str] = {}
    which: dict[Any, int] = {}
    for i in good:
        key = fs.illum[i]
        if key not in index:
            try:
                funcs.append(_given_illumination(key, shape))
                index[key] = len(funcs) - 1
            except FieldError as exc:
                if strict:
                    raise DataError(exc.format(), hint="drop --strict to skip the fields "
                                    "that use it") from None
                index[key] = exc.format()
        got = index[key]
        if isinstance(got, str):
            rep.skip("illumination", f"line {int(fs.fields.loc[i, 'line'])}: {got}"
                     if "line" in fs.fields.columns else got)
        else:
            which[i] = got
    return funcs, which


# -- adapters -----------------------------------------------------------------------------
def bbbc021_fieldset(root: str | os.PathLike, *, moa_only: bool = False,
                     plates: Sequence[str] | None = None) -> FieldSet:
    """BBBC021's two CSVs and plate folders as a :class:`FieldSet` (obs: :data:`OBS_COLUMNS`)."""
    root = Path(root)
    meta = load_metadata(root)
    fields = bbbc021_select_plates(meta.fields, plates)
    if moa_only:
        fields = fields[fields["moa"].notna()]
    if fields.empty:
        raise DataError("no fields to prepare" + (" with a MoA" if moa_only else ""),
                        where=meta.image_csv)
    loc = locate_fields(root, fields)
    if len(loc.paths) == 0:
        missing = loc.missing_summary()
        raise DataError(f"none of the {len(fields)} fields has its image files under {root} "
                        f"(e.g. {', '.join(missing['examples'][:2])})",
                        hint="expected WeekN/WeekN_PLATE/<file>.tif or WeekN_PLATE/<file>.tif")
    obs = pd.DataFrame({
        "plate": fields["plate"], "well": fields["well"],
        "site": fields["site"].astype(int), "replicate": fields["replicate"].astype(int),
        "batch": fields["batch"], "compound": fields["compound"],
        "concentration": fields["concentration"].astype(float),
        "moa": fields["moa"].where(fields["moa"].notna(), None),
        "image_number": fields["image_number"].astype(int)}, index=fields.index)
    missing = {int(r["index"]): str(r["example"]) for _, r in loc.missing.iterrows()}
    return FieldSet(
        dataset="bbbc021", channels=list(CHANNELS), fields=fields, obs=obs,
        sources={i: tuple(str(p) for p in ps) for i, ps in loc.paths.items()},
        missing=missing, where=meta.image_csv, label_column="moa", columns=list(OBS_COLUMNS),
        nuclei_channel=0, dtypes=("uint16",), config={"moa_only": bool(moa_only)},
        report={"unmatched_moa_rows": len(meta.unmatched_moa)},
        provenance={"source": str(root.resolve()), "image_csv_sha256": sha256_file(meta.image_csv),
                    "moa_csv_sha256": sha256_file(meta.moa_csv)},
        missing_hint="fetch the plates with `bioaug data fetch bbbc021`")


def prepare_bbbc021(root: str | os.PathLike, out: str | os.PathLike, *, crop_size: int = 96,
                    resize: int | None = None, moa_only: bool = False, workers: int = 1,
                    strict: bool = False, overwrite: bool = False,
                    plates: Sequence[str] | None = None, edge: str = "skip",
                    percentiles: tuple[float, float] = (0.1, 99.9), illum_sigma: float = 0.1,
                    min_area: int = 50, max_area: int = 8000,
                    shard: tuple[int, int] | str | None = None,
                    illum: str | None = None) -> Store:
    """Turn a BBBC021 folder (real or twin) into a store of single-cell crops.

    The BBBC021 adapter of :func:`prepare_fields` (see the module docstring for the
    steps). Store channels DAPI, Tubulin, Actin; label column ``moa`` (``DMSO`` for
    controls, empty for treatments without a MoA). Items are ordered by plate, then by the
    image table's order.

    Parameters
    ----------
    root
        The BBBC021 folder: the two metadata CSVs and the plate folders.
    out
        The store directory to write.
    crop_size, resize, edge, percentiles, illum_sigma, min_area, max_area
        See :class:`PrepareOptions`.
    illum
        ``compute`` (default) or ``none``; BBBC021 comes without illumination functions.
    moa_only
        Keep only MoA-annotated treatments and DMSO.
    workers
        Processes (1: in this process).
    strict
        Stop at the first missing or unusable image instead of skipping it.
    overwrite
        Replace an existing store at ``out``.
    plates
        Only these plates (``Week4_27481`` or ``27481``).
    shard
        ``(I, N)`` or ``"I/N"``: only the I-th of N contiguous blocks of plates.

    Returns
    -------
    The finished, opened store.
    """
    opt = PrepareOptions.make(crop_size=crop_size, resize=resize, edge=edge,
                              percentiles=tuple(percentiles), illum_sigma=illum_sigma,
                              min_area=min_area, max_area=max_area, illum=illum)
    if int(workers) < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    parse_shard(shard)
    fs = bbbc021_fieldset(root, moa_only=moa_only, plates=plates)
    return prepare_fields(fs, out, opt, workers=workers, strict=strict, overwrite=overwrite,
                          shard=shard)


def prepare_images(load_data: str | os.PathLike, out: str | os.PathLike, *,
                   channels: Sequence[str] | None = None, root: str | os.PathLike | None = None,
                   label: str | None = None, batch: str | None = None, group: str | None = None,
                   nuclei_channel: str | None = None, locations: str | os.PathLike | None = None,
                   x_col: str | None = None, y_col: str | None = None,
                   masks_column: str | None = None, plates: Sequence[str] | None = None,
                   shard: tuple[int, int] | str | None = None, workers: int = 1,
                   strict: bool = False, overwrite: bool = False, **options: Any) -> Store:
    """Any screen described by a CellProfiler LoadData CSV → a store of single-cell crops.

    The LoadData adapter (:func:`bioaug.data.loaddata.load_data_fieldset`) of
    :func:`prepare_fields`.

    Parameters
    ----------
    load_data
        The CSV: ``FileName_<Channel>`` (and ``PathName_<Channel>``, or ``URL_<Channel>``)
        per channel, optional ``Frame_`` / ``Series_`` / ``ChannelNumber_<Channel>``,
        ``FileName_Illum<Channel>`` illumination functions, ``Metadata_*`` columns
        (``Metadata_Plate``, ``Metadata_Well``, ``Metadata_Site`` …), one row per field
        (see :mod:`bioaug.data.loaddata`).
    out
        The store directory to write.
    channels
        Channels in store order (default: the order of the ``FileName_*`` columns).
    root
        The folder relative paths are resolved against (default: the CSV's folder).
    label, batch, group
        Columns for the label (the store's label column), the batch (stored as ``batch``)
        and the treatment group (stored as ``compound``, what evaluation groups by).
    nuclei_channel
        The channel nuclei are found on (default: DNA / DAPI / Hoechst, else the first).
    locations
        A table of cell centres (CellProfiler ``Nuclei_Location_Center_X/Y`` or
        ``x_col``/``y_col``), matched to fields by ``ImageNumber`` or the metadata columns
        both tables share; replaces nucleus detection.
    masks_column
        A channel name (``FileName_<name>``) or column holding a label mask per field;
        cells are its objects' centroids.
    plates, shard
        Only these plates; only the I-th of N contiguous blocks of plates.
    workers, strict, overwrite
        As for :func:`prepare_fields`.
    **options
        :class:`PrepareOptions` fields (``crop_size``, ``edge``, ``illum`` …).

    Returns
    -------
    The finished, opened store.
    """
    from bioaug.data.loaddata import load_data_fieldset

    opt = PrepareOptions.make(**options)
    if int(workers) < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    parse_shard(shard)
    fs = load_data_fieldset(load_data, root=root, channels=channels, label=label, batch=batch,
                            group=group, nuclei_channel=nuclei_channel, locations=locations,
                            x_col=x_col, y_col=y_col, masks_column=masks_column, plates=plates,
                            illum=opt.illum)
    return prepare_fields(fs, out, opt, workers=workers, strict=strict, overwrite=overwrite,
                          shard=shard)


__all__ = ["CONTROL", "OBS_COLUMNS", "PrepareOptions", "bbbc021_fieldset", "crop_cells",
           "find_nuclei", "illumination_function", "prepare_bbbc021", "prepare_fields",
           "prepare_images", "resize_crops", "scale_intensity"]
