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

The image maths of these steps live in their own modules — :mod:`bioaug.data.illumination`
(2), :mod:`bioaug.data.scaling` (3), :mod:`bioaug.data.segmentation` (4),
:mod:`bioaug.data.cropping` (5) — and the per-field work of the two passes (1; 2–5) in
:mod:`bioaug.data.fieldpass`; this module orchestrates them plate by plate.

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

from bioaug.data.bbbc021 import (
    CHANNELS,
    CONTROL,
    load_metadata,
    locate_fields,
)
from bioaug.data.bbbc021 import select_plates as bbbc021_select_plates
from bioaug.data.cropping import crop_cells, resize_crops
from bioaug.data.fieldpass import CropTask, crop_field, scan_chunk
from bioaug.data.fields import FieldSet, parse_shard, plate_sort_key, shard_plates
from bioaug.data.illumination import (
    ILLUM_METHODS,
    block_factor,
    illumination_from_blocks,
    illumination_function,
)
from bioaug.data.images import (
    FieldError,
    PlaneSource,
    read_field,
    read_illumination,
    split_source,
)
from bioaug.data.parallel import Runner
from bioaug.data.scaling import (
    N_SAMPLES,
    percentile_bounds,
    sample_positions,
    scale_intensity,
)
from bioaug.data.segmentation import find_nuclei, nuclei_threshold
from bioaug.data.store import Store, StoreWriter, check_out_name
from bioaug.errors import ConfigError, DataError, validation_error
from bioaug.io import atomic_write_json, sha256_file
from bioaug.progress import progress

OBS_COLUMNS = ("plate", "well", "site", "replicate", "batch", "compound", "concentration",
               "moa", "center_x", "center_y", "image_number", "nucleus_area")


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


def _select_fields(fs: FieldSet, shard: tuple[int, int] | None, strict: bool
                   ) -> tuple[list[str], pd.DataFrame]:
    """The plates of this shard and their fields; an error when none has its files (or,
    with ``strict``, when any lacks one)."""
    plate_names = shard_plates(sorted(fs.fields["plate"].astype(str).unique(),
                                      key=plate_sort_key), shard)
    fields = fs.fields[fs.fields["plate"].astype(str).isin(plate_names)]
    if fields.empty:
        raise DataError("no fields to prepare", where=fs.where)
    lacking = [fs.missing[i] for i in fields.index if i in fs.missing]
    if lacking and strict:
        raise DataError(f"{len(lacking)} of {len(fields)} fields lack image files, e.g. "
                        f"{'; '.join(lacking[:3])}", where=fs.where,
                        hint=(fs.missing_hint + ", or " if fs.missing_hint else "") +
                        "drop --strict to skip them")
    if len(lacking) == len(fields):
        raise DataError(f"none of the {len(fields)} fields has all its image files "
                        f"(e.g. {'; '.join(lacking[:2])})", where=fs.where, hint=fs.missing_hint)
    return plate_names, fields


def _illum_mode(fs: FieldSet, options: PrepareOptions) -> str:
    """The illumination correction to apply (``given`` needs functions with the data)."""
    illum = options.illum or fs.illum_mode
    if illum == "given" and fs.illum is None:
        raise DataError(f"--illum given: {fs.dataset} comes without illumination functions",
                        where=fs.where, hint="use --illum compute (a smoothed mean image per "
                        "plate and channel) or --illum none")
    return illum


def _open_writer(fs: FieldSet, out: str | os.PathLike, options: PrepareOptions,
                 plate_names: list[str], shard: tuple[int, int] | None, illum: str,
                 overwrite: bool) -> StoreWriter:
    """The store writer (resuming an interrupted build of the same settings), with a
    folder for the plate reports and no illumination files left by an interrupted run."""
    config = {"dataset": fs.dataset, **options.to_config(), **fs.config,
              "channels": list(fs.channels), "detection": fs.detection, "plates": plate_names,
              "shard": list(shard) if shard else None, "illum": illum}
    writer = StoreWriter(out, channels=list(fs.channels),
                         image_size=(options.out_size, options.out_size), dtype="uint16",
                         config=config, overwrite=overwrite)
    (writer.partial / "plates").mkdir(exist_ok=True)
    for stale in writer.partial.glob("illum-*.npy"):
        stale.unlink()
    return writer


