"""Single-cell crops cut out of a field: centred on each cell, then optionally resized.

Edge handling: ``skip`` (a cell whose crop would leave the field is dropped, so no crop
holds invented pixels) or ``reflect`` (the field is mirror-padded). Resizing averages
areas when shrinking and interpolates bilinearly when enlarging.
"""

from __future__ import annotations

import numpy as np

from bioaug.errors import ConfigError

EDGE_MODES = ("skip", "reflect")


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


__all__ = ["EDGE_MODES", "crop_cells", "resize_crops"]
