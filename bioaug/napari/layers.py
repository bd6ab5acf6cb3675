"""Layer data as napari takes it from a reader or a sample: one image layer per channel.

Channels get colours from one cycle and add up (``additive`` blending), so a multichannel
image looks as a microscope's overlay does. Layers opened together share a
``bioaug_group`` in their metadata, so the protocol widget picks them together as the
channels of one image; ``bioaug_scale`` is the divisor that brings their pixels to [0, 1]
(a store's dtype scale).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: Metadata key of the layers the protocol widget draws (never taken as input).
VIEWS_KEY = "bioaug_views"
#: Channel colours, in order.
COLORMAPS = ("blue", "green", "magenta", "red", "cyan", "yellow", "gray")

LayerData = tuple[Any, dict[str, Any], str]


def colormap(index: int) -> str:
    """The colour of channel ``index``."""
    return COLORMAPS[index % len(COLORMAPS)]


def channel_layers(data: Any, channel_axis: int, channels: Sequence[str], title: str, *,
                   metadata: dict[str, Any] | None = None, scale: float | None = None
                   ) -> list[LayerData]:
    """``data`` as one image layer per channel (``channel_axis``), named ``title [channel]``."""
    meta = {"bioaug_group": title, **(metadata or {})}
    if scale is not None:
        meta["bioaug_scale"] = float(scale)
    n = np.shape(data)[channel_axis]
    kwargs: dict[str, Any] = {
        "channel_axis": channel_axis,
        "name": [f"{title} [{c}]" for c in channels],
        "colormap": [colormap(i) for i in range(n)],
        "blending": "additive",
        "metadata": meta,
    }
    if scale is not None:
        kwargs["contrast_limits"] = [(0.0, float(scale))] * n
    return [(data, kwargs, "image")]
