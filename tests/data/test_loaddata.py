"""A hand-made LoadData CSV: unicode and spaces in paths, 8- and 16-bit, OME-TIFF, PNG."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import tifffile

from bioaug.data.loaddata import load_data_fieldset
from bioaug.data.prepare import prepare_images
from bioaug.data.store import Store
from bioaug.errors import BioaugError, ConfigError, DataError

SIZE = 96
CROP = 24
CHANNELS = ("DNA", "ER", "Mito")
#: the same four cells in every field, (y, x), all at least CROP/2 from the border
CELLS = np.array([[20, 22], [30, 70], [66, 40], [75, 76]])


def _field(bits: int, seed: int) -> np.ndarray:
    """DNA: a round nucleus per cell; ER: noise; Mito: one bright pixel at each centre."""
    rng = np.random.default_rng(seed)
    top = 255 if bits == 8 else 60000
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    dna = np.full((SIZE, SIZE), 0.05)
    for y, x in CELLS:
        dna += 0.9 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 3.0**2))
    er = rng.uniform(0.1, 0.6, (SIZE, SIZE))
    mito = rng.uniform(0.05, 0.2, (SIZE, SIZE))
    mito[CELLS[:, 0], CELLS[:, 1]] = 1.0
    dtype = np.uint8 if bits == 8 else np.uint16
    return np.stack([np.rint(c * top).astype(dtype) for c in (dna, er, mito)])


def _screen(root: Path) -> Path:
    """Three plates, two fields each: 16-bit TIFFs in a folder with unicode and spaces,
    8-bit PNGs, and one 3-plane OME-TIFF per field (Frame_ columns)."""
    rows = []
    cells = []
    image_number = 0
    layouts = {"plate 1": "tiff16", "plaque-2": "png8", "ome": "ome16"}
    for p, (plate, kind) in enumerate(layouts.items()):
        folder = root / "données d'essai" / plate
        folder.mkdir(parents=True)
        for site in (1, 2):
            image_number += 1
            img = _field(8 if kind == "png8" else 16, seed=10 * p + site)
            row: dict[str, object] = {"Metadata_Plate": plate, "Metadata_Well": "B03",
                                      "Metadata_Site": site,
                                      "Metadata_Treatment": f"drug {p}",
                                      "Metadata_Week": f"w{p % 2}", "ImageNumber": image_number}
            if kind == "ome16":
                name = f"field é {site}.ome.tif"
                tifffile.imwrite(folder / name, img, ome=True, metadata={"axes": "CYX"})
            for c, ch in enumerate(CHANNELS):
                if kind == "tiff16":
                    name = f"B03 s{site} {ch}.tif"
                    tifffile.imwrite(folder / name, img[c])
                elif kind == "png8":
                    name = f"B03_s{site}_{ch}.png"
                    cv2.imwrite(str(folder / name), img[c])
                else:
                    row[f"Frame_{ch}"] = c
                row[f"FileName_{ch}"] = name
                row[f"PathName_{ch}"] = f"données d'essai/{plate}"
            rows.append(row)
            for y, x in CELLS:
                cells.append({"ImageNumber": image_number, "Metadata_Plate": plate,
                              "Metadata_Site": site, "Nuclei_Location_Center_X": x,
                              "Nuclei_Location_Center_Y": y, "MyX": x, "MyY": y})
    pd.DataFrame(rows).to_csv(root / "load_data.csv", index=False)
    pd.DataFrame(cells).to_csv(root / "cells.csv", index=False)
    return root / "load_data.csv"


@pytest.fixture(scope="module")
def screen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _screen(tmp_path_factory.mktemp("screen"))


def _centred(store: Store) -> None:
    """Every crop has its Mito marker pixel exactly at the crop centre."""
    x = store.read(slice(None))
    mito = x[:, store.channels.index("Mito")].reshape(len(store), -1)
    peak = np.stack(np.unravel_index(mito.argmax(1), (CROP, CROP)), 1)
    assert (peak == CROP // 2).all()


def test_locations_give_crops_centred_on_the_known_cells(screen: Path, tmp_path: Path) -> None:
    s = prepare_images(screen, tmp_path / "s", locations=screen.parent / "cells.csv",
                       crop_size=CROP, label="Metadata_Treatment", batch="Week", group="treatment")
    assert s.channels == list(CHANNELS) and len(s) == 6 * len(CELLS)
    _centred(s)
    assert set(s.obs["plate"]) == {"plate 1", "plaque-2", "ome"}
    assert s.label_column == "treatment" and s.obs["treatment"].str.startswith("drug").all()
    assert (s.obs["batch"] == s.obs["week"]).all() and (s.obs["compound"] == s.obs["treatment"]).all()
    got = s.obs[["center_y", "center_x"]].to_numpy()[:4]
    np.testing.assert_array_equal(got, CELLS)
    assert s.header["report"]["locations_unmatched_rows"] == 0
    # 8-bit PNG and 16-bit TIFF fields of the same scene give the same crops after scaling
    a = s.read_float(np.flatnonzero(s.obs["plate"] == "plate 1"))
    b = s.read_float(np.flatnonzero(s.obs["plate"] == "plaque-2"))
    assert np.abs(a[:, 0] - b[:, 0]).mean() < 0.03  # DNA: same nuclei, other bit depth


def test_nuclei_found_on_the_dna_channel_sit_on_the_known_centres(screen: Path,
                                                                   tmp_path: Path) -> None:
    s = prepare_images(screen, tmp_path / "s", crop_size=CROP, min_area=10)
    assert len(s) == 6 * len(CELLS) and s.header["config"]["nuclei_channel"] == "DNA"
    for _, g in s.obs.groupby(["plate", "site"]):
        got = g[["center_y", "center_x"]].to_numpy()
        d = np.hypot(*(got[:, None] - CELLS[None]).transpose(2, 0, 1)).min(1)
        assert d.max() < 0.6
    _centred(s)


def test_x_and_y_columns_channel_order_and_plates(screen: Path, tmp_path: Path) -> None:
    s = prepare_images(screen, tmp_path / "s", locations=screen.parent / "cells.csv",
                       x_col="MyX", y_col="MyY", channels=["Mito", "DNA"], crop_size=CROP,
                       plates=["ome"])
    assert s.channels == ["Mito", "DNA"] and set(s.obs["plate"]) == {"ome"}
    _centred(s)


def test_label_masks_give_the_objects_centroids(screen: Path, tmp_path: Path) -> None:
    root = tmp_path / "m"
    root.mkdir()
    df = pd.read_csv(screen)
    labels = np.zeros((SIZE, SIZE), np.uint16)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    for k, (y, x) in enumerate(CELLS):
        labels[(yy - y) ** 2 + (xx - x) ** 2 <= 9] = k + 1
    cv2.imwrite(str(root / "mask.png"), labels)
    df["NucleiMask"] = str(root / "mask.png")
    for ch in CHANNELS:
        df[f"PathName_{ch}"] = [str(screen.parent / p) for p in df[f"PathName_{ch}"]]
    df.to_csv(root / "ld.csv", index=False)
    s = prepare_images(root / "ld.csv", tmp_path / "s", masks_column="NucleiMask",
                       crop_size=CROP)
    assert len(s) == 6 * len(CELLS) and (s.obs["nucleus_area"] == 29).all()
    _centred(s)


def test_missing_files_are_skipped_and_listed_or_fatal_with_strict(screen: Path,
                                                                   tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(screen.parent, root)
    victim = root / "données d'essai" / "plate 1" / "B03 s2 ER.tif"
    victim.unlink()
    s = prepare_images(root / "load_data.csv", tmp_path / "s", crop_size=CROP, min_area=10)
    assert s.header["report"]["fields_skipped"] == {"missing": 1}
    assert "line 3" in s.header["report"]["skipped_examples"][0]
    assert "B03 s2 ER.tif" in s.header["report"]["skipped_examples"][0]
    with pytest.raises(DataError, match=r"1 of 6 fields lack image files, e\.g\. line 3: .*"
                                        r"B03 s2 ER\.tif"):
        prepare_images(root / "load_data.csv", tmp_path / "t", crop_size=CROP, strict=True)
    assert not (tmp_path / "t").exists()


def test_relative_paths_follow_root(screen: Path, tmp_path: Path) -> None:
    ld = tmp_path / "elsewhere" / "ld.csv"
    ld.parent.mkdir()
    ld.write_bytes(screen.read_bytes())
    with pytest.raises(DataError, match="none of the 6 fields has all its image files") as e:
        prepare_images(ld, tmp_path / "s", crop_size=CROP)
    assert "resolved against" in e.value.format() and "--root" in e.value.format()
    s = prepare_images(ld, tmp_path / "s", root=screen.parent, crop_size=CROP, min_area=10)
    assert len(s) == 6 * len(CELLS)


def _rewrite(screen: Path, tmp_path: Path, change) -> Path:
    df = pd.read_csv(screen)
    df = change(df)
    out = tmp_path / "ld.csv"
    df.to_csv(out, index=False)
    return out


def test_bad_input_is_one_clear_line(screen: Path, tmp_path: Path) -> None:
    root = screen.parent
    no_files = _rewrite(screen, tmp_path, lambda d: d[[c for c in d.columns
                                                       if not c.startswith(("FileName", "PathName"))]])
    cases: list[tuple[dict, type, str]] = [
        ({"load_data": no_files}, DataError, "has no FileName_<Channel> columns"),
        ({"load_data": screen, "channels": ["DNA", "Tubulin"]}, DataError,
         "unknown channel 'Tubulin'"),
        ({"load_data": screen, "nuclei_channel": "dna"}, DataError,
         "--nuclei-channel: unknown channel 'dna'; known: DNA, ER, Mito"),
        ({"load_data": screen, "label": "Metadata_Moa"}, DataError, "unknown column"),
        ({"load_data": screen, "shard": "2/2"}, ConfigError, "need 0 ≤ I < N"),
        ({"load_data": screen, "shard": "half"}, ConfigError, "expected I/N"),
        ({"load_data": screen, "shard": "0/9"}, ConfigError, "only 3 plate"),
        ({"load_data": screen, "plates": ["plate 3"]}, DataError, "unknown plate 'plate 3'"),
        ({"load_data": screen, "crop_size": 4}, ConfigError, "crop_size (--crop-size) must be"),
        ({"load_data": screen, "x_col": "MyX"}, DataError, "name columns of a --locations"),
        ({"load_data": root}, DataError, "is a directory"),
    ]
    for kw, kind, message in cases:
        with pytest.raises(kind, match=re.escape(message)):
            prepare_images(out=tmp_path / "s", **kw)
    assert not (tmp_path / "s").exists() and not (tmp_path / "s.partial").exists()


def test_locations_outside_the_image_name_the_file_and_line(screen: Path,
                                                            tmp_path: Path) -> None:
    cells = pd.read_csv(screen.parent / "cells.csv")
    cells.loc[5, "Nuclei_Location_Center_X"] = SIZE + 40
    bad = tmp_path / "cells.csv"
    cells.to_csv(bad, index=False)
    with pytest.raises(DataError, match=r"line 7: cell centre x=136, y=30 lies outside the "
                                        r"96×96 image") as e:
        prepare_images(screen, tmp_path / "s", locations=bad, crop_size=CROP)
    assert str(bad) in e.value.format()
    no_xy = tmp_path / "noxy.csv"
    cells.drop(columns=["Nuclei_Location_Center_X"]).to_csv(no_xy, index=False)
    with pytest.raises(DataError, match="no Nuclei_Location_Center_X/Y columns"):
        prepare_images(screen, tmp_path / "s", locations=no_xy, crop_size=CROP)


def test_channels_of_one_field_must_agree_in_shape_and_pixel_type(screen: Path,
                                                                  tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(screen.parent, root)
    folder = root / "données d'essai" / "plate 1"
    tifffile.imwrite(folder / "B03 s1 ER.tif", np.zeros((SIZE, SIZE), np.uint8))
    tifffile.imwrite(folder / "B03 s2 ER.tif", np.zeros((SIZE, SIZE - 8), np.uint16))
    s = prepare_images(root / "load_data.csv", tmp_path / "s", crop_size=CROP, min_area=10)
    assert s.header["report"]["fields_skipped"] == {"dtype": 1, "shape": 1}
    text = " ".join(s.header["report"]["skipped_examples"])
    assert "pixel type uint8 but the field's first channel is uint16" in text
    assert "image is 88×96 (W×H)" in text
    with pytest.raises(BioaugError, match="pixel type uint8"):
        prepare_images(root / "load_data.csv", tmp_path / "t", crop_size=CROP, strict=True)


def test_fieldset_carries_every_metadata_column(screen: Path) -> None:
    fs = load_data_fieldset(screen)
    assert fs.channels == list(CHANNELS) and fs.nuclei_channel == 0
    assert {"plate", "well", "site", "treatment", "week", "image_number"} <= set(fs.obs.columns)
    assert fs.obs["site"].dtype.kind == "i" and fs.obs["plate"].dtype == object
    assert len(fs.sources) == 6 and not fs.missing
    ome = next(s for i, s in fs.sources.items() if fs.obs.loc[i, "plate"] == "ome")
    assert [frame for _, frame in ome] == [0, 1, 2]


def test_ome_zarr_fields_through_the_loaddata_path(tmp_path: Path) -> None:
    zarr = pytest.importorskip("zarr")
    rows, cells = [], []
    for site in (1, 2):
        img = _field(16, seed=site)
        name = f"plate A/field {site}.zarr"
        g = zarr.open_group(str(tmp_path / name), mode="w")
        arr = g.create_array("0", shape=(1, 3, 1, SIZE, SIZE), dtype="uint16",
                             chunks=(1, 1, 1, 32, 32))
        arr[:] = img[None, :, None]
        g.attrs["multiscales"] = [{"axes": [{"name": a} for a in "tczyx"],
                                   "datasets": [{"path": "0"}]}]
        row: dict[str, object] = {"Metadata_Plate": "A", "Metadata_Site": site}
        for c, ch in enumerate(CHANNELS):
            row |= {f"FileName_{ch}": name, f"Frame_{ch}": c}
        rows.append(row)
        cells += [{"ImageNumber": site, "Nuclei_Location_Center_X": x,
                   "Nuclei_Location_Center_Y": y} for y, x in CELLS]
    pd.DataFrame(rows).to_csv(tmp_path / "ld.csv", index=False)
    pd.DataFrame(cells).to_csv(tmp_path / "cells.csv", index=False)
    s = prepare_images(tmp_path / "ld.csv", tmp_path / "s", locations=tmp_path / "cells.csv",
                       crop_size=CROP)
    assert len(s) == 2 * len(CELLS)
    _centred(s)


def test_interrupted_images_prepare_resumes(screen: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from bioaug.data.store import StoreWriter

    full = prepare_images(screen, tmp_path / "full", crop_size=CROP, min_area=10)
    commit = StoreWriter.commit

    def once(self: StoreWriter, unit: str) -> None:
        if self.done_units:
            raise KeyboardInterrupt
        commit(self, unit)

    monkeypatch.setattr(StoreWriter, "commit", once)
    with pytest.raises(KeyboardInterrupt):
        prepare_images(screen, tmp_path / "s", crop_size=CROP, min_area=10)
    monkeypatch.undo()
    assert not (tmp_path / "s").exists() and (tmp_path / "s.partial").is_dir()
    again = prepare_images(screen, tmp_path / "s", crop_size=CROP, min_area=10)
    np.testing.assert_array_equal(again.read(slice(None)), full.read(slice(None)))
    assert again.obs.equals(full.obs)
