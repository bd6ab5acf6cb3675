"""Preview grids: what a protocol does to real images.

Rows are samples; columns are the original and each view. Multichannel images get one
panel per channel (so a stain that dims or drops out is visible); RGB pictures are shown in
colour. Intensities are drawn on a fixed [0, 1] scale, never auto-contrasted, so brightness
changes show as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bioaug.augment.ops import OPS
from bioaug.augment.ops.base import RGB
from bioaug.augment.pipeline import build_pipeline
from bioaug.augment.schema import Protocol
from bioaug.errors import DataError
from bioaug.io import atomic_path

ASSET = Path(__file__).resolve().parents[1] / "assets" / "example_cells.npy"
ASSET_CHANNELS = ["DAPI", "Tubulin", "Actin"]
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".npy")


@dataclass
class PreviewInput:
    images: np.ndarray  # (N, C, H, W) float32 in [0, 1]
    channels: list[str]
    rgb: bool
    label: str


def _to_float(a: np.ndarray) -> np.ndarray:
    if np.issubdtype(a.dtype, np.integer):
        return (a.astype(np.float32) / float(np.iinfo(a.dtype).max)).astype(np.float32)
    if a.dtype == bool:
        return a.astype(np.float32)
    a = a.astype(np.float32)
    top = float(np.nanmax(a)) if a.size else 1.0
    return np.clip(a / top if top > 1.0 else a, 0.0, 1.0)


def _to_chw(a: np.ndarray, where: str) -> np.ndarray:
    if a.ndim == 2:
        return a[None]
    if a.ndim == 3:
        if a.shape[-1] <= 4 and a.shape[0] > 4:  # (H, W, C)
            return np.moveaxis(a, -1, 0)
        return a
    raise DataError(f"expected an image (H, W), (C, H, W) or (H, W, C), got shape {a.shape}",
                    where=where)


def load_preview_input(path: str | Path | None, n: int = 8, seed: int = 0) -> PreviewInput:
    """Images to preview: a file (.tif/.tiff/.png/.npy), a store, or the bundled example."""
    if path is None:
        image = _to_float(np.load(ASSET))
        return PreviewInput(image[None], list(ASSET_CHANNELS), False, "bundled example cells")
    p = Path(path)
    from bioaug.data.store import Store, is_store

    if p.is_dir():
        if not is_store(p):
            raise DataError(f"{p} is a directory but not a bioaug store",
                            hint="give an image file (.tif, .tiff, .png, .npy) or a store")
        store = Store.open(p)
        if len(store) == 0:
            raise DataError("the store is empty", where=p)
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(len(store), size=min(n, len(store)), replace=False))
        rgb = [c.lower() for c in store.channels] in (["r", "g", "b"], ["red", "green", "blue"])
        return PreviewInput(store.read_float(idx).astype(np.float32), store.channels, rgb,
                            f"{p.name} ({len(idx)} of {len(store)} items)")
    if not p.exists():
        raise DataError(f"no such file: {p}")
    suffix = p.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise DataError(f"cannot read {suffix or 'a file without extension'} images",
                        where=p, hint=f"use {', '.join(IMAGE_SUFFIXES)} or a store directory")
    try:
        if suffix == ".npy":
            raw = np.load(p, allow_pickle=False)
        elif suffix in (".tif", ".tiff"):
            import tifffile

            raw = tifffile.imread(p)
        else:
            from skimage import io as skio

            raw = skio.imread(p)
    except Exception as exc:
        raise DataError(f"cannot read the image: {exc}", where=p) from None
    raw = np.asarray(raw)
    if raw.ndim == 3 and raw.shape[-1] == 4 and suffix == ".png":
        raw = raw[..., :3]  # drop alpha
    image = _to_float(_to_chw(raw, str(p)))
    rgb = suffix == ".png" and image.shape[0] == 3
    names = ["R", "G", "B"] if rgb else [f"channel {i}" for i in range(image.shape[0])]
    return PreviewInput(image[None], names, rgb, p.name)


def _adapt_channels(protocol: Protocol, data: PreviewInput) -> tuple[PreviewInput, str | None]:
    """Make the bundled/loaded images fit a protocol's channel count where that is harmless."""
    c = data.images.shape[1]
    want = len(protocol.channels) if protocol.channels else None
    needs_rgb = any(OPS[s.op].channels == RGB for v in protocol.views for s in v.steps)
    if want == 1 and c > 1:
        return (PreviewInput(data.images.mean(axis=1, keepdims=True), ["mean"], False,
                             data.label), f"averaged the {c} channels into 1 for this protocol")
    if (want == 3 or needs_rgb) and c == 1:
        return (PreviewInput(np.repeat(data.images, 3, axis=1), ["R", "G", "B"], True,
                             data.label), "repeated the single channel as RGB for this protocol")
    return data, None


def render_preview(protocol: Protocol, data: PreviewInput, out: str | Path, *, n: int = 8,
                   seed: int = 0, mode: str = "auto") -> tuple[Path, list[str]]:
    """Draw the preview grid to ``out`` (PNG); returns the path and notes for the user."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    notes: list[str] = []
    data, note = _adapt_channels(protocol, data)
    if note:
        notes.append(note)
    images = data.images
    if images.shape[0] == 1:
        images = np.repeat(images, n, axis=0)
    images = images[:n]
    c = images.shape[1]
    names = data.channels if protocol.channels is None or len(protocol.channels) != c \
        else protocol.channels
    pipeline = build_pipeline(protocol, c, None)
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    views = pipeline(x, torch.Generator().manual_seed(seed))
    rgb = data.rgb if mode == "auto" else mode == "rgb"
    if rgb and c != 3:
        raise DataError(f"--mode rgb needs 3 channels, the images have {c}")
    columns = [("original", x)] + [(f"view {i + 1}", v) for i, v in enumerate(views)]
    per = 1 if rgb else c
    ncols = len(columns) * per
    rows = x.shape[0]
    fig, axes = plt.subplots(rows, ncols, figsize=(1.3 * ncols, 1.3 * rows + 0.6),
                             squeeze=False)
    for r in range(rows):
        for j, (title, batch) in enumerate(columns):
            img = batch[r].detach().cpu().float().clamp(0, 1).numpy()
            for k in range(per):
                ax = axes[r, j * per + k]
                if rgb:
                    ax.imshow(np.moveaxis(img, 0, -1), vmin=0, vmax=1, interpolation="nearest")
                else:
                    ax.imshow(img[k], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    label = title if rgb else f"{title}\n{names[k] if k < len(names) else k}"
                    ax.set_title(label, fontsize=7)
    fig.suptitle(f"{protocol.name} on {data.label} (seed {seed})", fontsize=9)
    fig.tight_layout()
    out = Path(out)
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return out, notes
