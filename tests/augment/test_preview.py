"""Preview grids from the bundled image, files and stores."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import tifffile

from bioaug.augment import load_protocol
from bioaug.augment.preview import ASSET, load_preview_input, render_preview, to_unit
from bioaug.data.store import write_store
from bioaug.errors import DataError


def test_bundled_asset_is_small_and_three_channel() -> None:
    assert ASSET.stat().st_size < 200_000
    data = load_preview_input(None)
    assert data.images.shape == (1, 3, 128, 128)
    assert data.images.dtype == np.float32 and data.images.min() >= 0 and data.images.max() <= 1


def test_preview_grid_has_one_panel_per_channel(tmp_path: Path) -> None:
    out, notes = render_preview(load_protocol("bbbc021-expert"), load_preview_input(None),
                                tmp_path / "p.png", n=2, seed=0)
    image = mpimg.imread(out)
    assert image.shape[1] > image.shape[0]  # 9 panels wide (3 columns × 3 channels), 2 rows
    assert notes == []


def test_single_channel_protocol_on_the_bundled_image(tmp_path: Path) -> None:
    out, notes = render_preview(load_protocol("mnist-rotation"), load_preview_input(None),
                                tmp_path / "m.png", n=2)
    assert out.is_file() and "averaged" in notes[0]


@pytest.mark.parametrize("suffix", [".npy", ".tif", ".png"])
def test_image_file_inputs(tmp_path: Path, suffix: str) -> None:
    rgb = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    path = tmp_path / f"img{suffix}"
    if suffix == ".npy":
        np.save(path, rgb.transpose(2, 0, 1))
    elif suffix == ".tif":
        tifffile.imwrite(path, rgb.transpose(2, 0, 1))
    else:
        mpimg.imsave(path, rgb)
    data = load_preview_input(path)
    assert data.images.shape == (1, 3, 32, 32)
    assert data.rgb == (suffix == ".png")
    out, _ = render_preview(load_protocol("moco-v2-default"), data, tmp_path / "o.png", n=2)
    assert out.is_file()


def test_store_input(tmp_path: Path) -> None:
    images = (np.random.default_rng(0).random((5, 3, 24, 24)) * 65535).astype(np.uint16)
    import pandas as pd

    store = write_store(tmp_path / "s", images, pd.DataFrame({"label": list("abcde")}),
                        channels=["DAPI", "Tubulin", "Actin"], label_column="label")
    data = load_preview_input(store.path if hasattr(store, "path") else tmp_path / "s", n=3)
    assert data.images.shape == (3, 3, 24, 24) and data.channels == ["DAPI", "Tubulin", "Actin"]


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_preview_input(tmp_path / "missing.tif")
    (tmp_path / "a.jpg").write_bytes(b"x")
    with pytest.raises(DataError, match=r"cannot read \.jpg"):
        load_preview_input(tmp_path / "a.jpg")
    (tmp_path / "dir").mkdir()
    with pytest.raises(DataError, match="not a bioaug store"):
        load_preview_input(tmp_path / "dir")
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(DataError, match="cannot read the image"):
        load_preview_input(tmp_path / "bad.npy")


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint16, np.int16])
def test_integer_images_are_scaled_by_their_data_range(tmp_path: Path, dtype) -> None:
    """Not by the type's maximum: an int64 image of 0..1000 must not come out black."""
    a = np.zeros((2, 8, 8), dtype=dtype)
    a[0, 0, 0], a[1, 0, 0], a[0, 1, 1] = 1000, 250, 500
    np.save(tmp_path / "i.npy", a)
    data = load_preview_input(tmp_path / "i.npy")
    assert data.images.dtype == np.float32
    assert data.images.max() == 1.0 and data.images[0, 0, 0, 0] == 1.0
    assert data.images[0, 1, 0, 0] == pytest.approx(0.25)
    assert data.images[0, 0, 1, 1] == pytest.approx(0.5)
    assert data.images[0, 0, 2, 2] == 0.0  # zero stays black


def test_integer_rule_edge_cases() -> None:
    assert to_unit(np.array([0, 128, 255], dtype=np.uint8)).tolist() == \
        pytest.approx([0, 128 / 255, 1])  # 8 bit: the full scale of a picture
    assert to_unit(np.array([-50, 0, 150], dtype=np.int32)).tolist() == \
        pytest.approx([0, 0.25, 1])  # negative values are shifted up
    assert to_unit(np.zeros((2, 2), dtype=np.int64)).tolist() == [[0, 0], [0, 0]]
    assert to_unit(np.array([[0.0, 2.0, 4.0]], dtype=np.float64)).tolist() == [[0, 0.5, 1]]
    with pytest.raises(DataError, match="cannot preview pixels of type"):
        to_unit(np.array([["a", "b"]]))


