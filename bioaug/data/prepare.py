"""BBBC021 fields → single-cell crops in a store.

:func:`prepare_bbbc021` streams the dataset plate by plate (one plate's crops and two
``(C, H, W)`` accumulators in memory, whatever the number of plates):

1. **Scan** every field of the plate once: accumulate the per-channel mean image and keep
   the raw values at 4096 fixed random pixel positions per field.
2. **Illumination function** (as CellProfiler's CorrectIlluminationCalculate with a
   smoothed mean, used for BBBC021 by Ljosa et al. 2013 and DeepProfiler): the mean image,
   Gaussian-smoothed with a large sigma (``illum_sigma`` × the field's longer side, done on
   an 8× reduced copy), normalised to mean 1. Fields are divided by it.
3. **Intensity scaling** per plate and channel: the ``percentiles`` (0.1 / 99.9) of the
   corrected pixels (the stored samples divided by the illumination at their positions)
   map to 0 and 1, clipped.
4. **Nuclei** on scaled DAPI: Gaussian smoothing (σ = 2 px), one Otsu threshold per plate
   (stable on fields with few cells), connected components, touching nuclei split by a
   distance-transform watershed, objects smaller than ``min_area`` or larger than
   ``max_area`` pixels dropped; centres are intensity-weighted centroids.
5. **Crops** of ``crop_size`` centred on each nucleus. Edge handling (``edge``): ``"skip"``
   (default: a cell whose crop would leave the field is dropped, so no crop holds invented
   pixels) or ``"reflect"`` (mirror-pad the field). Optional ``resize`` (area averaging
   when shrinking). Stored as uint16 (``round(x · 65535)``; [0, 1] floats keep 16-bit
   precision, half the size of float32, and uint8 would lose the dim end of the range).

Each plate is one store unit: an interrupted run resumes at the first unfinished plate,
never duplicating crops. Unusable fields (missing / corrupt / wrong dtype or shape, a
missing channel) are skipped and reported; with ``strict`` the first one is fatal.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from bioaug.data.bbbc021 import (
    CHANNELS,
    CONTROL,
    FieldError,
    Located,
    load_metadata,
    locate_fields,
    plate_sort_key,
    read_field,
    select_plates,
)
from bioaug.data.parallel import Runner
from bioaug.data.store import Store, StoreWriter
from bioaug.errors import ConfigError, DataError
from bioaug.io import atomic_write_json, sha256_file
from bioaug.progress import progress

N_SAMPLES = 4096
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


def otsu_threshold(values: np.ndarray) -> float:
    from skimage.filters import threshold_otsu

    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0 or np.ptp(values) == 0:
        return float(values.max(initial=0.0)) + 1e-6
    return float(threshold_otsu(values))


def find_nuclei(dapi: np.ndarray, threshold: float, *, sigma: float = 2.0, min_area: int = 50,
                max_area: int = 4000, split: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Nuclei of a scaled DAPI image: centres ``(n, 2)`` as (y, x) floats and areas ``(n,)``.

    With ``split``, objects larger than 1.6× the median nucleus are split by a watershed on
    their distance transform (touching nuclei), seeded by its local maxima.
    """
    sm = ndimage.gaussian_filter(dapi.astype(np.float32), sigma) if sigma > 0 else dapi
    mask = sm > threshold
    labels, n = ndimage.label(mask)
    if n == 0:
        return np.zeros((0, 2)), np.zeros(0, dtype=np.int64)
    if split:
        labels, n = _split_touching(labels, n, min_area, max_area)
    flat = labels.ravel()
    area = np.bincount(flat, minlength=n + 1)
    weight = sm.ravel().astype(np.float64)
    wsum = np.bincount(flat, weights=weight, minlength=n + 1)
    ys, xs = np.indices(labels.shape)
    cy = np.bincount(flat, weights=weight * ys.ravel(), minlength=n + 1) / np.maximum(wsum, 1e-12)
    cx = np.bincount(flat, weights=weight * xs.ravel(), minlength=n + 1) / np.maximum(wsum, 1e-12)
    keep = np.flatnonzero((area >= min_area) & (area <= max_area))
    keep = keep[keep > 0]
    return np.stack([cy[keep], cx[keep]], 1), area[keep]


