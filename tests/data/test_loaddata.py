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
        ({"load_data": screen, "crop_size": 4}, ConfigError, "crop_size (--crop-size): must be at least 8"),
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


# -- JUMP / CellProfiler LoadData: Orig and Illum columns, Frame_, ChannelNumber_ ---------
#: known illumination functions: integer ramps, so that ``(F · G) / G == F`` exactly
GRADIENTS = {ch: 1.0 + np.floor(np.mgrid[0:SIZE, 0:SIZE][axis] * 4 / SIZE)
             for ch, axis in zip(CHANNELS, (1, 0, 1), strict=True)}
JUMP_PLATES = ("BR00117010", "BR00117011")


def _flat_fields() -> dict[tuple[str, int], np.ndarray]:
    """The true (evenly lit) fields, at most 15000 so that × 4 still fits 16 bits."""
    return {(plate, site): _field(16, seed=20 * p + site) // 4
            for p, plate in enumerate(JUMP_PLATES) for site in (1, 2)}


def _jump_screen(root: Path, *, lit: bool = True, illum_columns: bool = True,
                 relative: bool = False) -> Path:
    """A JUMP-style screen: one TIFF per channel (``Frame_`` 0, ``ChannelNumber_`` 1–3),
    ``FileName_Orig<Ch>`` / ``PathName_Orig<Ch>`` and CellProfiler ``.npy`` illumination
    functions in ``FileName_Illum<Ch>`` / ``PathName_Illum<Ch>``; folders absolute with a
    trailing ``/`` (or relative to ``root``). ``lit``: the images carry the gradients."""
    rows = []
    for (plate, site), flat in _flat_fields().items():
        folder = root / "images" / plate
        illum_dir = root / "illum" / plate
        folder.mkdir(parents=True, exist_ok=True)
        illum_dir.mkdir(parents=True, exist_ok=True)
        row: dict[str, object] = {"Metadata_Source": "source_0", "Metadata_Plate": plate,
                                  "Metadata_Well": "A01", "Metadata_Site": site}
        for c, ch in enumerate(CHANNELS):
            name = f"r01c01f0{site}p01-ch{c + 1}sk1fk1fl1.tiff"
            plane = flat[c] * (GRADIENTS[ch] if lit else 1)
            tifffile.imwrite(folder / name, plane.astype(np.uint16))
            np.save(illum_dir / f"{plate}_Illum{ch}.npy", GRADIENTS[ch].astype(np.float32))
            where = f"images/{plate}/" if relative else f"{folder}/"
            row |= {f"FileName_Orig{ch}": name, f"PathName_Orig{ch}": where,
                    f"Frame_Orig{ch}": 0, f"ChannelNumber_Orig{ch}": c + 1}
            if illum_columns:
                row |= {f"FileName_Illum{ch}": f"{plate}_Illum{ch}.npy",
                        f"PathName_Illum{ch}": (f"illum/{plate}/" if relative
                                                else f"{illum_dir}/")}
        rows.append(row)
    out = root / "load_data_with_illum.csv"
    pd.DataFrame(rows).to_csv(out, index=False)
    return out


def test_jump_csv_prepares_without_channels_and_applies_the_given_illumination(
        tmp_path: Path) -> None:
    ld = _jump_screen(tmp_path / "lit")
    fs = load_data_fieldset(ld)
    assert fs.channels == list(CHANNELS) and fs.illum_mode == "given"
    assert fs.extra["channel_numbers"] == {"DNA": [1], "ER": [2], "Mito": [3]}
    assert fs.extra["csv_channels"] == {"DNA": "OrigDNA", "ER": "OrigER", "Mito": "OrigMito"}
    assert not any(c.startswith(("frame", "channelnumber", "Frame", "Channel"))
                   for c in fs.obs.columns)
    lit = prepare_images(ld, tmp_path / "given", crop_size=CROP, min_area=10)
    assert lit.channels == list(CHANNELS) and len(lit) == 4 * len(CELLS)
    assert lit.header["config"]["illum"] == "given"
    assert lit.header["normalization"]["illumination"]["mode"] == "given"
    # known answer: the same fields without the gradient and without correction
    flat = _jump_screen(tmp_path / "flat", lit=False, illum_columns=False)
    ref = prepare_images(flat, tmp_path / "ref", crop_size=CROP, min_area=10, illum="none")
    np.testing.assert_array_equal(lit.read(slice(None)), ref.read(slice(None)))
    assert lit.obs.equals(ref.obs)
    assert lit.header["normalization"]["scaling"] == ref.header["normalization"]["scaling"]
    # and the correction did something: without it the gradient stays in the crops
    raw = prepare_images(ld, tmp_path / "none", crop_size=CROP, min_area=10, illum="none",
                         locations=None)
    assert raw.header["config"]["illum"] == "none"
    assert not np.array_equal(raw.read(slice(None)), ref.read(slice(None)))


