"""A picture of image batches side by side, drawn straight to PNG (no plotting library).

``write_mosaic(path, columns, channels)``: one row per image, one column group per batch
(``original``, ``view 1``, ``view 2`` …). Multichannel images get one gray panel per
channel, so a stain that dims or drops out is visible; RGB images are drawn in colour.
Intensities use the fixed [0, 1] scale (clipped), never auto-contrast, as in
:mod:`bioaug.augment.preview`. Tiles are enlarged by whole pixels (nearest neighbour) to
at least :data:`TILE` px and centred, so views of different crop sizes line up.

It costs milliseconds, so ``bioaug train`` draws the views of every run's first batch
(``RUN/views.png``): the picture shows exactly the tensors the model was given.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from bioaug.io import PNG_METADATA, atomic_path

#: Smallest side of a drawn tile (pixels).
TILE = 64
_GAP, _GROUP_GAP, _HEAD = 2, 8, 28


def is_rgb(channels: Sequence[str]) -> bool:
    """Whether channel names say the images are colour pictures (R, G, B in that order)."""
    return [c.lower() for c in channels] in (["r", "g", "b"], ["red", "green", "blue"])


def _tile(img: np.ndarray, side: int) -> np.ndarray:
    """``(h, w)`` or ``(h, w, 3)`` in [0, 1] → uint8, enlarged by a whole factor, centred on a
    ``side`` × ``side`` black square."""
    h, w = img.shape[:2]
    k = max(1, side // max(h, w))
    big = np.repeat(np.repeat(img, k, axis=0), k, axis=1)
    out = np.zeros((side, side, *img.shape[2:]), dtype=np.uint8)
    y, x = (side - big.shape[0]) // 2, (side - big.shape[1]) // 2
    out[y:y + big.shape[0], x:x + big.shape[1]] = np.rint(np.clip(big, 0, 1) * 255)
    return out


def write_mosaic(path: str | Path, columns: Sequence[tuple[str, torch.Tensor]],
                 channels: Sequence[str], *, title: str = "", rows: int = 8) -> Path:
    """Draw ``columns`` (name, ``(B, C, h, w)`` batch in [0, 1]) to the PNG ``path``.

    The first ``rows`` images of each batch are drawn; every batch must have the channels
    of ``channels``. Written atomically, with bioaug's PNG marker.
    """
    from PIL import Image, ImageDraw, PngImagePlugin

    if not columns:
        raise ValueError("write_mosaic needs at least one column")
    rgb = is_rgb(channels)
    batches = [(name, b.detach().float().cpu()[:rows].numpy()) for name, b in columns]
    n = min(len(b) for _, b in batches)
    side = max(TILE, *(max(b.shape[-2:]) for _, b in batches))
    per = 1 if rgb else len(channels)
    group_w = per * side + (per - 1) * _GAP
    width = len(batches) * group_w + (len(batches) - 1) * _GROUP_GAP
    height = _HEAD + n * side + (n - 1) * _GAP
    mode = "RGB" if rgb else "L"
    canvas = np.full((height, width, 3) if rgb else (height, width), 255, dtype=np.uint8)
    for j, (_, batch) in enumerate(batches):
        x0 = j * (group_w + _GROUP_GAP)
        for r in range(n):
            y = _HEAD + r * (side + _GAP)
            panels = [np.moveaxis(batch[r], 0, -1)] if rgb else list(batch[r])
            for k, panel in enumerate(panels):
                x = x0 + k * (side + _GAP)
                canvas[y:y + side, x:x + side] = _tile(panel, side)
    image = Image.fromarray(canvas, mode)
    draw = ImageDraw.Draw(image)
    if title:
        draw.text((2, 1), title, fill=0)
    for j, (name, _) in enumerate(batches):
        x0 = j * (group_w + _GROUP_GAP)
        for k in range(per):
            label = name if rgb or per == 1 else f"{name}: {channels[k]}"
            draw.text((x0 + k * (side + _GAP) + 1, 14), label[: max(4, side // 6)], fill=0)
    info = PngImagePlugin.PngInfo()
    for key, value in PNG_METADATA.items():
        info.add_text(key, value)
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        image.save(tmp, format="PNG", pnginfo=info)
    return path
