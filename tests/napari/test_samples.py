"""Sample data: a synthetic twin field and the bundled real flow cells."""

from __future__ import annotations

import numpy as np

from bioaug.napari.samples import IFC_CELLS, ifc_cells, ifc_cells_arrays, twin_field_array


def test_the_bundled_cells_are_few_small_and_credited() -> None:
    images, channels, obs = ifc_cells_arrays()
    assert images.shape == (49, 3, 40, 40) and images.dtype == np.uint16
    assert channels == ["Brightfield", "DNA", "Darkfield"]
    assert obs["phase"].value_counts().to_dict() == {p: 7 for p in (
        "Anaphase", "G1", "G2", "Metaphase", "Prophase", "S_phase", "Telophase")}
    assert IFC_CELLS.stat().st_size < 400_000
    licence = IFC_CELLS.with_suffix(".LICENSE").read_text()
    assert "BSD 3-Clause" in licence and "Blasi et al. 2016" in licence


def test_ifc_cells_layers_carry_the_phases() -> None:
    (data, meta, kind), = ifc_cells()
    assert kind == "image" and data.shape == (49, 3, 40, 40) and meta["channel_axis"] == 1
    assert meta["metadata"]["obs"]["phase"].iloc[0] == "Anaphase"
    assert "bioaug_scale" not in meta["metadata"]  # raw camera counts: the preview's rule


def test_the_twin_field_is_a_fixed_three_channel_field() -> None:
    field, info = twin_field_array()
    assert field.shape == (3, 512, 640) and field.dtype == np.uint16
    assert info["plate"] and info["well"]
    again, _ = twin_field_array()
    np.testing.assert_array_equal(field, again)
    other, _ = twin_field_array(seed=1)
    assert not np.array_equal(field, other)


def test_napari_opens_the_samples(viewer) -> None:
    viewer.open_sample("bioaug", "ifc_cells")
    assert [layer.name for layer in viewer.layers] == [
        "ifc cells [Brightfield]", "ifc cells [DNA]", "ifc cells [Darkfield]"]
    assert viewer.layers[0].data.shape == (49, 40, 40)
    viewer.open_sample("bioaug", "twin_field")
    assert viewer.layers[-1].name == "twin field [Actin]"
    assert viewer.layers[-1].data.shape == (512, 640)