def _split_touching(labels: np.ndarray, n: int, min_area: int, max_area: int,
                    factor: float = 1.6) -> tuple[np.ndarray, int]:
    """Split over-sized objects at the necks of their distance transform (watershed)."""
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    area = np.bincount(labels.ravel(), minlength=n + 1)
    ok = area[1:][(area[1:] >= min_area) & (area[1:] <= max_area)]
    if ok.size == 0:
        return labels, n
    median = float(np.median(ok))
    radius = np.sqrt(median / np.pi)
    big = np.flatnonzero(area > max(factor * median, 2 * min_area))
    big = big[big > 0]
    if big.size == 0:
        return labels, n
    labels = labels.copy()
    slices = ndimage.find_objects(labels)
    for lab in big:
        sl = slices[lab - 1]
        sub = labels[sl] == lab
        dist = ndimage.distance_transform_edt(sub)
        peaks = peak_local_max(dist, min_distance=max(2, int(0.7 * radius)),
                               threshold_abs=0.4 * radius, labels=sub.astype(np.int32),
                               exclude_border=False)
        if len(peaks) < 2:
            continue
        markers = np.zeros(sub.shape, dtype=np.int32)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
        pieces = watershed(-dist, markers, mask=sub)
        region = labels[sl]
        for k in range(2, len(peaks) + 1):  # piece 1 keeps the old label
            n += 1
            region[pieces == k] = n
    return labels, n


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


# -- options ----------------------------------------------------------------------------
@dataclass(frozen=True)
class PrepareOptions:
    crop_size: int = 96
    resize: int | None = None
    moa_only: bool = False
    edge: str = "skip"
    percentiles: tuple[float, float] = (0.1, 99.9)
    illum_sigma: float = 0.1
    nucleus_sigma: float = 2.0
    min_area: int = 50
    max_area: int = 4000

    def check(self) -> None:
        if self.crop_size < 8:
            raise ConfigError(f"crop_size must be at least 8, got {self.crop_size}")
        if self.resize is not None and self.resize < 4:
            raise ConfigError(f"resize must be at least 4, got {self.resize}")
        if self.edge not in EDGE_MODES:
            raise ConfigError(f"unknown edge mode '{self.edge}'; use one of "
                              f"{', '.join(EDGE_MODES)}")
        lo, hi = self.percentiles
        if not 0 <= lo < hi <= 100:
            raise ConfigError(f"percentiles must satisfy 0 ≤ low < high ≤ 100, got {lo}, {hi}")
        if self.min_area < 1 or self.max_area < self.min_area:
            raise ConfigError("need 1 ≤ min_area ≤ max_area")

    @property
    def out_size(self) -> int:
        return int(self.resize or self.crop_size)


# -- worker functions (run in-process or in a pool) --------------------------------------
_ILLUM_CACHE: dict[str, np.ndarray] = {}


def _illum(path: str) -> np.ndarray:
    arr = _ILLUM_CACHE.get(path)
    if arr is None:
        _ILLUM_CACHE.clear()
        arr = _ILLUM_CACHE[path] = np.load(path)
    return arr


def _scan_chunk(task: tuple[list[tuple[int, tuple[str, ...]]], tuple[int, int] | None,
                            np.ndarray | None]) -> dict[str, Any]:
    """Pass 1 over some fields: block-reduced sum image, pixel samples, errors."""
    items, shape, positions = task
    total: np.ndarray | None = None
    samples: list[np.ndarray] = []
    errors: list[tuple[int, str, str]] = []
    good: list[int] = []
    for idx, paths in items:
        try:
            img = read_field(paths, expected_shape=shape)
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


