"""Image layers as the images a preview augments.

The picked data is either one layer, whose channels lie along a chosen axis (or which has
one channel), or several layers of the same shape, one channel each (napari opens a
multichannel file as one layer per channel). The two axes after the channel axis's removal
that come last are the image; every axis before them is a stack of samples, flattened, and
the first ``n`` samples are used. Pixels are brought to [0, 1] by the preview's rule
(:func:`bioaug.augment.preview.to_unit`), or by a layer's ``bioaug_scale`` metadata (a
store's dtype scale, as a store read by the preview is).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bioaug.augment.preview import PreviewInput, to_unit
from bioaug.errors import DataError

#: Largest axis length taken for a channel axis when guessing one.
MAX_GUESSED_CHANNELS = 8


@dataclass(frozen=True)
class Source:
    """Picked image data: ``arrays`` of the picked layers, their ``names``, the channel axis
    of a single layer (None: one channel), names of a single layer's channels, and the
    divisor that brings the pixels to [0, 1] (None: the preview's rule)."""

    arrays: Sequence[np.ndarray]
    names: Sequence[str]
    channel_axis: int | None = None
    channels: Sequence[str] = field(default_factory=tuple)
    scale: float | None = None


def guess_channel_axis(shape: Sequence[int], rgb: bool = False) -> int | None:
    """The channel axis a layer most likely has: the last one of an RGB layer, else the
    first short axis (≤ 8) before the image axes; None for a plain 2-D image or a stack."""
    if rgb:
        return len(shape) - 1
    for axis, size in enumerate(shape[:-2]):
        if size <= MAX_GUESSED_CHANNELS:
            return axis
    return None


def _check_axis(shape: Sequence[int], axis: int | None, name: str) -> None:
    if axis is None:
        if len(shape) < 2:
            raise DataError(f"layer {name!r} has shape {tuple(shape)}; an image needs two axes")
        return
    if not 0 <= axis < len(shape) or len(shape) < 3:
        choices = f"0..{len(shape) - 1} or none" if len(shape) >= 3 else "none"
        raise DataError(f"channel axis {axis} does not fit layer {name!r} of shape "
                        f"{tuple(shape)}", hint=f"choose an axis in {choices}")


def source_channels(source: Source) -> list[str]:
    """The names of the picked data's channels, in order."""
    if len(source.arrays) != 1:
        return list(source.names)
    if source.channel_axis is None:
        return [source.names[0]]
    count = np.shape(source.arrays[0])[source.channel_axis]
    if len(source.channels) == count:
        return list(source.channels)
    return [f"channel {i}" for i in range(count)]


def _stacked(source: Source) -> np.ndarray:
    """The picked data with the channel axis third from last (a view where possible)."""
    if not source.arrays:
        raise DataError("no image layer is picked", hint="pick one image layer, or several "
                                                         "layers of one shape (one per channel)")
    if len(source.arrays) == 1:
        a = source.arrays[0]
        _check_axis(np.shape(a), source.channel_axis, source.names[0])
        if source.channel_axis is None:
            return np.expand_dims(a, -3)
        return np.moveaxis(a, source.channel_axis, -3)
    shapes = {tuple(np.shape(a)) for a in source.arrays}
    if len(shapes) > 1:
        listed = ", ".join(f"{n} {tuple(np.shape(a))}" for n, a in
                           zip(source.names, source.arrays, strict=True))
        raise DataError(f"the picked layers differ in shape ({listed}); layers taken as "
                        "channels must have one shape", hint="pick layers of one shape, or "
                        "one layer and its channel axis")
    for a, name in zip(source.arrays, source.names, strict=True):
        _check_axis(np.shape(a), None, name)
    return np.stack([np.asarray(a) for a in source.arrays], axis=-3)


def first_samples(source: Source, n: int) -> np.ndarray:
    """The first ``n`` samples of the picked data as ``(N, C, H, W)``, dtype unchanged."""
    a = _stacked(source)
    flat = a.reshape(-1, *a.shape[-3:]) if a.ndim > 3 else a[None]
    return np.asarray(flat[:n])


def preview_input(source: Source, n: int, mapping: Sequence[int] | None = None,
                  names: Sequence[str] | None = None, label: str = "") -> PreviewInput:
    """What the preview of ``source`` augments: its first ``n`` samples in [0, 1], with the
    channels ``mapping`` picks (source channel per protocol channel; None: all, in order)
    under ``names`` (default: the source's channel names)."""
    images = first_samples(source, n)
    channels = source_channels(source)
    if mapping is not None:
        bad = [m for m in mapping if not 0 <= m < images.shape[1]]
        if bad:
            raise DataError(f"channel {bad[0]} does not exist; the picked data has "
                            f"{images.shape[1]} channel(s): {', '.join(channels)}")
        images = images[:, list(mapping)]
        channels = [channels[m] for m in mapping]
    where = label or ", ".join(source.names)
    if source.scale is not None:
        unit = np.clip(images.astype(np.float32) / np.float32(source.scale), 0.0, 1.0)
    else:
        unit = to_unit(images, where)
    return PreviewInput(np.ascontiguousarray(unit, dtype=np.float32),
                        list(names) if names is not None else channels, False, where)


def default_mapping(wanted: Sequence[str], channels: Sequence[str]) -> list[int]:
    """For each protocol channel, the source channel of the same name (case aside), else
    the one in the same place (the last one when there are fewer)."""
    lower = [c.lower() for c in channels]
    out = []
    for i, name in enumerate(wanted):
        out.append(lower.index(name.lower()) if name.lower() in lower
                   else min(i, len(channels) - 1))
    return out
