"""Layer data for readers and samples: one layer per channel, grouped."""

from __future__ import annotations

import numpy as np

from bioaug.napari.layers import COLORMAPS, channel_layers, colormap


def test_channels_get_colours_from_one_cycle() -> None:
    assert [colormap(i) for i in range(3)] == ["blue", "green", "magenta"]
    assert colormap(len(COLORMAPS)) == colormap(0)


def test_channel_layers_are_named_grouped_and_scaled() -> None:
    data = np.zeros((5, 2, 8, 8), dtype=np.uint8)
    (same, meta, kind), = channel_layers(data, 1, ["a", "b"], "crops", metadata={"x": 1},
                                          scale=255)
    assert same is data and kind == "image"
    assert meta["name"] == ["crops [a]", "crops [b]"] and meta["channel_axis"] == 1
    assert meta["colormap"] == ["blue", "green"] and meta["blending"] == "additive"
    assert meta["metadata"] == {"bioaug_group": "crops", "x": 1, "bioaug_scale": 255.0}
    assert meta["contrast_limits"] == [(0.0, 255.0)] * 2
    (_, plain, _), = channel_layers(data[0], 0, ["a", "b"], "one")
    assert "contrast_limits" not in plain and "bioaug_scale" not in plain["metadata"]