def _crop_field(task: tuple[int, tuple[str, ...], tuple[int, int], str, list[float],
                            list[float], float, PrepareOptions]) -> dict[str, Any]:
    """Pass 2 on one field: correct, scale, find nuclei, crop."""
    idx, paths, shape, illum_path, lo, hi, threshold, opt = task
    try:
        img = read_field(paths, expected_shape=shape)
    except FieldError as exc:
        return {"index": idx, "error": (exc.reason, exc.format())}
    corrected = img.astype(np.float32) / _illum(illum_path)
    scaled = scale_intensity(corrected, np.asarray(lo), np.asarray(hi))
    centres, areas = find_nuclei(scaled[0], threshold, sigma=opt.nucleus_sigma,
                                 min_area=opt.min_area, max_area=opt.max_area)
    crops, keep = crop_cells(scaled, centres, opt.crop_size, opt.edge)
    if opt.resize and opt.resize != opt.crop_size:
        crops = resize_crops(crops, opt.resize)
    return {"index": idx, "crops": to_uint16(crops), "centres": centres[keep],
            "areas": areas[keep], "found": len(centres)}


# -- the driver ---------------------------------------------------------------------------
@dataclass
class PlateReport:
    plate: str
    fields: int = 0
    fields_used: int = 0
    crops: int = 0
    nuclei: int = 0
    skipped: dict[str, list[str]] = field(default_factory=dict)
    lo: list[float] = field(default_factory=list)
    hi: list[float] = field(default_factory=list)
    threshold: float | None = None

    def skip(self, reason: str, message: str) -> None:
        self.skipped.setdefault(reason, []).append(message)


def _field_paths(loc: Located, idx: int) -> tuple[str, ...]:
    return tuple(str(p) for p in loc.paths[idx])


