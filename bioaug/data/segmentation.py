"""Nuclei in a field: thresholding, splitting touching nuclei, and agreement between two sets.

- :func:`otsu_threshold`: Otsu's threshold of a sample of pixel values (Otsu 1979, *A
  threshold selection method from gray-level histograms*, IEEE Trans. SMC 9:62);
  :func:`nuclei_threshold`: that of a plate's scaled nuclei-channel samples.
- :func:`find_nuclei`: Gaussian smoothing, a global threshold, connected components,
  touching nuclei split by a distance-transform watershed (:func:`split_touching`; the
  "shape" declumping of CellProfiler's IdentifyPrimaryObjects, Carpenter et al. 2006),
  nuclei touching the field's border and those outside ``[min_area, max_area]`` dropped
  (CellProfiler's defaults), intensity-weighted centres.
- :func:`label_objects`: a binary mask (0/255, 0/1, boolean, as CellProfiler's
  ConvertObjectsToImage writes in "Binary" mode) into one label per connected component; a
  label image stays as it is.
- :func:`match_centres`: how well two sets of centres agree (one of them the reference,
  e.g. CellProfiler's nuclei): the share of each found within a radius of the other, and a
  one-to-one matching.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from bioaug.errors import ConfigError, DataError

#: 8-connectivity, as CellProfiler labels objects.
EIGHT = np.ones((3, 3), dtype=bool)


def otsu_threshold(values: np.ndarray) -> float:
    """Otsu's threshold of ``values`` (any shape); a constant sample gives its value + 1e-6."""
    from skimage.filters import threshold_otsu

    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0 or np.ptp(values) == 0:
        return float(values.max(initial=0.0)) + 1e-6
    return float(threshold_otsu(values))


def nuclei_threshold(samples: np.ndarray, lo: float, hi: float) -> float:
    """One threshold per plate: Otsu's of the nuclei channel's sampled values, scaled as the
    fields are (``lo`` → 0, ``hi`` → 1, clipped); stable on fields with few cells."""
    scaled = np.clip((np.asarray(samples) - lo) / max(hi - lo, 1e-6), 0, 1)
    return otsu_threshold(scaled)


def find_nuclei(dapi: np.ndarray, threshold: float, *, sigma: float = 2.0, min_area: int = 50,
                max_area: int = 8000, split: bool = True, exclude_border: bool = True
                ) -> tuple[np.ndarray, np.ndarray]:
    """Nuclei of a scaled DAPI image: centres ``(n, 2)`` as (y, x) floats and areas ``(n,)``.

    The image is smoothed (Gaussian ``sigma`` px) and thresholded at ``threshold``; each
    connected component is a nucleus. With ``split``, objects larger than 1.6× the median
    nucleus are split by a watershed on their distance transform (touching nuclei). Objects
    outside ``[min_area, max_area]`` pixels and, with ``exclude_border``, those touching the
    image border (cut nuclei; CellProfiler discards them too) are dropped. Centres are
    intensity-weighted centroids on the smoothed image.
    """
    sm = ndimage.gaussian_filter(dapi.astype(np.float32), sigma) if sigma > 0 else dapi
    labels, n = ndimage.label(sm > threshold)
    if n == 0:
        return np.zeros((0, 2)), np.zeros(0, dtype=np.int64)
    if split:
        labels, n = split_touching(labels, n, min_area, max_area)
    flat = labels.ravel()
    area = np.bincount(flat, minlength=n + 1)
    weight = sm.ravel().astype(np.float64)
    wsum = np.maximum(np.bincount(flat, weights=weight, minlength=n + 1), 1e-12)
    ys, xs = np.indices(labels.shape)
    cy = np.bincount(flat, weights=weight * ys.ravel(), minlength=n + 1) / wsum
    cx = np.bincount(flat, weights=weight * xs.ravel(), minlength=n + 1) / wsum
    ok = (area >= min_area) & (area <= max_area)
    ok[0] = False
    if exclude_border:
        ok[border_labels(labels)] = False
    keep = np.flatnonzero(ok)
    return np.stack([cy[keep], cx[keep]], 1), area[keep]


def border_labels(labels: np.ndarray) -> np.ndarray:
    """The labels (> 0) of objects with a pixel on the image's outer rows or columns."""
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    ids = np.unique(edge)
    return ids[ids > 0]