def _prepare_plates(fs: FieldSet, fields: pd.DataFrame, plate_names: list[str],
                    options: PrepareOptions, writer: StoreWriter, workers: int,
                    strict: bool) -> list[dict[str, Any]]:
    """Prepare each plate not done yet as one store unit; every plate's report."""
    reports_dir = writer.partial / "plates"
    by_plate = {str(p): g for p, g in fields.groupby(fields["plate"].astype(str), sort=False)}
    todo = [p for p in plate_names if p not in writer.done_units]
    runner = Runner(workers)
    bar = progress(total=int(sum(len(by_plate[p]) for p in todo)), desc="prepare",
                   unit="field")
    try:
        for plate in todo:
            rep = _prepare_plate(fs, plate, by_plate[plate], options, writer, runner, strict, bar)
            atomic_write_json(reports_dir / f"{_safe_name(plate)}.json", rep.__dict__)
            writer.commit(plate)
    finally:
        bar.close()
        runner.close()
        writer.close()
    return [json.loads((reports_dir / f"{_safe_name(p)}.json").read_text(encoding="utf-8"))
            for p in plate_names]


def _summary(fs: FieldSet, n_fields: int, reports: Sequence[dict[str, Any]],
             skipped: dict[str, int]) -> dict[str, Any]:
    """The header's ``report``: fields used and skipped (with examples), nuclei, crops."""
    examples = [m for r in reports for msgs in r["skipped"].values() for m in msgs[:2]]
    return {
        "fields_listed": n_fields,
        "fields_used": int(sum(r["fields_used"] for r in reports)),
        "fields_skipped": skipped,
        "skipped_examples": examples[:10],
        "nuclei_found": int(sum(r["nuclei"] for r in reports)),
        "crops": int(sum(r["crops"] for r in reports)),
        "empty_plates": [r["plate"] for r in reports if r["crops"] == 0],
        **fs.report,
    }


