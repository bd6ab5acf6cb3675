"""Reading microscope image planes: TIFF / OME-TIFF, PNG and OME-Zarr.

A *plane source* is a file path, optionally with a plane index (``(path, frame)``): the
frame of a multi-page TIFF or OME-TIFF, or the channel of an OME-Zarr image. Readers are
a registry keyed by file suffix (:data:`READERS`); every reader returns one 2-D array in
the file's own dtype. :func:`read_field` stacks one plane per channel into ``(C, H, W)``
and raises :class:`FieldError` — with a short ``reason`` (missing, corrupt, dtype, shape)
— for a field that cannot be used, so a preparation can skip it and report why.

OME-Zarr (``*.zarr``, needs the ``zarr`` package: ``pip install bioaug[ome-zarr]``) is read
lazily: only the chunks of the requested plane of the full-resolution level are loaded.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bioaug.errors import DataError

#: A plane: a path, or a path and a frame / channel index inside the file.
PlaneSource = str | os.PathLike | tuple[str, int | None]
#: Pixel types a field may have (every channel of one field must share one).
FIELD_DTYPES: tuple[str, ...] = ("uint8", "uint16")


class FieldError(DataError):
    """One field cannot be used; ``reason`` is one of missing, corrupt, dtype, shape."""

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


def read_tiff_plane(path: Path, frame: int | None = None) -> np.ndarray:
    """One plane of a TIFF or OME-TIFF (``frame``: page / plane index, default the only one)."""
    import tifffile

    log = logging.getLogger("tifffile")
    level = log.level
    log.setLevel(logging.ERROR)  # damaged files are reported by the caller, not logged
    try:
        if frame is None:
            arr = tifffile.imread(path)
        else:
            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                data = series.asarray()
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


def read_png_plane(path: Path, frame: int | None = None) -> np.ndarray:
    """A grey PNG (8 or 16 bit); ``frame`` picks a colour plane of an RGB(A) PNG."""
    import cv2

    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise FieldError("cannot decode PNG", reason="corrupt", where=path)
    if arr.ndim == 3:
        if frame is None:
            raise FieldError(f"PNG has {arr.shape[2]} colour planes; name one with a "
                             "Frame_<channel> column", reason="shape", where=path)
        arr = arr[:, :, ::-1][:, :, frame] if arr.shape[2] >= 3 else arr[:, :, frame]
    return _squeeze_2d(arr, path, "PNG")


def read_zarr_plane(path: Path, frame: int | None = None) -> np.ndarray:
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


#: Image readers by file suffix (lower case). One line per format.
READERS: dict[str, Callable[[Path, int | None], np.ndarray]] = {
    ".tif": read_tiff_plane,
    ".tiff": read_tiff_plane,
    ".png": read_png_plane,
    ".zarr": read_zarr_plane,
}


def reader_for(path: Path) -> Callable[[Path, int | None], np.ndarray] | None:
    """The reader of ``path``: by its suffix, or by an enclosing ``*.zarr`` folder."""
    fn = READERS.get(path.suffix.lower())
    if fn is not None:
        return fn
    for parent in path.parents:
        if parent.suffix.lower() == ".zarr":
            return READERS[".zarr"]
    return None


def split_source(source: PlaneSource) -> tuple[Path, int | None]:
    if isinstance(source, tuple):
        return Path(source[0]), (None if source[1] is None else int(source[1]))
    return Path(source), None


def read_plane(source: PlaneSource) -> np.ndarray:
    """One 2-D plane, dtype preserved; :class:`FieldError` when it cannot be used."""
    path, frame = split_source(source)
    fn = reader_for(path)
    if fn is None:
        raise FieldError(f"unsupported image format '{path.suffix}'; readable: "
                         f"{', '.join(sorted(READERS))}", reason="corrupt", where=path)
    if not path.exists():
        raise FieldError("file is missing", reason="missing", where=path)
    return fn(path, frame)


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
    """A label mask (0 = background, k > 0 = object k) as int64."""
    a = read_plane(source)
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.bool_)):
        raise FieldError(f"a label mask must hold integers, got {a.dtype}", reason="dtype",
                         where=split_source(source)[0])
    return a.astype(np.int64)


def label_centres(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centroids ``(n, 2)`` as (y, x) and pixel areas ``(n,)`` of each label, in label order."""
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
