"""Image layers as the images a preview augments."""

from __future__ import annotations

import numpy as np
import pytest

from bioaug.augment.preview import to_unit
from bioaug.errors import DataError
from bioaug.napari.inputs import (
    Source,
    default_mapping,
    first_samples,
    guess_channel_axis,
    preview_input,
    source_channels,
)


def test_guess_channel_axis() -> None:
    assert guess_channel_axis((64, 64)) is None
    assert guess_channel_axis((3, 64, 64)) == 0
    assert guess_channel_axis((100, 64, 64)) is None  # a stack of single-channel images
    assert guess_channel_axis((100, 3, 40, 40)) == 1
    assert guess_channel_axis((64, 64, 3), rgb=True) == 2


def test_one_layer_with_a_channel_axis() -> None:
    a = np.arange(2 * 3 * 4 * 5).reshape(2, 4, 5, 3)  # (N, H, W, C)
    got = first_samples(Source([a], ["x"], channel_axis=3), n=8)
    assert got.shape == (2, 3, 4, 5)
    np.testing.assert_array_equal(got[1, 2], a[1, :, :, 2])


def test_stacks_are_cut_to_the_first_n_samples() -> None:
    a = np.arange(10 * 4 * 4, dtype=np.uint16).reshape(10, 4, 4)
    got = first_samples(Source([a], ["stack"]), n=3)
    assert got.shape == (3, 1, 4, 4)
    np.testing.assert_array_equal(got[:, 0], a[:3])


def test_several_layers_are_the_channels() -> None:
    planes = [np.full((6, 7), v, dtype=np.uint16) for v in (1, 2, 3)]
    source = Source(planes, ["DAPI", "GFP", "RFP"])
    assert source_channels(source) == ["DAPI", "GFP", "RFP"]
    got = first_samples(source, n=4)
    assert got.shape == (1, 3, 6, 7) and list(got[0, :, 0, 0]) == [1, 2, 3]
    with pytest.raises(DataError, match="differ in shape"):
        first_samples(Source([planes[0], np.zeros((6, 8))], ["a", "b"]), 1)


def test_preview_input_maps_and_scales() -> None:
    a = np.stack([np.full((4, 4), v, dtype=np.uint16) for v in (100, 200, 400)])
    source = Source([a], ["img"], channel_axis=0, channels=("DNA", "ER", "RNA"))
    data = preview_input(source, 2, mapping=[2, 0], names=["first", "second"])
    assert data.channels == ["first", "second"] and data.images.shape == (1, 2, 4, 4)
    np.testing.assert_array_equal(data.images, to_unit(a[None])[:, [2, 0]])  # the CLI's rule
    scaled = preview_input(Source([a], ["s"], 0, scale=1000.0), 1)
    np.testing.assert_allclose(scaled.images[0, :, 0, 0], [0.1, 0.2, 0.4])
    assert scaled.channels == ["channel 0", "channel 1", "channel 2"]
    with pytest.raises(DataError, match="channel 5 does not exist"):
        preview_input(source, 1, mapping=[5])


@pytest.mark.parametrize(("shape", "axis", "message"), [
    ((3, 8, 8), 3, "channel axis 3 does not fit"),
    ((8, 8), 0, "channel axis 0 does not fit"),
    ((8,), None, "an image needs two axes"),
])
def test_bad_axes_are_clear_errors(shape: tuple[int, ...], axis: int | None,
                                   message: str) -> None:
    with pytest.raises(DataError, match=message):
        first_samples(Source([np.zeros(shape)], ["x"], channel_axis=axis), 1)
    with pytest.raises(DataError, match="no image layer is picked"):
        first_samples(Source([], []), 1)


def test_default_mapping_matches_names_then_places() -> None:
    assert default_mapping(["DAPI", "Tubulin", "Actin"], ["dapi", "GFP", "RFP"]) == [0, 1, 2]
    assert default_mapping(["Actin", "DAPI"], ["DAPI", "Actin"]) == [1, 0]
    assert default_mapping(["A", "B", "C"], ["only"]) == [0, 0, 0]