def _normalization(illum: str, options: PrepareOptions,
                   reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The header's ``normalization``: the illumination correction and the scaling bounds
    of every plate."""
    return {
        "illumination": {"mode": illum, "method": ILLUM_METHODS[illum],
                         **({"sigma_fraction_of_field": options.illum_sigma}
                            if illum == "compute" else {})},
        "scaling": {"method": "per plate and channel percentiles to [0, 1], clipped",
                    "percentiles": list(options.percentiles),
                    "per_plate": {r["plate"]: {"lo": r["lo"], "hi": r["hi"]} for r in reports}},
        "store_scale": "uint16 = round(value * 65535)",
    }


def prepare_fields(fs: FieldSet, out: str | os.PathLike, options: PrepareOptions, *,
                   workers: int = 1, strict: bool = False, overwrite: bool = False,
                   shard: tuple[int, int] | str | None = None) -> Store:
    """Prepare a :class:`FieldSet` into a crop store (the steps of the module docstring).

    Parameters
    ----------
    fs
        The fields, from an adapter (:func:`prepare_bbbc021`, :func:`prepare_images`).
    out
        The store directory to write (``OUT.partial`` while building; a name ending in
        ``.partial`` is refused).
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
    Store
        The finished, opened :class:`~bioaug.data.store.Store`.

    Examples
    --------
    The fields of a BBBC021 twin, prepared with options of one's own:

    >>> import tempfile
    >>> from bioaug.data.prepare import PrepareOptions, bbbc021_fieldset, prepare_fields
    >>> from bioaug.data.synth import synth_bbbc021
    >>> tmp = tempfile.mkdtemp()
    >>> twin = synth_bbbc021(f"{tmp}/twin", plates=1, wells_per_plate=2, sites=1,
    ...                      size=(64, 64), cells_per_field=3)
    >>> fields = bbbc021_fieldset(twin)
    >>> fields.channels, len(fields.fields)
    (['DAPI', 'Tubulin', 'Actin'], 2)
    >>> store = prepare_fields(fields, f"{tmp}/crops", PrepareOptions(crop_size=16, resize=8))
    >>> len(store), store.image_size
    (3, (8, 8))
    """
    if int(workers) < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    check_out_name(out)
    shard = parse_shard(shard)
    plate_names, fields = _select_fields(fs, shard, strict)
    illum = _illum_mode(fs, options)
    writer = _open_writer(fs, out, options, plate_names, shard, illum, overwrite)
    reports = _prepare_plates(fs, fields, plate_names, options, writer, workers, strict)
    skipped, first = skip_tally(reports)
    if sum(r["crops"] for r in reports) == 0:
        raise _no_cells_error(fs, options, reports, skipped, first, len(fields))
    extra = {"dataset": fs.dataset, "report": _summary(fs, len(fields), reports, skipped),
             "shard": list(shard) if shard else None, **fs.extra}
    shutil.rmtree(writer.partial / "plates")  # everything they hold is in the header now
    return writer.finalize(label_column=fs.label_column,
                           normalization=_normalization(illum, options, reports),
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


def _record_errors(errors: list[tuple[Any, str, str]], rep: PlateReport, strict: bool) -> None:
    """Skip the unusable fields a scan found (with ``strict``, the first one is fatal)."""
    for _i, reason, msg in errors:
        if strict:
            raise DataError(msg, hint="drop --strict to skip unusable fields")
        rep.skip(reason, msg)


@dataclass
class _PlateScan:
    """Pass 1 over a plate: the block sums of its mean image, and the pixel samples of
    each usable field (``good``, in the table's order)."""

    total: np.ndarray
    samples: list[np.ndarray]
    good: list[Any]


def _scan_plate(fs: FieldSet, present: list[Any], n_channels: int, shape: tuple[int, int],
                positions: np.ndarray, runner: Runner, rep: PlateReport,
                strict: bool) -> _PlateScan:
    """Pass 1: read every field once (in chunks, in parallel) for the mean image and the
    pixel samples; unusable fields are skipped."""
    per = max(1, min(16, -(-len(present) // max(runner.workers * 2, 1))))
    chunks = [present[s:s + per] for s in range(0, len(present), per)]
    f = block_factor(*shape)
    scan = _PlateScan(np.zeros((n_channels, shape[0] // f, shape[1] // f)), [], [])
    tasks = [([(i, fs.sources[i]) for i in ch], shape, positions, tuple(fs.dtypes))
             for ch in chunks]
    for res in runner.map(scan_chunk, tasks):
        _record_errors(res["errors"], rep, strict)
        if res["sum"] is not None:
            scan.total += res["sum"]
        scan.samples += res["samples"]
        scan.good += res["good"]
    return scan


def _plate_bounds(fs: FieldSet, opt: PrepareOptions, scan: _PlateScan, funcs: list[np.ndarray],
                  which: dict[Any, int], positions: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, float | None]:
    """The plate's scaling bounds per channel (percentiles of the corrected samples) and,
    when nuclei are detected, its threshold."""
    ill_at = [u.reshape(u.shape[0], -1)[:, positions] for u in funcs]
    corr = np.concatenate([x / ill_at[which[i]]
                           for x, i in zip(scan.samples, scan.good, strict=True)], axis=1)
    lo, hi = percentile_bounds(corr, opt.percentiles)
    threshold = None
    if fs.detection == "nuclei":
        k = fs.nuclei_channel
        threshold = nuclei_threshold(corr[k], lo[k], hi[k])
    return lo, hi, threshold


def _save_functions(writer: StoreWriter, funcs: list[np.ndarray]) -> list[Path]:
    """The plate's illumination functions as ``.npy`` files the crop workers load."""
    # fresh names per run: workers cache the loaded functions by path
    paths = [writer.partial / f"illum-{os.urandom(6).hex()}.npy" for _ in funcs]
    for path, u in zip(paths, funcs, strict=True):
        np.save(path, u)
    return paths


def _crop_tasks(fs: FieldSet, good: list[Any], shape: tuple[int, int], opt: PrepareOptions,
                paths: list[Path], which: dict[Any, int], rep: PlateReport) -> Any:
    """Pass 2's tasks, one per usable field, in the table's order."""
    return (CropTask(index=i, sources=fs.sources[i], shape=shape,
                      illum_path=str(paths[which[i]]), lo=rep.lo, hi=rep.hi,
                      threshold=rep.threshold, opt=opt, nuclei_channel=fs.nuclei_channel,
                      dtypes=tuple(fs.dtypes),
                      centres=(fs.centres.get(i, np.zeros((0, 2)))
                               if fs.centres is not None else None),
                      mask=fs.masks.get(i) if fs.masks is not None else None)
            for i in good)


def _usable_fields(fs: FieldSet, pf: pd.DataFrame, rep: PlateReport, strict: bool
                   ) -> tuple[list[Any], tuple[int, tuple[int, int]] | None]:
    """The plate's fields whose files exist, and its channels and field size (``None``
    when no field can be read; then why each cannot is recorded)."""
    for idx in pf.index:
        if idx in fs.missing:
            rep.skip("missing", f"{fs.missing[idx]}: file is missing")
    present = [i for i in pf.index if i in fs.sources]
    if not present:
        return present, None
    dt = tuple(fs.dtypes)
    found = _plate_shape(fs, present, dt)
    if found is None:
        # every field is unusable: let the scan record why
        res = scan_chunk(([(i, fs.sources[i]) for i in present], None, None, dt))
        _record_errors(res["errors"], rep, strict)
    return present, found


def _prepare_plate(fs: FieldSet, plate: str, pf: pd.DataFrame, opt: PrepareOptions,
                   writer: StoreWriter, runner: Runner, strict: bool, bar: Any) -> PlateReport:
    """One plate: scan, illumination, scaling bounds, then its crops into the store."""
    rep = PlateReport(plate=plate, fields=len(pf))
    present, found = _usable_fields(fs, pf, rep, strict)
    if found is None:
        bar.update(len(pf))
        return rep
    n_channels, shape = found
    for i in present:
        _check_centres(fs, i, shape)
    positions = sample_positions(shape)
    scan = _scan_plate(fs, present, n_channels, shape, positions, runner, rep, strict)
    if scan.good:
        f = block_factor(*shape)
        mean_blocks = scan.total / (len(scan.good) * f * f)
        funcs, which = _plate_illumination(fs, opt, scan.good, mean_blocks, shape, rep, strict)
        scan.samples = [x for x, i in zip(scan.samples, scan.good, strict=True) if i in which]
        scan.good = [i for i in scan.good if i in which]
    if not scan.good:
        bar.update(len(pf))
        return rep
    lo, hi, rep.threshold = _plate_bounds(fs, opt, scan, funcs, which, positions)
    rep.lo, rep.hi = lo.tolist(), hi.tolist()
    paths = _save_functions(writer, funcs)
    bar.update(len(pf) - len(scan.good))
    try:
        _crop_plate(fs, scan.good, _crop_tasks(fs, scan.good, shape, opt, paths, which, rep),
                    writer, runner, rep, strict, bar)
    finally:
        for path in paths:
            path.unlink(missing_ok=True)
    return rep


def _crop_plate(fs: FieldSet, good: list[Any], tasks: Any, writer: StoreWriter,
                runner: Runner, rep: PlateReport, strict: bool, bar: Any) -> None:
    """Pass 2 of a plate: crop its fields and add them to the store in the table's order."""
    columns = fs.obs_columns
    field_obs = fs.obs.loc[good].to_dict("index")
    for res in runner.map(crop_field, tasks):
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
    Store
        The finished, opened store.

    Examples
    --------
    >>> import tempfile
    >>> from bioaug.data.prepare import prepare_bbbc021
    >>> from bioaug.data.synth import synth_bbbc021
    >>> tmp = tempfile.mkdtemp()
    >>> twin = synth_bbbc021(f"{tmp}/twin", plates=1, wells_per_plate=2, sites=1,
    ...                      size=(64, 64), cells_per_field=3)
    >>> store = prepare_bbbc021(twin, f"{tmp}/crops", crop_size=16)
    >>> len(store), store.channels, store.image_size, store.dtype
    (3, ['DAPI', 'Tubulin', 'Actin'], (16, 16), dtype('uint16'))
    >>> store.obs[["plate", "well", "moa"]].drop_duplicates().values.tolist()
    [['Week3_25421', 'E06', 'Aurora kinase inhibitors']]
    """
    check_out_name(out)
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
    Store
        The finished, opened store.

    Examples
    --------
    A synthetic five-channel Cell Painting screen, described by its LoadData CSV:

    >>> import tempfile
    >>> from bioaug.data.prepare import prepare_images
    >>> from bioaug.data.synth_cellpainting import synth_cellpainting
    >>> tmp = tempfile.mkdtemp()
    >>> screen = synth_cellpainting(f"{tmp}/screen", plates=1, wells_per_plate=2, sites=1,
    ...                             size=(64, 64), cells_per_field=3)
    >>> store = prepare_images(screen / "load_data.csv", f"{tmp}/crops", crop_size=16,
    ...                        label="Metadata_MoA")
    >>> store.channels, store.image_size, store.label_column
    (['DNA', 'ER', 'RNA', 'AGP', 'Mito'], (16, 16), 'moa')
    >>> store.obs[["plate", "well", "moa"]].values.tolist()
    [['CP01', 'A01', 'DMSO'], ['CP01', 'A02', 'ER stress']]
    """
    # 80+ lines only through its documentation (parameters and a running example), not its code.
    from bioaug.data.loaddata import load_data_fieldset

    check_out_name(out)
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


#: Names importable from here; the image maths live in :mod:`bioaug.data.illumination`,
#: :mod:`bioaug.data.scaling`, :mod:`bioaug.data.cropping` and :mod:`bioaug.data.segmentation`.
__all__ = ["CONTROL", "N_SAMPLES", "OBS_COLUMNS", "PrepareOptions", "bbbc021_fieldset",
           "crop_cells", "find_nuclei", "illumination_function", "prepare_bbbc021",
           "prepare_fields", "prepare_images", "resize_crops", "sample_positions",
           "scale_intensity"]