def prepare_bbbc021(root: str | os.PathLike, out: str | os.PathLike, *, crop_size: int = 96,
                    resize: int | None = None, moa_only: bool = False, workers: int = 1,
                    strict: bool = False, overwrite: bool = False,
                    plates: Sequence[str] | None = None, edge: str = "skip",
                    percentiles: tuple[float, float] = (0.1, 99.9), illum_sigma: float = 0.1,
                    min_area: int = 50, max_area: int = 4000,
                    stop_after: int | None = None) -> Store:
    """Turn a BBBC021 folder (real or twin) into a store of single-cell crops.

    See the module docstring for the steps. Store channels DAPI, Tubulin, Actin; label
    column ``moa`` (``DMSO`` for controls, empty for treatments without a MoA). Items are
    ordered by plate, then by the image table's order. ``stop_after`` stops after that many
    plates without finalising (to exercise resumption).
    """
    opt = PrepareOptions(crop_size=int(crop_size), resize=int(resize) if resize is not None else None,
                         moa_only=bool(moa_only), edge=edge,
                         percentiles=(float(percentiles[0]), float(percentiles[1])),
                         illum_sigma=float(illum_sigma), min_area=int(min_area),
                         max_area=int(max_area))
    opt.check()
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    root = Path(root)
    meta = load_metadata(root)
    fields = select_plates(meta.fields, plates)
    if opt.moa_only:
        fields = fields[fields["moa"].notna()]
    if fields.empty:
        raise DataError("no fields to prepare" + (" with a MoA" if opt.moa_only else ""),
                        where=meta.image_csv)
    loc = locate_fields(root, fields)
    missing = loc.missing_summary()
    if missing["fields_missing"] and strict:
        raise DataError(f"{missing['fields_missing']} of {len(fields)} fields lack image files "
                        f"({missing['files_missing']} files), e.g. "
                        f"{', '.join(missing['examples'][:3])}", where=root,
                        hint="fetch the plates with `bioaug data fetch bbbc021`, or drop "
                        "--strict to skip them")
    if len(loc.paths) == 0:
        raise DataError(f"none of the {len(fields)} fields has its image files under {root} "
                        f"(e.g. {', '.join(missing['examples'][:2])})",
                        hint="expected WeekN/WeekN_PLATE/<file>.tif or WeekN_PLATE/<file>.tif")
    config = {"dataset": "bbbc021", **{k: (list(v) if isinstance(v, tuple) else v)
                                       for k, v in opt.__dict__.items()},
              "plates": sorted(fields["plate"].unique(), key=plate_sort_key)}
    plate_names = config["plates"]
    by_plate = {p: g for p, g in fields.groupby("plate", sort=False)}
    writer = StoreWriter(out, channels=list(CHANNELS), image_size=(opt.out_size, opt.out_size),
                         dtype="uint16", config=config, overwrite=overwrite)
    reports_dir = writer.partial / "plates"
    reports_dir.mkdir(exist_ok=True)
    for stale in writer.partial.glob("illum-*.npy"):  # left by an interrupted run
        stale.unlink()
    todo = [p for p in plate_names if p not in writer.done_units]
    n_todo = int(sum(len(by_plate[p]) for p in todo))
    runner = Runner(workers)
    bar = progress(total=n_todo, desc="prepare", unit="field")
    try:
        for k, plate in enumerate(todo):
            if stop_after is not None and k >= stop_after:
                writer.close()
                return None  # type: ignore[return-value]
            rep = _prepare_plate(plate, by_plate[plate], loc, opt, writer, runner, strict, bar)
            atomic_write_json(reports_dir / f"{plate}.json", rep.__dict__)
            writer.commit(plate)
    finally:
        bar.close()
        runner.close()
    reports = [json.loads((reports_dir / f"{p}.json").read_text()) for p in plate_names]
    total_crops = sum(r["crops"] for r in reports)
    if total_crops == 0:
        writer.close()
        hint = "check the images (DAPI channel) or lower --min-area"
        if opt.edge == "skip":
            hint += ("; with --edge skip, cells whose crop does not fit in the field are "
                     "dropped: try a smaller --crop-size or --edge reflect")
        raise DataError("no cells were found in any field; the store was not finalised",
                        where=root, hint=hint)
    skipped: dict[str, int] = {}
    examples: list[str] = []
    for r in reports:
        for reason, msgs in r["skipped"].items():
            skipped[reason] = skipped.get(reason, 0) + len(msgs)
            examples += msgs[:2]
    report = {
        "fields_listed": len(fields),
        "fields_used": int(sum(r["fields_used"] for r in reports)),
        "fields_skipped": skipped,
        "skipped_examples": examples[:10],
        "nuclei_found": int(sum(r["nuclei"] for r in reports)),
        "crops": int(total_crops),
        "empty_plates": [r["plate"] for r in reports if r["crops"] == 0],
        "unmatched_moa_rows": len(meta.unmatched_moa),
    }
    normalization = {
        "illumination": {"method": "smoothed mean image per plate and channel, normalised "
                                   "to mean 1; fields divided by it",
                         "sigma_fraction_of_field": opt.illum_sigma},
        "scaling": {"method": "per plate and channel percentiles to [0, 1], clipped",
                    "percentiles": list(opt.percentiles),
                    "per_plate": {r["plate"]: {"lo": r["lo"], "hi": r["hi"]} for r in reports}},
        "store_scale": "uint16 = round(value * 65535)",
    }
    writer_extra = {"dataset": "bbbc021", "report": report}
    shutil.rmtree(reports_dir)  # everything they hold is in the header now
    store = writer.finalize(
        label_column="moa", normalization=normalization, extra=writer_extra,
        provenance_extra={"source": str(root),
                          "image_csv_sha256": sha256_file(meta.image_csv),
                          "moa_csv_sha256": sha256_file(meta.moa_csv)})
    return store


