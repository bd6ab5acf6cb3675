"""Reading microscope image planes: TIFF / OME-TIFF, PNG and OME-Zarr.

A *plane source* is a file path, optionally with a plane index (``(path, frame)``): the
frame of a multi-page TIFF or OME-TIFF, or the channel of an OME-Zarr image; and
optionally the series too (``(path, frame, series)``: an image of a multi-series TIFF /
OME-TIFF). Readers are a registry keyed by file suffix (:data:`READERS`); every reader
returns one 2-D array in the file's own dtype. :func:`read_field` stacks one plane per channel into ``(C, H, W)``
and raises :class:`FieldError` — with a short ``reason`` (missing, corrupt, dtype, shape)
— for a field that cannot be used, so a preparation can skip it and report why.

OME-Zarr (``*.zarr``, needs the ``zarr`` package: ``pip install bioaug[ome-zarr]``) is read
lazily: only the chunks of the requested plane of the full-resolution level are loaded.

Illumination functions (CellProfiler's CorrectIlluminationCalculate output: a 2-D float
``.npy``, or a TIFF) are read by :func:`read_illumination` (registry
:data:`ILLUM_READERS`) as float32, checked finite and positive.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bioaug.data.segmentation import label_objects
from bioaug.errors import DataError

#: A plane: a path, or a path and a frame / channel index inside the file (and a series).
PlaneSource = str | os.PathLike | tuple[str, int | None] | tuple[str, int | None, int | None]
#: Pixel types a field may have (every channel of one field must share one).
FIELD_DTYPES: tuple[str, ...] = ("uint8", "uint16")


class FieldError(DataError):
    """One field cannot be used; ``reason`` is one of missing, corrupt, dtype, shape,
    illumination (its given illumination function cannot be used)."""

    def __init__(self, message: str, *, reason: str, where: str | Path | None = None) -> None:
        self.reason = reason
        super().__init__(message, where=where)

    def __reduce__(self) -> tuple[Any, ...]:  # survives the trip back from a worker process
        return (_field_error, (self.message, self.reason, self.where))


def _field_error(message: str, reason: str, where: str | None) -> FieldError:
    return FieldError(message, reason=reason, where=where)


def _squeeze_2d(arr: np.ndarray, where: Path, kind: str) -> np.ndarray:
    if arr.size == 0:
        raise FieldError(f"cannot decode {kind} (no image data)", reason="corrupt", where=where)
    if arr.ndim > 2:
        arr = arr.reshape([s for s in arr.shape if s != 1] or [1, 1])
    if arr.ndim != 2:
        raise FieldError(f"expected a 2-D image, got shape {list(arr.shape)}; name one plane "
                         "with a Frame_<channel> column", reason="shape", where=where)
    return arr


def read_tiff_plane(path: Path, frame: int | None = None, series: int | None = None
                    ) -> np.ndarray:
    """One plane of a TIFF or OME-TIFF (``frame``: page / plane index inside ``series``,
    default the only one; ``series``: the image of a multi-series file, default the first)."""
    import tifffile

    log = logging.getLogger("tifffile")
    level = log.level
    log.setLevel(logging.ERROR)  # damaged files are reported by the caller, not logged
    try:
        if frame is None and not series:
            arr = tifffile.imread(path)
        else:
            with tifffile.TiffFile(path) as tif:
                s = series or 0
                if not 0 <= s < len(tif.series):
                    raise FieldError(f"series {s} does not exist (the file has "
                                     f"{len(tif.series)})", reason="shape", where=path)
                data = tif.series[s].asarray()
                if frame is None:
                    return _squeeze_2d(np.asarray(data), path, "TIFF")
                planes = data.reshape(-1, *data.shape[-2:])
                if not 0 <= frame < len(planes):
                    raise FieldError(f"frame {frame} does not exist (the file has "
                                     f"{len(planes)} planes)", reason="shape", where=path)
                arr = planes[frame]
    except FieldError:
        raise
    except Exception as exc:  # tifffile raises many types for damaged files
        raise FieldError(f"cannot decode TIFF ({type(exc).__name__}: {exc})", reason="corrupt",
                         where=path) from exc
    finally:
        log.setLevel(level)
    return _squeeze_2d(np.asarray(arr), path, "TIFF")


def _one_series(path: Path, series: int | None, kind: str) -> None:
    if series:
        raise FieldError(f"series {series} does not exist ({kind} holds one series; "
                         "Series_<channel> counts from 0)", reason="shape", where=path)


def read_png_plane(path: Path, frame: int | None = None, series: int | None = None
                   ) -> np.ndarray:
    """A grey PNG (8 or 16 bit); ``frame`` picks a colour plane of an RGB(A) PNG."""
    import cv2

    _one_series(path, series, "a PNG file")
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise FieldError("cannot decode PNG", reason="corrupt", where=path)
    if arr.ndim == 3:
        if frame is None:
            raise FieldError(f"PNG has {arr.shape[2]} colour planes; name one with a "
                             "Frame_<channel> column", reason="shape", where=path)
        arr = arr[:, :, ::-1][:, :, frame] if arr.shape[2] >= 3 else arr[:, :, frame]
    return _squeeze_2d(arr, path, "PNG")


def read_zarr_plane(path: Path, frame: int | None = None, series: int | None = None
                    ) -> np.ndarray:
    """One channel (``frame``) of an OME-Zarr image, full resolution, read lazily.

    ``path`` is the image group (with ``.zattrs`` multiscales) or an array inside it. Axes
    follow OME-NGFF (``t c z y x``, any subset ending in ``y x``); t and z take index 0.
    """
    try:
        import zarr
    except ImportError as exc:  # pragma: no cover - zarr ships with the ome-zarr extra
        raise DataError("reading OME-Zarr needs the zarr package",
                        hint="pip install 'bioaug[ome-zarr]'") from exc
    try:
        node = zarr.open(str(path), mode="r")
        axes: list[str] | None = None
        if not hasattr(node, "shape"):  # a group: take the first (full-resolution) level
            attrs = dict(node.attrs)
            ms = (attrs.get("ome") or attrs).get("multiscales") or [{}]
            level = (ms[0].get("datasets") or [{"path": "0"}])[0]["path"]
            axes = [a["name"] if isinstance(a, dict) else str(a) for a in ms[0].get("axes", [])]
            node = node[level]
        shape = node.shape
        axes = axes if axes and len(axes) == len(shape) else \
            ["t", "c", "z", "y", "x"][-len(shape):]
        index: list[Any] = []
        for ax, n in zip(axes, shape, strict=True):
            if ax in ("y", "x"):
                index.append(slice(None))
            elif ax == "c":
                c = 0 if frame is None else frame
                if not 0 <= c < n:
                    raise FieldError(f"channel {c} does not exist (the image has {n})",
                                     reason="shape", where=path)
                index.append(c)
            else:
                index.append(0)
        arr = np.asarray(node[tuple(index)])
    except FieldError:
        raise
    except Exception as exc:
        raise FieldError(f"cannot read OME-Zarr ({type(exc).__name__}: {exc})",
                         reason="corrupt", where=path) from exc
    return _squeeze_2d(arr, path, "OME-Zarr")


#: A reader: ``(path, frame, series)`` → one 2-D plane in the file's dtype.
Reader = Callable[[Path, int | None, int | None], np.ndarray]
#: Image readers by file suffix (lower case). One line per format.
READERS: dict[str, Reader] = {
    ".tif": read_tiff_plane,
    ".tiff": read_tiff_plane,
    ".png": read_png_plane,
    ".zarr": read_zarr_plane,
}


def reader_for(path: Path) -> Reader | None:
    """The reader of ``path``: by its suffix, or by an enclosing ``*.zarr`` folder."""
    fn = READERS.get(path.suffix.lower())
    if fn is not None:
        return fn
    for parent in path.parents:
        if parent.suffix.lower() == ".zarr":
            return READERS[".zarr"]
    return None


def source_parts(source: PlaneSource) -> tuple[Path, int | None, int | None]:
    """``(path, frame, series)`` of a plane source (``None`` where not given)."""
    if isinstance(source, tuple):
        frame = None if source[1] is None else int(source[1])
        series = source[2] if len(source) > 2 else None  # type: ignore[misc]
        return Path(source[0]), frame, (None if series is None else int(series))
    return Path(source), None, None


def split_source(source: PlaneSource) -> tuple[Path, int | None]:
    path, frame, _ = source_parts(source)
    return path, frame


def read_plane(source: PlaneSource) -> np.ndarray:
    """One 2-D plane, dtype preserved; :class:`FieldError` when it cannot be used."""
    path, frame, series = source_parts(source)
    fn = reader_for(path)
    if fn is None:
        raise FieldError(f"unsupported image format '{path.suffix}'; readable: "
                         f"{', '.join(sorted(READERS))}", reason="corrupt", where=path)
    if not path.exists():
        raise FieldError("file is missing", reason="missing", where=path)
    return fn(path, frame, series)


def read_npy_illumination(path: Path) -> np.ndarray:
    """A ``.npy`` illumination function (CellProfiler 3+ saves them this way)."""
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:  # a damaged or pickled file
        raise FieldError(f"cannot read the illumination function ({type(exc).__name__}: "
                         f"{exc})", reason="illumination", where=path) from exc


def read_tiff_illumination(path: Path) -> np.ndarray:
    """A TIFF illumination function (one float or integer plane)."""
    try:
        return read_tiff_plane(path)
    except FieldError as exc:
        raise FieldError(exc.message, reason="illumination", where=path) from exc


#: Illumination-function readers by file suffix (lower case).
ILLUM_READERS: dict[str, Callable[[Path], np.ndarray]] = {
    ".npy": read_npy_illumination,
    ".tif": read_tiff_illumination,
    ".tiff": read_tiff_illumination,
}


def read_illumination(source: PlaneSource) -> np.ndarray:
    """A given illumination function: 2-D float32, finite and positive everywhere.

    Fields are divided by it (as CellProfiler's CorrectIlluminationApply does); its overall
    scale does not matter, the percentile scaling that follows removes it. Raises
    :class:`FieldError` with ``reason`` ``illumination`` (or ``missing``).
    """
    path = source_parts(source)[0]
    fn = ILLUM_READERS.get(path.suffix.lower())
    if fn is None:
        raise FieldError(f"unsupported illumination-function format '{path.suffix}'; "
                         f"readable: {', '.join(sorted(ILLUM_READERS))}",
                         reason="illumination", where=path)
    if not path.exists():
        raise FieldError("illumination function is missing", reason="missing", where=path)
    arr = np.asarray(fn(path))
    if arr.ndim > 2:
        arr = arr.reshape([s for s in arr.shape if s != 1] or [1, 1])
    if arr.ndim != 2 or arr.size == 0 or arr.dtype.kind not in "fiu":
        raise FieldError(f"an illumination function must be one 2-D plane of numbers, got "
                         f"{arr.dtype} of shape {list(arr.shape)}", reason="illumination",
                         where=path)
    arr = arr.astype(np.float32)
    bad = int(np.count_nonzero(~np.isfinite(arr) | (arr <= 0)))
    if bad:
        raise FieldError(f"the illumination function has {bad} pixel(s) that are not finite "
                         "and positive; fields are divided by it", reason="illumination",
                         where=path)
    return arr


def read_field(sources: Sequence[PlaneSource],
               expected_shape: tuple[int, int] | None = None,
               dtypes: Sequence[str] = FIELD_DTYPES) -> np.ndarray:
    """Read one field's channels into ``(C, H, W)``, the pixel type preserved.

    Every channel must have a pixel type in ``dtypes``, the same one for the whole field,
    and the same shape (``expected_shape`` when given: the plate's). Raises
    :class:`FieldError` with ``reason`` missing / corrupt / dtype / shape.
    """
    planes = []
    for s in sources:
        a = read_plane(s)
        if str(a.dtype) not in dtypes:
            raise FieldError(f"pixel type {a.dtype}, expected {' or '.join(dtypes)}",
                             reason="dtype", where=split_source(s)[0])
        if planes and a.dtype != planes[0].dtype:
            raise FieldError(f"pixel type {a.dtype} but the field's first channel is "
                             f"{planes[0].dtype}", reason="dtype", where=split_source(s)[0])
        planes.append(a)
    ref = tuple(expected_shape) if expected_shape is not None else planes[0].shape
    for s, a in zip(sources, planes, strict=True):
        if a.shape != ref:
            other = "the plate's other fields" if expected_shape is not None else \
                "the field's first channel"
            raise FieldError(f"image is {a.shape[1]}×{a.shape[0]} (W×H) but {other} are "
                             f"{ref[1]}×{ref[0]}", reason="shape", where=split_source(s)[0])
    return np.stack(planes)


def read_labels(source: PlaneSource) -> np.ndarray:
    """A mask's objects as int64 labels (0 = background, k > 0 = object k).

    A label image (0 and several object values) keeps its labels; a binary mask (one
    non-zero value: 0/255 as CellProfiler's ConvertObjectsToImage writes in "Binary" mode,
    0/1, boolean) is labelled by 8-connected components, so objects that touch in it
    become one (see :func:`bioaug.data.segmentation.label_objects`).
    """
    a = read_plane(source)
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.bool_)):
        raise FieldError(f"a label mask must hold integers, got {a.dtype}", reason="dtype",
                         where=split_source(source)[0])
    if np.issubdtype(a.dtype, np.signedinteger) and a.min(initial=0) < 0:
        raise FieldError(f"a label mask must not hold negative values (min {a.min()})",
                         reason="dtype", where=split_source(source)[0])
    return label_objects(a)


def label_centres(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centroids ``(n, 2)`` as (y, x) and pixel areas ``(n,)`` of each label, in label order.

    The unweighted centroid, as CellProfiler's ``Location_Center_X/Y``. ``labels`` must be a
    label image (:func:`read_labels` labels a binary mask's components first).
    """
    flat = labels.ravel()
    ids = np.unique(flat)
    ids = ids[ids > 0]
    if ids.size == 0:
        return np.zeros((0, 2)), np.zeros(0, dtype=np.int64)
    lookup = np.searchsorted(ids, flat)
    valid = flat > 0
    k = ids.size
    area = np.bincount(lookup[valid], minlength=k)
    ys, xs = np.indices(labels.shape)
    cy = np.bincount(lookup[valid], weights=ys.ravel()[valid], minlength=k) / area
    cx = np.bincount(lookup[valid], weights=xs.ravel()[valid], minlength=k) / area
    return np.stack([cy, cx], 1), area.astype(np.int64)
