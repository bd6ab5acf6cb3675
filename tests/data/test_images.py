"""Plane readers: TIFF frames, PNG, OME-Zarr (lazy), label centroids."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import tifffile

from bioaug.data.images import (
    READERS,
    FieldError,
    label_centres,
    read_field,
    read_illumination,
    read_labels,
    read_plane,
)


def test_tiff_frames_and_8_bit(tmp_path: Path) -> None:
    stack = np.arange(3 * 6 * 5, dtype=np.uint8).reshape(3, 6, 5)
    tifffile.imwrite(tmp_path / "s.ome.tif", stack, ome=True, metadata={"axes": "CYX"})
    for k in range(3):
        np.testing.assert_array_equal(read_plane((str(tmp_path / "s.ome.tif"), k)), stack[k])
    with pytest.raises(FieldError, match=r"frame 3 does not exist \(the file has 3 planes\)") as e:
        read_plane((str(tmp_path / "s.ome.tif"), 3))
    assert e.value.reason == "shape"
    with pytest.raises(FieldError, match="Frame_<channel>"):
        read_plane(tmp_path / "s.ome.tif")  # three planes, none chosen


def test_png_grey_and_colour(tmp_path: Path) -> None:
    import cv2

    grey = np.arange(48, dtype=np.uint16).reshape(6, 8) * 1000
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    got = read_plane(tmp_path / "g.png")
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, grey)
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 10  # red
    rgb[..., 2] = 30  # blue
    cv2.imwrite(str(tmp_path / "c.png"), rgb[..., ::-1])  # OpenCV writes BGR
    assert read_plane((str(tmp_path / "c.png"), 0)).max() == 10
    assert read_plane((str(tmp_path / "c.png"), 2)).max() == 30


def test_ome_zarr_channel_is_read_lazily(tmp_path: Path) -> None:
    zarr = pytest.importorskip("zarr")
    data = np.arange(2 * 3 * 1 * 20 * 24, dtype=np.uint16).reshape(2, 3, 1, 20, 24)
    root = zarr.open_group(str(tmp_path / "img.zarr"), mode="w")
    arr = root.create_array("0", shape=data.shape, dtype=data.dtype, chunks=(1, 1, 1, 10, 12))
    arr[:] = data
    root.attrs["multiscales"] = [{"axes": [{"name": a} for a in "tczyx"],
                                  "datasets": [{"path": "0"}]}]
    assert ".zarr" in READERS
    for c in range(3):
        np.testing.assert_array_equal(read_plane((str(tmp_path / "img.zarr"), c)),
                                      data[0, c, 0])
    with pytest.raises(FieldError, match="channel 5 does not exist"):
        read_plane((str(tmp_path / "img.zarr"), 5))
    f = read_field([(str(tmp_path / "img.zarr"), 2), (str(tmp_path / "img.zarr"), 0)])
    assert f.shape == (2, 20, 24)


def test_unsupported_and_missing(tmp_path: Path) -> None:
    (tmp_path / "x.jpg2").write_bytes(b"..")
    with pytest.raises(FieldError, match=r"unsupported image format '\.jpg2'"):
        read_plane(tmp_path / "x.jpg2")
    with pytest.raises(FieldError) as e:
        read_plane(tmp_path / "absent.png")
    assert e.value.reason == "missing"


def test_label_centres_are_exact_centroids(tmp_path: Path) -> None:
    labels = np.zeros((30, 40), np.uint16)
    labels[2:5, 3:8] = 7      # centre (3, 5), area 15
    labels[20:30, 30:32] = 2  # centre (24.5, 30.5), area 20
    tifffile.imwrite(tmp_path / "m.tif", labels)
    centres, areas = label_centres(read_labels(tmp_path / "m.tif"))
    np.testing.assert_allclose(centres, [[24.5, 30.5], [3.0, 5.0]])  # label order: 2, 7
    assert areas.tolist() == [20, 15]
    tifffile.imwrite(tmp_path / "f.tif", labels.astype(np.float32))
    with pytest.raises(FieldError, match="must hold integers"):
        read_labels(tmp_path / "f.tif")


def test_tiff_series_and_frames(tmp_path: Path) -> None:
    first = np.arange(2 * 6 * 5, dtype=np.uint16).reshape(2, 6, 5)
    second = 1000 + np.arange(3 * 6 * 5, dtype=np.uint16).reshape(3, 6, 5)
    with tifffile.TiffWriter(tmp_path / "m.ome.tif", ome=True) as tif:
        tif.write(first, metadata={"axes": "CYX"})
        tif.write(second, metadata={"axes": "CYX"})
    path = str(tmp_path / "m.ome.tif")
    np.testing.assert_array_equal(read_plane((path, 1, 0)), first[1])
    np.testing.assert_array_equal(read_plane((path, 2, 1)), second[2])
    np.testing.assert_array_equal(read_plane((path, 0)), first[0])  # series 0 by default
    with pytest.raises(FieldError, match=r"series 2 does not exist \(the file has 2\)") as e:
        read_plane((path, 0, 2))
    assert e.value.reason == "shape"
    with pytest.raises(FieldError, match=r"frame 3 does not exist \(the file has 3 planes\)"):
        read_plane((path, 3, 1))
    import cv2

    cv2.imwrite(str(tmp_path / "g.png"), np.zeros((4, 4), np.uint8))
    with pytest.raises(FieldError, match="a PNG file holds one series"):
        read_plane((str(tmp_path / "g.png"), None, 1))
    assert read_plane((str(tmp_path / "g.png"), None, 0)).shape == (4, 4)


def test_illumination_functions_npy_and_tiff(tmp_path: Path) -> None:
    ramp = np.linspace(0.5, 2.0, 6 * 5).reshape(6, 5)
    np.save(tmp_path / "a.npy", ramp)  # float64, as CellProfiler saves them
    np.save(tmp_path / "b.npy", ramp[None].astype(np.float32))
    tifffile.imwrite(tmp_path / "c.tif", ramp.astype(np.float32))
    for name in ("a.npy", "b.npy", "c.tif"):
        got = read_illumination(tmp_path / name)
        assert got.dtype == np.float32 and got.shape == (6, 5)
        np.testing.assert_allclose(got, ramp, rtol=1e-6)
    bad = ramp.copy()
    bad[2, 3] = 0.0
    bad[0, 0] = np.nan
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(FieldError, match=r"2 pixel\(s\) that are not finite and positive") as e:
        read_illumination(tmp_path / "bad.npy")
    assert e.value.reason == "illumination" and "bad.npy" in e.value.format()
    np.save(tmp_path / "cube.npy", np.ones((2, 6, 5)))
    with pytest.raises(FieldError, match=r"one 2-D plane of numbers, got float64 of shape "
                                         r"\[2, 6, 5\]"):
        read_illumination(tmp_path / "cube.npy")
    (tmp_path / "x.mat").write_bytes(b"")
    with pytest.raises(FieldError, match=re.escape("unsupported illumination-function format "
                                                   "'.mat'; readable: .npy, .tif, .tiff")):
        read_illumination(tmp_path / "x.mat")
    with pytest.raises(FieldError, match="illumination function is missing") as e:
        read_illumination(tmp_path / "absent.npy")
    assert e.value.reason == "missing"
    (tmp_path / "junk.npy").write_bytes(b"junk")
    with pytest.raises(FieldError, match="cannot read the illumination function"):
        read_illumination(tmp_path / "junk.npy")