def test_relative_jump_paths_are_read_with_root(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ld = _jump_screen(data, relative=True)
    moved = tmp_path / "csvs" / ld.name
    moved.parent.mkdir()
    moved.write_bytes(ld.read_bytes())
    with pytest.raises(DataError, match="none of the 4 fields has all its image files"):
        prepare_images(moved, tmp_path / "s", crop_size=CROP)
    s = prepare_images(moved, tmp_path / "s", root=data, crop_size=CROP, min_area=10)
    ref = prepare_images(_jump_screen(tmp_path / "abs"), tmp_path / "ref", crop_size=CROP,
                         min_area=10)
    np.testing.assert_array_equal(s.read(slice(None)), ref.read(slice(None)))


def test_orig_and_illum_names_channel_choice_and_illum_modes(tmp_path: Path) -> None:
    ld = _jump_screen(tmp_path / "j")
    fs = load_data_fieldset(ld, channels=["OrigMito", "DNA"], nuclei_channel="OrigDNA")
    assert fs.channels == ["Mito", "DNA"] and fs.nuclei_channel == 1
    src = fs.illum[fs.fields.index[0]]
    assert [Path(s).name for s in src] == ["BR00117010_IllumMito.npy", "BR00117010_IllumDNA.npy"]
    assert load_data_fieldset(ld, illum="compute").illum is None
    df = pd.read_csv(ld)
    no_er = tmp_path / "no_er.csv"
    df.drop(columns=["FileName_IllumER", "PathName_IllumER"]).to_csv(no_er, index=False)
    with pytest.raises(DataError, match=r"--illum given: channel 'ER' \(FileName_OrigER\) has "
                                        r"no illumination function") as e:
        load_data_fieldset(no_er)
    assert "IllumDNA, IllumMito" in e.value.format() and "--illum compute" in e.value.format()
    assert load_data_fieldset(no_er, channels=["DNA", "Mito"]).illum_mode == "given"
    plain = tmp_path / "plain.csv"
    df[[c for c in df.columns if "Illum" not in c]].to_csv(plain, index=False)
    assert load_data_fieldset(plain).illum_mode == "compute"
    with pytest.raises(DataError, match=r"--illum given: the LoadData table has no "
                                        r"FileName_Illum<Ch>"):
        load_data_fieldset(plain, illum="given")
    with pytest.raises(ConfigError, match=r"illum \(--illum\)"):
        prepare_images(ld, tmp_path / "s", illum="divide")
    both = tmp_path / "both.csv"
    df.assign(FileName_DNA=df["FileName_OrigDNA"]).to_csv(both, index=False)
    with pytest.raises(DataError, match="'OrigDNA' and 'DNA' both give channel 'DNA'"):
        load_data_fieldset(both)


def test_illumination_files_that_do_not_fit_skip_their_fields(tmp_path: Path) -> None:
    ld = _jump_screen(tmp_path / "j")
    bad = tmp_path / "j" / "illum" / JUMP_PLATES[1] / f"{JUMP_PLATES[1]}_IllumER.npy"
    np.save(bad, np.ones((SIZE, SIZE - 8), np.float32))
    s = prepare_images(ld, tmp_path / "s", crop_size=CROP, min_area=10)
    assert set(s.obs["plate"]) == {JUMP_PLATES[0]}
    assert s.header["report"]["fields_skipped"] == {"illumination": 2}
    text = " ".join(s.header["report"]["skipped_examples"])
    assert "illumination function is 88×96 (W×H) but the plate's fields are 96×96" in text
    assert bad.name in text and "line 4" in text
    np.save(bad, np.zeros((SIZE, SIZE), np.float32))
    with pytest.raises(DataError, match="not finite and positive"):
        prepare_images(ld, tmp_path / "t", crop_size=CROP, min_area=10, strict=True)
    bad.unlink()
    s = prepare_images(ld, tmp_path / "u", crop_size=CROP, min_area=10)
    assert s.header["report"]["fields_skipped"] == {"missing": 2}
    assert bad.name in s.header["report"]["skipped_examples"][0]


def test_url_columns_local_file_urls_and_remote_urls(tmp_path: Path) -> None:
    ld = _jump_screen(tmp_path / "j")
    df = pd.read_csv(ld)
    for ch in CHANNELS:
        for kind in ("Orig", "Illum"):
            paths = [Path(p) / f for p, f in zip(df[f"PathName_{kind}{ch}"],
                                                  df[f"FileName_{kind}{ch}"], strict=True)]
            df[f"URL_{kind}{ch}"] = [p.as_uri() if kind == "Orig" else str(p) for p in paths]
            df = df.drop(columns=[f"PathName_{kind}{ch}", f"FileName_{kind}{ch}"])
    urls = tmp_path / "urls.csv"
    df.to_csv(urls, index=False)
    s = prepare_images(urls, tmp_path / "s", crop_size=CROP, min_area=10)
    ref = prepare_images(ld, tmp_path / "ref", crop_size=CROP, min_area=10)
    assert s.channels == list(CHANNELS) and s.header["config"]["illum"] == "given"
    np.testing.assert_array_equal(s.read(slice(None)), ref.read(slice(None)))
    df.loc[1, "URL_OrigER"] = "s3://cellpainting-gallery/cpg0016/x.tiff"
    df.to_csv(urls, index=False)
    with pytest.raises(DataError, match=r"line 3: URL_OrigER: 's3://cellpainting-gallery/.*' "
                                        r"is a remote URL \(s3\); remote URLs are not fetched"
                       ) as e:
        prepare_images(urls, tmp_path / "t", crop_size=CROP)
    assert "download the images" in e.value.format()


def test_series_and_frames_pick_a_plane_of_a_multi_series_file(tmp_path: Path) -> None:
    img = _field(16, seed=3)
    with tifffile.TiffWriter(tmp_path / "multi.ome.tif", ome=True) as tif:
        tif.write(np.zeros((2, SIZE, SIZE), np.uint16), metadata={"axes": "CYX"})
        tif.write(img, metadata={"axes": "CYX"})
    row: dict[str, object] = {"Metadata_Plate": "P", "Metadata_Site": 1}
    for c, ch in enumerate(CHANNELS):
        row |= {f"FileName_{ch}": "multi.ome.tif", f"Series_{ch}": 1, f"Frame_{ch}": c}
    pd.DataFrame([row]).to_csv(tmp_path / "ld.csv", index=False)
    fs = load_data_fieldset(tmp_path / "ld.csv")
    assert [s[1:] for s in next(iter(fs.sources.values()))] == [(0, 1), (1, 1), (2, 1)]
    assert "series" not in fs.obs.columns and "frame" not in fs.obs.columns
    s = prepare_images(tmp_path / "ld.csv", tmp_path / "s", crop_size=CROP, min_area=10)
    assert len(s) == len(CELLS)
    _centred(s)


def test_when_every_field_is_skipped_the_error_tallies_the_reasons(tmp_path: Path) -> None:
    folder = tmp_path / "img"
    folder.mkdir()
    rows = []
    for site, kind in enumerate(("npy", "u32", "corrupt", "npy2", "missing"), start=1):
        row: dict[str, object] = {"Metadata_Plate": "P", "Metadata_Site": site}
        for c, ch in enumerate(CHANNELS):
            plane = _field(16, seed=site)[c]
            name = f"s{site}_{ch}.tif"
            if kind.startswith("npy"):
                name = f"s{site}_{ch}.npy"
                np.save(folder / name, plane)
            elif kind == "u32":
                tifffile.imwrite(folder / name, plane.astype(np.uint32))
            elif kind == "corrupt":
                (folder / name).write_bytes(b"not a tiff")
            elif ch != "Mito":
                tifffile.imwrite(folder / name, plane)
            row |= {f"FileName_{ch}": name, f"PathName_{ch}": "img"}
        rows.append(row)
    pd.DataFrame(rows).to_csv(tmp_path / "ld.csv", index=False)
    with pytest.raises(DataError) as e:
        prepare_images(tmp_path / "ld.csv", tmp_path / "s", crop_size=CROP)
    text = e.value.format()
    assert "no cells were found: 5 of 5 fields were skipped and 0 used" in text
    lines = text.splitlines()
    assert f"  corrupt: 3 fields, e.g. {folder / 's1_DNA.npy'}: unsupported image format " \
           "'.npy'" in text
    assert any(ln.startswith("  corrupt: 3 fields") for ln in lines)
    assert f"  dtype: 1 field, e.g. {folder / 's2_DNA.tif'}: pixel type uint32" in text
    assert f"  missing: 1 field, e.g. line 6: {folder / 's5_Mito.tif'}" in text
    assert "every field was skipped" in text and "--min-area" not in text
    assert "resolved against" in text  # the missing-file hint
    assert not (tmp_path / "s").exists()


REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real" / "nf1-cellpainting"


def test_real_fields_with_given_illumination_functions(tmp_path: Path) -> None:
    """The five real NF1 Cell Painting fields through a JUMP-style CSV: illumination
    functions computed here from the fields' mean (as bioaug's own ``compute`` does) and
    given as ``.npy`` files must give the store that ``--illum compute`` gives."""
    from bioaug.data.prepare import illumination_function

    folder = REAL / "Plate_2_images"
    if not folder.is_dir():
        pytest.skip(f"real data absent: {folder} (see ../shared/data/real/README.md)")
    pattern = re.compile(r"^(?P<well>[A-Z]\d+)_01_(?P<num>\d)_(?P<site>\d+)_(?P<ch>DAPI|GFP|RFP)"
                         r"_001\.tif$")
    fields: dict[tuple[str, str], dict[str, object]] = {}
    for f in sorted(folder.iterdir()):
        m = pattern.match(f.name)
        if m is None:
            continue
        row = fields.setdefault((m["well"], m["site"]), {
            "Metadata_Plate": "Plate_2", "Metadata_Well": m["well"], "Metadata_Site": m["site"]})
        row |= {f"FileName_Orig{m['ch']}": f.name, f"PathName_Orig{m['ch']}": f"{folder}/",
                f"Frame_Orig{m['ch']}": 0, f"ChannelNumber_Orig{m['ch']}": int(m["num"])}
    assert len(fields) == 5
    channels = ["DAPI", "GFP", "RFP"]
    mean = np.mean([np.stack([tifffile.imread(folder / str(r[f"FileName_Orig{ch}"]))
                              for ch in channels]) for r in fields.values()], axis=0)
    illum = illumination_function(mean, sigma_frac=0.1)
    for c, ch in enumerate(channels):
        np.save(tmp_path / f"Plate_2_Illum{ch}.npy", illum[c])
        for r in fields.values():
            r |= {f"FileName_Illum{ch}": f"Plate_2_Illum{ch}.npy",
                  f"PathName_Illum{ch}": f"{tmp_path}/"}
    pd.DataFrame(list(fields.values())).to_csv(tmp_path / "load_data.csv", index=False)
    given = prepare_images(tmp_path / "load_data.csv", tmp_path / "given", crop_size=64)
    assert given.channels == channels and given.header["config"]["illum"] == "given"
    assert given.header["config"]["nuclei_channel"] == "DAPI"
    assert given.header["report"]["fields_used"] == 5 and len(given) >= 5 * 20
    assert given.header["channel_numbers"] == {"DAPI": [1], "GFP": [2], "RFP": [3]}
    computed = prepare_images(tmp_path / "load_data.csv", tmp_path / "computed", crop_size=64,
                              illum="compute")
    assert len(computed) == len(given) and computed.obs.equals(given.obs)
    diff = np.abs(given.read(slice(None)).astype(np.int32) - computed.read(slice(None)))
    assert diff.max() <= 1  # the same function, summed in another order


def _raw_rewrite(screen: Path, tmp_path: Path, change) -> Path:
    """The LoadData CSV with its lines changed as text (what pandas cannot write)."""
    lines = screen.read_text(encoding="utf-8").splitlines()
    out = tmp_path / "raw.csv"
    out.write_text("\n".join(change(lines)) + "\n", encoding="utf-8")
    return out


def test_image_columns_without_their_image_are_named(screen: Path, tmp_path: Path) -> None:
    no_er_files = _rewrite(screen, tmp_path, lambda d: d.drop(columns=["FileName_ER"]))
    with pytest.raises(DataError, match=r"column PathName_ER has no FileName_ER \(or URL_ER\) "
                                        r"column: image 'ER' would be left out") as e:
        load_data_fieldset(no_er_files)
    assert "images named: DNA, Mito" in e.value.format()
    frame_only = _rewrite(screen, tmp_path, lambda d: d.assign(Frame_GFP=0))
    with pytest.raises(DataError, match=r"column Frame_GFP has no FileName_GFP"):
        load_data_fieldset(frame_only)
    no_er_path = _rewrite(screen, tmp_path, lambda d: d.drop(columns=["PathName_ER"]))
    with pytest.raises(DataError, match=r"column FileName_ER has no PathName_ER column, but "
                                        r"PathName_DNA, PathName_Mito are given"):
        load_data_fieldset(no_er_path)
    no_paths = _rewrite(screen, tmp_path, lambda d: d.drop(columns=[
        f"PathName_{ch}" for ch in CHANNELS]))
    assert load_data_fieldset(no_paths).channels == list(CHANNELS)  # one way for all: fine


def test_a_column_named_twice_is_named(screen: Path, tmp_path: Path) -> None:
    header_at = {name: i for i, name in enumerate(screen.read_text().splitlines()[0].split(","))}
    k = header_at["FileName_DNA"]

    def repeat(lines: list[str]) -> list[str]:
        return [line + "," + (line.split(",")[k] if i else "FileName_DNA")
                for i, line in enumerate(lines)]

    with pytest.raises(DataError, match=rf"the LoadData table names column FileName_DNA twice "
                                        rf"\(columns {k + 1} and {len(header_at) + 1}\)"):
        load_data_fieldset(_raw_rewrite(screen, tmp_path, repeat))


def test_rows_naming_the_same_files_are_refused_with_their_lines(screen: Path,
                                                                 tmp_path: Path) -> None:
    twice = _rewrite(screen, tmp_path, lambda d: pd.concat([d, d.iloc[[0, 3]]]))
    with pytest.raises(DataError, match=r"rows name the same image files: lines 2 and 8; "
                                        r"lines 5 and 9; each field must be listed once"):
        prepare_images(twice, tmp_path / "s", crop_size=CROP)
    assert not (tmp_path / "s").exists() and not (tmp_path / "s.partial").exists()
    # the same file in two planes of one field is not a repeated field
    ome = load_data_fieldset(screen, plates=["ome"])
    assert len(ome.sources) == 2


def test_an_empty_plate_names_its_lines(screen: Path, tmp_path: Path) -> None:
    def blank(d: pd.DataFrame) -> pd.DataFrame:
        d = d.astype({"Metadata_Plate": object})
        d.loc[[1, 4], "Metadata_Plate"] = ""
        return d

    with pytest.raises(DataError, match=r"lines 3 and 6: Metadata_Plate is empty"):
        load_data_fieldset(_rewrite(screen, tmp_path, blank))


def test_semicolon_separated_tables_say_so(screen: Path, tmp_path: Path) -> None:
    semi = _rewrite(screen, tmp_path, lambda d: d)
    pd.read_csv(screen).to_csv(semi, sep=";", index=False)
    with pytest.raises(DataError, match="the LoadData table is semicolon-separated; use commas"):
        prepare_images(semi, tmp_path / "s", crop_size=CROP)
    cells = tmp_path / "cells.csv"
    pd.read_csv(screen.parent / "cells.csv").to_csv(cells, sep=";", index=False)
    with pytest.raises(DataError, match="the locations table is semicolon-separated"):
        load_data_fieldset(screen, locations=cells)