def _prepare_plate(plate: str, pf: pd.DataFrame, loc: Located, opt: PrepareOptions,
                   writer: StoreWriter, runner: Runner, strict: bool, bar: Any) -> PlateReport:
    rep = PlateReport(plate=plate, fields=len(pf))
    for idx in pf.index:
        if idx not in loc.paths:
            m = loc.missing[loc.missing["index"] == idx]
            msg = m["example"].iloc[0] if len(m) else f"{plate} field {idx}"
            rep.skip("missing", f"{msg}: file is missing")
    present = [i for i in pf.index if i in loc.paths]
    if not present:
        bar.update(len(pf))
        return rep
    # pass 1: mean image and pixel samples
    first_shape = None
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(plate.encode()).digest()[:8], 'little'))
    positions = None
    chunks: list[list[int]] = []
    per = max(1, min(16, -(-len(present) // max(runner.workers * 2, 1))))
    for s in range(0, len(present), per):
        chunks.append(present[s:s + per])
    # the most common shape among the first readable fields fixes the plate's shape
    shapes: list[tuple[int, ...]] = []
    for i in present:
        try:
            shapes.append(read_field(_field_paths(loc, i)).shape)
        except FieldError:
            continue
        if len(shapes) >= 5:
            break
    if not shapes:
        # every field is unusable: let the scan record why
        res = _scan_chunk(([(i, _field_paths(loc, i)) for i in present], None, None))
        for _i, reason, msg in res["errors"]:
            if strict:
                raise DataError(msg)
            rep.skip(reason, msg)
        bar.update(len(pf))
        return rep
    n_channels, *hw = max(set(shapes), key=shapes.count)
    first_shape = (int(hw[0]), int(hw[1]))
    npx = first_shape[0] * first_shape[1]
    positions = np.sort(rng.choice(npx, size=min(N_SAMPLES, npx), replace=False))
    f = block_factor(*first_shape)
    total = np.zeros((n_channels, first_shape[0] // f, first_shape[1] // f))
    samples: list[np.ndarray] = []
    good: list[int] = []
    tasks = [([(i, _field_paths(loc, i)) for i in ch], first_shape, positions) for ch in chunks]
    for res in runner.map(_scan_chunk, tasks):
        for _i, reason, msg in res["errors"]:
            if strict:
                raise DataError(msg, hint="drop --strict to skip unusable fields")
            rep.skip(reason, msg)
        if res["sum"] is not None:
            total += res["sum"]
        samples += res["samples"]
        good += res["good"]
    if not good:
        bar.update(len(pf))
        return rep
    illum = illumination_from_blocks(total / (len(good) * f * f), first_shape, f,
                                     opt.illum_sigma)
    ill_at = illum.reshape(illum.shape[0], -1)[:, positions]
    corr = np.concatenate([s / ill_at for s in samples], axis=1)
    lo = np.percentile(corr, opt.percentiles[0], axis=1)
    hi = np.percentile(corr, opt.percentiles[1], axis=1)
    scaled_dapi = np.clip((corr[0] - lo[0]) / max(hi[0] - lo[0], 1e-6), 0, 1)
    threshold = otsu_threshold(scaled_dapi)
    rep.lo, rep.hi, rep.threshold = lo.tolist(), hi.tolist(), threshold
    # a fresh name per run: workers cache the loaded function by path
    illum_path = writer.partial / f"illum-{plate}-{os.urandom(4).hex()}.npy"
    np.save(illum_path, illum)
    # pass 2: crops, streamed into the store in the image table's order
    tasks2 = [(i, _field_paths(loc, i), first_shape, str(illum_path), lo.tolist(), hi.tolist(),
               threshold, opt) for i in good]
    bar.update(len(pf) - len(good))
    for res in runner.map(_crop_field, tasks2):
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
        row = pf.loc[i]
        moa = row["moa"] if isinstance(row["moa"], str) else None
        rows = [{
            "plate": plate, "well": row["well"], "site": int(row["site"]),
            "replicate": int(row["replicate"]), "batch": row["batch"],
            "compound": row["compound"], "concentration": float(row["concentration"]),
            "moa": moa, "center_x": round(float(cx), 2), "center_y": round(float(cy), 2),
            "image_number": int(row["image_number"]), "nucleus_area": int(a),
        } for (cy, cx), a in zip(res["centres"], res["areas"], strict=True)]
        writer.add(res["crops"], rows)
        rep.crops += n
    illum_path.unlink(missing_ok=True)
    return rep


__all__ = ["CONTROL", "OBS_COLUMNS", "PrepareOptions", "crop_cells", "find_nuclei",
           "illumination_function", "prepare_bbbc021", "resize_crops", "scale_intensity"]
