"""Preview grids from the bundled image, files and stores."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import tifffile

from bioaug.augment import load_protocol
from bioaug.augment.preview import ASSET, load_preview_input, render_preview
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
