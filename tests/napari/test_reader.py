"""Opening a crop store made from the synthetic twin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bioaug.data.store import Store
from bioaug.errors import DataError
from bioaug.napari.reader import get_reader, read_store


@pytest.fixture(scope="module")
def twin_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Single-cell crops (32 px) of a tiny twin: one plate, two wells, one site each."""
    from bioaug.data.prepare import prepare_bbbc021
    from bioaug.data.synth import synth_bbbc021

    root = tmp_path_factory.mktemp("twin")
    twin = synth_bbbc021(root / "bbbc021", plates=1, sites=1, wells_per_plate=2,
                         size=(160, 192), cells_per_field=8, seed=3)
    return prepare_bbbc021(twin, root / "store", crop_size=32)


def test_the_reader_takes_stores_only(twin_store: Store, tmp_path: Path) -> None:
    assert get_reader(str(twin_store.path)) is read_store
    assert get_reader([str(twin_store.path)]) is read_store
    assert get_reader(str(tmp_path)) is None  # an ordinary folder: another reader's
    assert get_reader([str(twin_store.path)] * 2) is None
    assert get_reader(str(tmp_path / "x.tif")) is None


def test_a_store_opens_as_a_stack_per_channel(twin_store: Store) -> None:
    (data, meta, kind), = read_store(twin_store.path)
    assert kind == "image" and meta["channel_axis"] == 1
    assert data.shape == (len(twin_store), 3, 32, 32) and data.dtype == np.uint16
    np.testing.assert_array_equal(data[: 5], twin_store.read(slice(0, 5)))
    assert meta["name"] == [f"store [{c}]" for c in ("DAPI", "Tubulin", "Actin")]
    assert meta["metadata"]["obs"].equals(twin_store.obs)
    assert meta["metadata"]["bioaug_store"]["shape"] == list(data.shape)
    assert meta["metadata"]["bioaug_scale"] == 65535.0
    assert meta["contrast_limits"] == [(0.0, 65535.0)] * 3


def test_a_damaged_store_is_a_clear_error(twin_store: Store, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(twin_store.path, broken)
    (broken / "obs.csv").write_text("plate\n")
    with pytest.raises(DataError, match=r"obs\.csv has 0 rows"):
        read_store(broken)


def test_napari_opens_the_store_and_the_widget_previews_it(twin_store: Store, viewer,
                                                           make_widget) -> None:
    layers = viewer.open(str(twin_store.path), plugin="bioaug")
    assert [layer.name for layer in layers] == ["store [DAPI]", "store [Tubulin]",
                                                "store [Actin]"]
    assert layers[0].data.shape == (len(twin_store), 32, 32)
    assert layers[0].metadata["obs"].equals(twin_store.obs)
    widget = make_widget(viewer)
    assert [layer.name for layer in widget.picked_layers()] == [layer.name for layer in layers]
    assert widget.set_text("bioaug_protocol: 1\nchannels: [DAPI, Tubulin, Actin]\nviews:\n"
                           "  - crop_size: 32\n    steps: []\n  - same_as: 0\n")
    # the store's crops as the preview reads a store: uint16 / 65535
    n = min(8, len(twin_store))
    np.testing.assert_allclose(widget.drawn.images.numpy(), twin_store.read_float(
        np.arange(n)), rtol=0, atol=1e-7)
