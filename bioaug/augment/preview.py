"""Preview grids: what a protocol does to real images.

Rows are samples; columns are the original and each view. Multichannel images get one
panel per channel (so a stain that dims or drops out is visible); RGB pictures are shown in
colour. Intensities are drawn on a fixed [0, 1] scale, never auto-contrasted, so brightness
changes show as they are.

Image files are brought to [0, 1] once, before augmenting, by one rule (:func:`to_unit`):
8-bit images are divided by 255; wider integer images (12- or 16-bit cameras, NumPy's
int32/int64) are divided by their largest value, since their type's maximum says nothing
about the data (values below zero, if any, are shifted up first); float images are divided
by their largest value when it exceeds 1, then clipped. NaN or infinite pixels are an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bioaug.augment.mosaic import is_rgb
from bioaug.augment.ops import OPS
from bioaug.augment.ops.base import RGB
from bioaug.augment.pipeline import build_pipeline
from bioaug.augment.schema import Protocol
from bioaug.errors import DataError
from bioaug.io import PNG_METADATA, atomic_path

ASSET = Path(__file__).resolve().parents[1] / "assets" / "example_cells.npy"
ASSET_CHANNELS = ["DAPI", "Tubulin", "Actin"]
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".npy")


@dataclass
class PreviewInput:
    images: np.ndarray  # (N, C, H, W) float32 in [0, 1]
    channels: list[str]
    rgb: bool
    label: str


def to_unit(a: np.ndarray, where: str = "") -> np.ndarray:
    """Pixel values as float32 in [0, 1] by the rule in the module docstring.

    Raises :class:`~bioaug.errors.DataError` for NaN/inf values or a non-numeric type.
    """
    if a.dtype == bool:
        return a.astype(np.float32)
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if np.issubdtype(a.dtype, np.integer):
        if a.size == 0:
            return a.astype(np.float32)
        wide = a.astype(np.float64)
        lo, hi = min(float(wide.min()), 0.0), float(wide.max())
        if hi <= lo:
            return np.zeros(a.shape, dtype=np.float32)
        return ((wide - lo) / (hi - lo)).astype(np.float32)
    if not np.issubdtype(a.dtype, np.floating):
        raise DataError(f"cannot preview pixels of type {a.dtype}; give integer or float "
                        "intensities", where=where or None)
    a = a.astype(np.float32)
    check_finite(a, where)
    top = float(a.max()) if a.size else 1.0
    return np.clip(a / top if top > 1.0 else a, 0.0, 1.0)


def check_finite(a: np.ndarray, where: str = "") -> None:
    """A clear error when ``a`` holds NaN or infinite values (they would show as blank)."""
    bad = ~np.isfinite(a)
    if bad.any():
        n_nan = int(np.isnan(a).sum())
        n_inf = int(bad.sum()) - n_nan
        what = " and ".join(t for t in (f"{n_nan} NaN" if n_nan else "",
                                         f"{n_inf} infinite" if n_inf else "") if t)
        raise DataError(f"the image holds {what} pixel value(s) of {a.size}; a preview needs "
                        "finite intensities", where=where or None,
                        hint="replace them first (e.g. numpy.nan_to_num) or fix the source")


def _to_chw(a: np.ndarray, where: str) -> np.ndarray:
    """``a`` as (C, H, W); an array of another rank, or one without a pixel or a channel,
    is a DataError."""
    if a.ndim == 2:
        chw = a[None]
    elif a.ndim == 3:
        chw = np.moveaxis(a, -1, 0) if a.shape[-1] <= 4 and a.shape[0] > 4 else a  # (H, W, C)
    else:
        raise DataError(f"expected an image (H, W), (C, H, W) or (H, W, C), got shape "
                        f"{a.shape}", where=where)
    if chw.size == 0:
        raise DataError(f"the image is empty: shape {a.shape} (read as {chw.shape[0]} "
                        f"channel(s) of {chw.shape[1]}×{chw.shape[2]} pixels)", where=where,
                        hint="a preview needs at least one channel of at least 1×1 pixels")
    return chw


def load_preview_input(path: str | Path | None, n: int = 8, seed: int = 0) -> PreviewInput:
    """Images to preview: a file (.tif/.tiff/.png/.npy), a store, or the bundled example."""
    if path is None:
        image = to_unit(np.load(ASSET))
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
        rgb = is_rgb(store.channels)
        images = store.read_float(idx).astype(np.float32)
        check_finite(images, str(p))
        return PreviewInput(images, store.channels, rgb,
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
    image = to_unit(_to_chw(raw, str(p)), str(p))
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


def view_columns(views: list[torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    """``(title, batch)`` per view: ``view i``, or ``vi Npx`` when the crop sizes differ
    (multi-crop: the small local views are drawn enlarged, the title says how small; short
    enough for the tiles of ``RUN/views.png``)."""
    if len({tuple(v.shape[-2:]) for v in views}) > 1:
        return [(f"v{i + 1} {v.shape[-1]}px", v) for i, v in enumerate(views)]
    return [(f"view {i + 1}", v) for i, v in enumerate(views)]


def preview_batch(protocol: Protocol, data: PreviewInput, n: int = 8
                  ) -> tuple[PreviewInput, list[str]]:
    """The ``n`` images a preview augments (a single image repeated ``n`` times, else the
    first ``n``), fitted to the protocol's channel count; returns them and notes for the user."""
    notes: list[str] = []
    data, note = _adapt_channels(protocol, data)
    if note:
        notes.append(note)
    images = data.images
    check_finite(images, data.label)
    if images.shape[0] == 1:
        images = np.repeat(images, n, axis=0)
    return PreviewInput(images[:n], data.channels, data.rgb, data.label), notes


def preview_views(protocol: Protocol, images: np.ndarray, seed: int = 0
                  ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The batch ``images`` (N, C, H, W) as a tensor and the protocol's views of it, drawn
    with a generator seeded with ``seed`` (what a preview with that seed shows)."""
    pipeline = build_pipeline(protocol, images.shape[1], None)
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    return x, pipeline(x, torch.Generator().manual_seed(seed))


def render_preview(protocol: Protocol, data: PreviewInput, out: str | Path, *, n: int = 8,
                   seed: int = 0, mode: str = "auto") -> tuple[Path, list[str]]:
    """Draw the preview grid to ``out`` (PNG); returns the path and notes for the user."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data, notes = preview_batch(protocol, data, n)
    c = data.images.shape[1]
    rgb = data.rgb if mode == "auto" else mode == "rgb"
    if rgb and c != 3:
        raise DataError(f"--mode rgb needs 3 channels, the images have {c}")
    names = data.channels if protocol.channels is None or len(protocol.channels) != c \
        else protocol.channels
    x, views = preview_views(protocol, data.images, seed)
    columns = [("original", x), *view_columns(views)]
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
        fig.savefig(tmp, format="png", dpi=110, metadata=PNG_METADATA)
    plt.close(fig)
    return out, notes