@pytest.mark.parametrize(("value", "words"), [(np.nan, "1 NaN"), (np.inf, "1 infinite"),
                                              (-np.inf, "1 infinite")])
def test_nan_or_inf_pixels_are_a_clear_error_without_warnings(tmp_path: Path, value: float,
                                                              words: str) -> None:
    a = np.random.default_rng(0).random((3, 8, 8)).astype(np.float32)
    a[1, 2, 3] = value
    np.save(tmp_path / "f.npy", a)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError, match=f"holds {words} pixel value") as info:
            load_preview_input(tmp_path / "f.npy")
    assert str(tmp_path / "f.npy") in info.value.format()
    with pytest.raises(DataError, match="holds 64 NaN"):
        load_preview_input_all_nan(tmp_path)


def load_preview_input_all_nan(tmp_path: Path):
    np.save(tmp_path / "n.npy", np.full((8, 8), np.nan))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return load_preview_input(tmp_path / "n.npy")


def test_render_checks_images_handed_over_in_python(tmp_path: Path) -> None:
    data = load_preview_input(None)
    data.images = data.images.copy()
    data.images[0, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="1 NaN"):
        render_preview(load_protocol("bbbc021-expert"), data, tmp_path / "x.png", n=1)
    assert not (tmp_path / "x.png").exists()


def test_rgb_mode_on_the_wrong_channel_count_fails_before_augmenting(tmp_path: Path,
                                                                     monkeypatch) -> None:
    import bioaug.augment.preview as preview

    def boom(*args, **kwargs):
        raise AssertionError("augmented before checking --mode")

    monkeypatch.setattr(preview, "build_pipeline", boom)
    data = load_preview_input(None)
    data.images = data.images[:, :2]
    with pytest.raises(DataError, match="--mode rgb needs 3 channels"):
        render_preview(load_protocol("none"), data, tmp_path / "x.png", n=1, mode="rgb")


def test_multicrop_preview_shows_every_view_with_its_size(tmp_path: Path) -> None:
    import torch

    from bioaug.augment.preview import view_columns

    titles = [t for t, _ in view_columns([torch.zeros(1, 1, 48, 48)] * 2
                                         + [torch.zeros(1, 1, 24, 24)] * 6)]
    assert titles == ["v1 48px", "v2 48px"] + [f"v{i} 24px" for i in range(3, 9)]
    assert [t for t, _ in view_columns([torch.zeros(1, 1, 8, 8)] * 2)] == ["view 1", "view 2"]
    out, _ = render_preview(load_protocol("dino-multicrop"), load_preview_input(None),
                            tmp_path / "multi.png", n=2)
    image = mpimg.imread(out)
    assert image.shape[1] > image.shape[0]  # 9 column groups of 3 channels side by side


def test_preview_batch_and_views_are_what_the_grid_draws() -> None:
    from bioaug.augment.preview import PreviewInput, preview_batch, preview_views

    data = load_preview_input(None)  # one 128-px image
    batch, notes = preview_batch(load_protocol("none"), data, n=3)
    assert batch.images.shape == (3, 3, 128, 128) and notes == []
    np.testing.assert_array_equal(batch.images[2], data.images[0])
    x, views = preview_views(load_protocol("none"), batch.images, seed=0)
    np.testing.assert_array_equal(x.numpy(), batch.images)
    # `none` shows the central 64-px window of each image, twice
    assert len(views) == 2
    for v in views:
        np.testing.assert_array_equal(v.numpy(), batch.images[:, :, 32:96, 32:96])
    stack = PreviewInput(np.concatenate([data.images] * 5), data.channels, False, "stack")
    assert preview_batch(load_protocol("none"), stack, n=4)[0].images.shape[0] == 4


@pytest.mark.parametrize("shape", [(3, 0, 0), (0, 7), (0, 6, 6), (5, 0, 3)])
def test_an_empty_image_is_refused_with_its_shape(tmp_path: Path, shape) -> None:
    path = tmp_path / "empty.npy"
    np.save(path, np.zeros(shape, dtype=np.uint16))
    with pytest.raises(DataError, match=r"the image is empty: shape \(") as info:
        load_preview_input(path)
    assert str(shape) in str(info.value)