def split_touching(labels: np.ndarray, n: int, min_area: int, max_area: int,
                   factor: float = 1.6) -> tuple[np.ndarray, int]:
    """Split over-sized objects at the necks of their distance transform (watershed).

    An object larger than ``factor`` × the median object (and than ``2 × min_area``) is cut
    by a watershed on its negated distance transform, seeded by the transform's local
    maxima at least 0.7 nucleus radius apart and 0.4 radius deep. Returns the new labels and
    count; the first piece keeps the object's label.
    """
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
        for k in range(2, len(peaks) + 1):
            n += 1
            region[pieces == k] = n
    return labels, n


def label_objects(mask: np.ndarray) -> np.ndarray:
    """A mask as int64 labels: a binary mask labelled by connected components, else as is.

    A mask with a single non-zero value (0/255, 0/1, boolean) is binary: each
    8-connected component becomes one object, numbered in raster order. Objects that touch
    in a binary mask cannot be told apart and become one; a label image (several values)
    keeps its labels.
    """
    mask = np.asarray(mask)
    values = np.unique(mask)
    if values[values != 0].size <= 1:
        labels, _ = ndimage.label(mask != 0, structure=EIGHT)
        return labels.astype(np.int64)
    return mask.astype(np.int64)


@dataclass(frozen=True)
class MatchResult:
    """Agreement between reference centres (e.g. CellProfiler's) and detected centres.

    ``reference_found``: reference centres with a detected centre within the radius;
    ``detected_confirmed``: detected centres with a reference centre within it; ``pairs``:
    the size of the largest one-to-one matching within it (a detection serves one reference
    centre at most), ``offsets`` the distances of those pairs.
    """

    n_reference: int
    n_detected: int
    reference_found: int
    detected_confirmed: int
    pairs: int
    offsets: tuple[float, ...]
    radius: float

    @property
    def recall(self) -> float:
        """Share of reference centres found (1.0 when there are none)."""
        return self.reference_found / self.n_reference if self.n_reference else 1.0

    @property
    def precision(self) -> float:
        """Share of detected centres near a reference centre (1.0 when there are none)."""
        return self.detected_confirmed / self.n_detected if self.n_detected else 1.0

    @property
    def median_offset(self) -> float:
        """Median distance of the one-to-one pairs (nan without pairs)."""
        return float(np.median(self.offsets)) if self.offsets else float("nan")


def _as_centres(x: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.size == 0:
        return np.zeros((0, 2))
    if a.ndim != 2 or a.shape[1] != 2 or not np.isfinite(a).all():
        raise DataError(f"{name} must be an (n, 2) array of finite (y, x) centres, got shape "
                        f"{list(a.shape)}")
    return a


def match_centres(reference: np.ndarray, detected: np.ndarray, radius: float = 5.0
                  ) -> MatchResult:
    """Compare two sets of ``(n, 2)`` centres within ``radius`` pixels (see :class:`MatchResult`).

    The one-to-one matching is a linear assignment (Kuhn 1955, as
    :func:`scipy.optimize.linear_sum_assignment`) that maximises the number of pairs within
    ``radius`` and, among those, minimises their total distance.
    """
    from scipy.optimize import linear_sum_assignment

    if not radius > 0:
        raise ConfigError(f"radius must be positive, got {radius}")
    ref, det = _as_centres(reference, "reference"), _as_centres(detected, "detected")
    if len(ref) == 0 or len(det) == 0:
        return MatchResult(len(ref), len(det), 0, 0, 0, (), float(radius))
    d = np.sqrt(((ref[:, None, :] - det[None, :, :]) ** 2).sum(-1))
    near = d <= radius
    # a pair outside the radius costs more than every distance inside it together
    cost = np.where(near, d, radius * (min(d.shape) + 1))
    rows, cols = linear_sum_assignment(cost)
    ok = near[rows, cols]
    return MatchResult(n_reference=len(ref), n_detected=len(det),
                       reference_found=int(near.any(1).sum()),
                       detected_confirmed=int(near.any(0).sum()), pairs=int(ok.sum()),
                       offsets=tuple(float(v) for v in d[rows[ok], cols[ok]]),
                       radius=float(radius))


def total(results: Iterable[MatchResult]) -> MatchResult:
    """The counts of several fields' results added up (one radius for all)."""
    res = list(results)
    radii = {r.radius for r in res}
    if len(radii) > 1:
        raise ConfigError(f"results with different radii cannot be added: {sorted(radii)}")
    return MatchResult(n_reference=sum(r.n_reference for r in res),
                       n_detected=sum(r.n_detected for r in res),
                       reference_found=sum(r.reference_found for r in res),
                       detected_confirmed=sum(r.detected_confirmed for r in res),
                       pairs=sum(r.pairs for r in res),
                       offsets=tuple(o for r in res for o in r.offsets),
                       radius=radii.pop() if radii else 5.0)
