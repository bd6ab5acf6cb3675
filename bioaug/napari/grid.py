"""Views laid out as one grid image: a row per sample, a column per view.

Each tile holds one view of one sample, clipped to [0, 1] as the preview draws it; views
smaller than the largest (multi-crop) sit in the middle of their tile. Tiles are separated
by a gap of ``GAP`` pixels of value 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

GAP = 2


def tile_origin(row: int, col: int, tile: tuple[int, int], gap: int = GAP) -> tuple[int, int]:
    """Top-left pixel ``(y, x)`` of the tile at ``row``, ``col``."""
    return row * (tile[0] + gap), col * (tile[1] + gap)


def tile_size(views: Sequence[torch.Tensor]) -> tuple[int, int]:
    """The tile: the largest view's height and width."""
    return (max(int(v.shape[-2]) for v in views), max(int(v.shape[-1]) for v in views))


def view_grid(views: Sequence[torch.Tensor], gap: int = GAP) -> np.ndarray:
    """``(C, H, W)`` float32: ``views`` (each ``(N, C, h, w)``) tiled, samples down, views
    across."""
    if not views:
        raise ValueError("no views to lay out")
    n, c = int(views[0].shape[0]), int(views[0].shape[1])
    th, tw = tile_size(views)
    out = np.zeros((c, n * (th + gap) - gap, len(views) * (tw + gap) - gap), dtype=np.float32)
    for col, view in enumerate(views):
        pixels = view.detach().cpu().float().clamp(0, 1).numpy()
        h, w = pixels.shape[-2:]
        dy, dx = (th - h) // 2, (tw - w) // 2
        for row in range(n):
            y, x = tile_origin(row, col, (th, tw), gap)
            out[:, y + dy:y + dy + h, x + dx:x + dx + w] = pixels[row]
    return out


def grid_tile(grid: np.ndarray, row: int, col: int, size: tuple[int, int],
              tile: tuple[int, int], gap: int = GAP) -> np.ndarray:
    """The ``(C, h, w)`` view of ``size`` drawn at ``row``, ``col`` of ``grid``."""
    y, x = tile_origin(row, col, tile, gap)
    dy, dx = (tile[0] - size[0]) // 2, (tile[1] - size[1]) // 2
    return grid[:, y + dy:y + dy + size[0], x + dx:x + dx + size[1]]
