"""The two passes over a plate's fields, one task per field (or chunk of fields).

Tasks are plain data, so :class:`~bioaug.data.parallel.Runner` runs them in this process
or in worker processes alike:

1. :func:`scan_chunk` reads fields once for the block sums of the plate's mean image (the
   illumination function's input) and the raw values at fixed pixel positions (the
   scaling percentiles' input); unreadable fields are reported, not fatal.
2. :func:`crop_field` divides a field by its illumination function, scales it, finds the
   cells (or takes the given centres or mask objects) and cuts their crops as uint16.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bioaug.data.cropping import crop_cells, resize_crops
from bioaug.data.illumination import block_factor, block_sum
from bioaug.data.images import (
    FieldError,
    PlaneSource,
    label_centres,
    read_field,
    read_labels,
    split_source,
)
from bioaug.data.scaling import scale_intensity, to_uint16
from bioaug.data.segmentation import find_nuclei

if TYPE_CHECKING:
    from bioaug.data.prepare import PrepareOptions

_ILLUM_CACHE: dict[str, np.ndarray] = {}


def load_function(path: str) -> np.ndarray:
    """An illumination function saved as ``.npy``; the last few loaded are kept."""
    arr = _ILLUM_CACHE.get(path)
    if arr is None:
        if len(_ILLUM_CACHE) >= 4:  # a plate may have a few given functions
            _ILLUM_CACHE.pop(next(iter(_ILLUM_CACHE)))
        arr = _ILLUM_CACHE[path] = np.load(path)
    return arr


def scan_chunk(task: tuple[list[tuple[Any, tuple[PlaneSource, ...]]], tuple[int, int] | None,
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
class CropTask:
    """Pass 2 on one field: its planes and size, its illumination function (a ``.npy``
    path), the plate's scaling bounds and nuclei threshold, the options, and the given
    cell centres or label mask (else nuclei are found on ``nuclei_channel``)."""

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


def crop_field(t: CropTask) -> dict[str, Any]:
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
    corrected = img.astype(np.float32) / load_function(t.illum_path)
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


__all__ = ["CropTask", "crop_field", "load_function", "scan_chunk"]
