"""``RUN/attention.png``: where a Vision Transformer's class token looks.

For a backbone that can give its last block's class-token attention (``last_attention``,
as the timm ViTs of :mod:`bioaug.models.vit` do) the run ends with a picture of a few
stored cells beside that attention, averaged over heads and per head: the maps of Caron et
al. 2021 ("Emerging Properties in Self-Supervised Vision Transformers", figure 1), the
first thing to look at after a DINO run. Other backbones get no picture.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bioaug.data.store import Store
from bioaug.train.data import to_unit_float

__all__ = ["attention_columns", "write_attention"]


def attention_columns(backbone: nn.Module, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """``(title, (n, 1, H, W))`` columns: the cells (channel mean), the class token's
    attention averaged over heads, then each head; each map scaled to [0, 1]."""
    maps = backbone.last_attention(x).float()  # (n, heads, h, w)
    patch = int(getattr(backbone, "patch_size", 1))
    maps = F.interpolate(maps, scale_factor=patch, mode="nearest")[..., :x.shape[-2],
                                                                  :x.shape[-1]]
    maps = torch.cat([maps.mean(1, keepdim=True), maps], dim=1)
    low = maps.amin(dim=(-2, -1), keepdim=True)
    high = maps.amax(dim=(-2, -1), keepdim=True)
    maps = (maps - low) / (high - low).clamp_min(1e-12)
    cells = x.mean(1, keepdim=True)
    heads = [(f"head {k}", maps[:, k:k + 1]) for k in range(1, maps.shape[1])]
    return [("cell", cells), ("attention", maps[:, :1]), *heads]


def write_attention(path: str | Path, backbone: nn.Module, store: Store, n: int,
                    device: torch.device | str = "cpu") -> Path | None:
    """Draw the first ``n`` stored images and their attention to ``path``; ``None`` (and no
    file) for a backbone without ``last_attention``."""
    if not hasattr(backbone, "last_attention") or n < 1:
        return None
    from bioaug.augment.mosaic import write_mosaic

    idx = np.arange(min(n, len(store)))
    x = to_unit_float(torch.from_numpy(store.read(idx)).to(device), store.dtype)
    was_training = backbone.training
    backbone.eval()
    try:
        columns = attention_columns(backbone, x)
    finally:
        backbone.train(was_training)
    return write_mosaic(path, columns, ["attention"], rows=len(idx),
                        title=f"last block: class-token attention ({len(idx)} stored images)")
