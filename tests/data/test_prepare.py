from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from bioaug.data import bbbc021
from bioaug.data.info import info_store
from bioaug.data.prepare import (
    OBS_COLUMNS,
    crop_cells,
    find_nuclei,
    illumination_function,
    prepare_bbbc021,
    resize_crops,
    scale_intensity,
)
from bioaug.data.store import Store
from bioaug.errors import ConfigError, DataError

CROP = 48


def _vignette(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    r2 = ((yy - 0.45 * h) / h) ** 2 + ((xx - 0.55 * w) / w) ** 2
    return 1.0 - 1.2 * r2  # ≈ 0.55 in the far corner


def test_illumination_correction_flattens_a_known_vignette() -> None:
    h, w = 96, 128
    rng = np.random.default_rng(0)
    vig = _vignette(h, w)
    fields = []
    for _ in range(40):  # random bright spots (cells) on a flat background, then vignetted
        img = np.full((h, w), 100.0)
        for y, x in rng.uniform(-0.1, 1.1, (16, 2)) * (h, w):  # cells also beyond the edge
            yy, xx = np.ogrid[0:h, 0:w]
            img += 400 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 30.0)
        fields.append(np.stack([img * vig] * 3))
    stack = np.asarray(fields)
    illum = illumination_function(stack.mean(0), sigma_frac=0.08)
    assert illum.shape == (3, h, w)
    np.testing.assert_allclose(illum.mean((1, 2)), 1.0, atol=1e-5)
    truth = vig / vig.mean()
    assert np.abs(illum[0] - truth).mean() < 0.05  # the cells' random layout adds some error
    pure = illumination_function(np.stack([vig] * 3), sigma_frac=0.08)
    assert np.abs(pure - truth).max() < 0.05  # edges and corners included
    corrected = stack / illum
    corner, centre = (slice(0, 16), slice(0, 16)), (slice(40, 56), slice(60, 76))

    def ratio(a: np.ndarray) -> float:
        return float(a[:, 0][(slice(None), *corner)].mean() / a[:, 0][(slice(None), *centre)]
                     .mean())

    assert ratio(stack) < 0.75  # the vignette darkens the corner …
    assert ratio(corrected) == pytest.approx(1.0, abs=0.06)  # … and is gone after correction


def test_scale_intensity() -> None:
    x = np.array([[[0.0, 50.0, 100.0, 200.0]]])
    np.testing.assert_allclose(scale_intensity(x, [50.0], [150.0])[0, 0], [0, 0, 0.5, 1.0])


def test_find_nuclei_recovers_known_centres() -> None:
    h, w = 120, 160
    truth = np.array([[30.0, 40.0], [80.0, 100.0], [60.0, 140.0]])
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w), np.float32)
    for cy, cx in truth:
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= 8**2] = 0.8
    img[5, 5] = 1.0  # a speck below min_area
    centres, areas = find_nuclei(img, 0.3, sigma=1.0, min_area=50)
    order = np.argsort(centres[:, 0] * 1000 + centres[:, 1])
    np.testing.assert_allclose(centres[order], truth[np.argsort(truth[:, 0] * 1000 + truth[:, 1])],
                               atol=0.5)
    assert len(areas) == 3 and (areas > 150).all()


def test_crop_edges() -> None:
    img = np.arange(3 * 20 * 30, dtype=np.float32).reshape(3, 20, 30)
    centres = np.array([[10.0, 15.0], [2.0, 2.0]])
    crops, keep = crop_cells(img, centres, 8, "skip")
    assert keep.tolist() == [0] and crops.shape == (1, 3, 8, 8)
    np.testing.assert_array_equal(crops[0], img[:, 6:14, 11:19])
    crops, keep = crop_cells(img, centres, 8, "reflect")
    assert keep.tolist() == [0, 1]
    np.testing.assert_array_equal(crops[1][:, 2:, 2:], img[:, 0:6, 0:6])
    np.testing.assert_array_equal(crops[1][:, 1, 2:], img[:, 1, 0:6])  # mirrored row
    with pytest.raises(ConfigError, match="edge mode"):
        crop_cells(img, centres, 8, "wrap")


def test_resize_crops_preserves_mean() -> None:
    rng = np.random.default_rng(0)
    crops = rng.uniform(0, 1, (700, 3, 16, 16)).astype(np.float32)  # > 512 planes
    out = resize_crops(crops, 8)
    assert out.shape == (700, 3, 8, 8)
    np.testing.assert_allclose(out.mean((2, 3)), crops.mean((2, 3)), atol=1e-5)
    np.testing.assert_allclose(out[699, 2], crops[699, 2].reshape(8, 2, 8, 2).mean((1, 3)),
                               atol=1e-5)


@pytest.fixture(scope="module")
def prepared(twin: Path, tmp_path_factory: pytest.TempPathFactory) -> Store:
    return prepare_bbbc021(twin, tmp_path_factory.mktemp("p") / "store", crop_size=CROP)


def test_round_trip_crops_centred_on_nuclei(prepared: Store, twin: Path) -> None:
    s = prepared
    assert s.channels == ["DAPI", "Tubulin", "Actin"] and s.label_column == "moa"
    assert s.dtype == np.uint16 and s.image_size == (CROP, CROP)
    assert list(s.obs.columns) == list(OBS_COLUMNS)
    meta = bbbc021.load_metadata(twin)
    rep = s.header["report"]
    assert rep["fields_used"] == len(meta.fields) and rep["fields_skipped"] == {}
    # about the number of rendered cells is found (10 per field on average)
    assert 5 * len(meta.fields) < rep["nuclei_found"] < 14 * len(meta.fields)
    assert len(s) > 2 * len(meta.fields)
    # DAPI mass sits at the crop centre
    x = s.read_float(np.arange(len(s)))
    dapi = np.clip(x[:, 0] - np.median(x[:, 0], axis=(1, 2), keepdims=True), 0, None)
    yy, xx = np.mgrid[0:CROP, 0:CROP]
    c = CROP / 2 - 0.5
    win = (yy - c) ** 2 + (xx - c) ** 2 <= 12**2  # the central nucleus, not neighbours
    m = dapi * win
    cy = (m * yy).sum((1, 2)) / m.sum((1, 2))
    cx = (m * xx).sum((1, 2)) / m.sum((1, 2))
    off = np.hypot(cy - c, cx - c)
    assert np.median(off) < 1.5 and np.mean(off < 4) > 0.9
    centre_dapi = x[:, 0, CROP // 2 - 3:CROP // 2 + 3, CROP // 2 - 3:CROP // 2 + 3].mean()
    assert centre_dapi > 3 * x[:, 0].mean((1, 2)).mean() * 0.5
    # metadata follows the fields the crops came from
    merged = s.obs.merge(meta.fields, on=["plate", "well", "site"], suffixes=("", "_m"))
    assert len(merged) == len(s)
    assert (merged["compound"] == merged["compound_m"]).all()
    assert (merged["batch"] == merged["plate"].str.split("_").str[0]).all()
    assert set(s.obs["moa"].dropna()) <= {*bbbc021.MOA_CLASSES, "DMSO"}
    assert "DMSO" in set(s.obs["moa"])
    inside = (s.obs["center_x"] >= CROP / 2 - 1) & (s.obs["center_y"] >= CROP / 2 - 1)
    assert inside.all()  # edge="skip": no crop leaves the field
    norm = s.header["normalization"]["scaling"]["per_plate"]
    assert set(norm) == set(s.obs["plate"])


def _interrupt_after_plates(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """Make the next preparation stop (as if killed) once ``n`` plates are committed."""
    from bioaug.data.store import StoreWriter

    commit = StoreWriter.commit
    done = []

    def stop(self: StoreWriter, unit: str) -> None:
        if len(done) >= n:
            raise KeyboardInterrupt
        commit(self, unit)
        done.append(unit)

    monkeypatch.setattr(StoreWriter, "commit", stop)


def test_interrupted_prepare_resumes_without_duplicates(twin: Path, prepared: Store,
                                                        tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "store"
    _interrupt_after_plates(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        prepare_bbbc021(twin, out, crop_size=CROP)
    monkeypatch.undo()
    assert not out.exists()
    with pytest.raises(DataError, match="half-written"):
        info_store(out)
    with pytest.raises(DataError, match="interrupted"):
        Store.open(out)
    partial = out.with_name("store.partial")
    done = json.loads((partial / "progress.json").read_text())
    assert len(done["units"]) == 1
    with pytest.raises(DataError, match="other settings"):
        prepare_bbbc021(twin, out, crop_size=CROP + 2)
    resumed = prepare_bbbc021(twin, out, crop_size=CROP)
    assert len(resumed) == len(prepared)
    np.testing.assert_array_equal(resumed.read(slice(None)), prepared.read(slice(None)))
    assert resumed.obs.equals(prepared.obs)
    assert not resumed.obs.duplicated(["plate", "well", "site", "center_x", "center_y"]).any()


def test_workers_give_the_same_store(twin: Path, prepared: Store, tmp_path: Path) -> None:
    s2 = prepare_bbbc021(twin, tmp_path / "w2", crop_size=CROP, workers=2)
    np.testing.assert_array_equal(s2.read(slice(None)), prepared.read(slice(None)))
    assert s2.obs.equals(prepared.obs)


def test_moa_only_resize_and_reflect(twin: Path, prepared: Store, tmp_path: Path) -> None:
    s = prepare_bbbc021(twin, tmp_path / "m", crop_size=CROP, resize=24, moa_only=True,
                        edge="reflect", plates=[prepared.obs["plate"].iloc[0]])
    assert s.image_size == (24, 24)
    assert s.obs["moa"].notna().all()
    assert s.obs["plate"].nunique() == 1
    assert len(s) > (prepared.obs["plate"] == s.obs["plate"].iloc[0]).sum() * 0.5


def _damage(root: Path) -> dict[str, str]:
    """Break four fields of the first plate in four ways; return what was broken."""
    meta = bbbc021.load_metadata(root)
    f = meta.fields
    plate = f["plate"].iloc[0]
    rows = f[f["plate"] == plate].iloc[:4]
    d = root / rows.iloc[0]["path"]
    (d / rows.iloc[0]["file_DAPI"]).write_bytes(b"II*\x00garbage")  # corrupt
    tifffile.imwrite(d / rows.iloc[1]["file_Tubulin"], np.ones((16, 16), np.float32))  # dtype
    tifffile.imwrite(d / rows.iloc[2]["file_Actin"], np.ones((40, 40), np.uint16))  # shape
    (d / rows.iloc[3]["file_Actin"]).unlink()  # a missing channel file
    return {"corrupt": rows.iloc[0]["file_DAPI"], "dtype": rows.iloc[1]["file_Tubulin"],
            "shape": rows.iloc[2]["file_Actin"], "missing": rows.iloc[3]["file_Actin"]}


def test_bad_fields_are_skipped_and_reported(twin_copy: Path, tmp_path: Path) -> None:
    broken = _damage(twin_copy)
    s = prepare_bbbc021(twin_copy, tmp_path / "s", crop_size=CROP)
    rep = s.header["report"]
    n = len(bbbc021.load_metadata(twin_copy).fields)
    assert rep["fields_used"] == n - 4
    assert rep["fields_skipped"] == {"missing": 1, "corrupt": 1, "dtype": 1, "shape": 1}
    text = " ".join(rep["skipped_examples"])
    for name in broken.values():
        assert name in text


def test_strict_makes_bad_fields_fatal(twin_copy: Path, tmp_path: Path) -> None:
    broken = _damage(twin_copy)
    with pytest.raises(DataError, match=r"1 of \d+ fields lack image files") as e:
        prepare_bbbc021(twin_copy, tmp_path / "s", crop_size=CROP, strict=True)
    assert broken["missing"] in e.value.format()
    meta = bbbc021.load_metadata(twin_copy)
    row = meta.fields[meta.fields["file_Actin"] == broken["missing"]].iloc[0]
    tifffile.imwrite(twin_copy / row["path"] / row["file_Actin"], np.ones((8, 8), np.uint16))
    with pytest.raises(DataError, match="cannot decode TIFF"):
        prepare_bbbc021(twin_copy, tmp_path / "s2", crop_size=CROP, strict=True)
    assert not (tmp_path / "s2").exists()


def test_empty_plate_is_reported(twin_copy: Path, tmp_path: Path) -> None:
    meta = bbbc021.load_metadata(twin_copy)
    plate = meta.plates[0]
    d = twin_copy / meta.fields[meta.fields["plate"] == plate]["path"].iloc[0]
    for f in d.iterdir():
        f.unlink()
    s = prepare_bbbc021(twin_copy, tmp_path / "s", crop_size=CROP)
    assert s.header["report"]["empty_plates"] == [plate]
    assert s.header["report"]["fields_skipped"] == {"missing": int((meta.fields["plate"]
                                                                    == plate).sum())}
    assert plate not in set(s.obs["plate"])


def test_nothing_to_read(tmp_path: Path, twin: Path) -> None:
    root = tmp_path / "csv_only"
    root.mkdir()
    for name in (bbbc021.IMAGE_CSV, bbbc021.MOA_CSV):
        (root / name).write_bytes((twin / name).read_bytes())
    with pytest.raises(DataError, match="none of the 16 fields has its image files"):
        prepare_bbbc021(root, tmp_path / "s")
    with pytest.raises(ConfigError, match="crop_size"):
        prepare_bbbc021(twin, tmp_path / "s", crop_size=2)
    with pytest.raises(ConfigError, match="percentiles"):
        prepare_bbbc021(twin, tmp_path / "s", percentiles=(99.0, 1.0))
    with pytest.raises(DataError, match="unknown plate"):
        prepare_bbbc021(twin, tmp_path / "s", plates=["Week99_1"])


def test_touching_nuclei_are_split() -> None:
    h, w = 80, 120
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w), np.float32)
    truth = [(40.0, 30.0), (40.0, 47.0), (40.0, 95.0), (20.0, 70.0)]  # first two touch
    for cy, cx in truth:
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= 9.5**2] = 0.8
    merged, _ = find_nuclei(img, 0.3, sigma=1.0, split=False)
    assert len(merged) == 3
    centres, _ = find_nuclei(img, 0.3, sigma=1.0)
    assert len(centres) == 4
    got = sorted(map(tuple, np.round(centres).astype(int)))
    want = sorted((int(y), int(x)) for y, x in truth)
    assert all(abs(a - c) <= 1.5 and abs(b - d) <= 1.5 for (a, b), (c, d) in zip(got, want, strict=True))


def test_store_holds_only_the_documented_files(prepared: Store) -> None:
    assert sorted(p.name for p in prepared.path.iterdir()) == ["header.json", "images.raw",
                                                               "obs.csv"]


def test_an_odd_first_field_does_not_set_the_plate_shape(twin_copy: Path, tmp_path: Path) -> None:
    meta = bbbc021.load_metadata(twin_copy)
    first = meta.fields.iloc[0]
    for ch in ("DAPI", "Tubulin", "Actin"):  # a consistent but wrongly sized first field
        tifffile.imwrite(twin_copy / first["path"] / first[f"file_{ch}"],
                         np.full((64, 64), 500, np.uint16))
    s = prepare_bbbc021(twin_copy, tmp_path / "s", crop_size=CROP)
    assert s.header["report"]["fields_skipped"] == {"shape": 1}
    assert first["file_DAPI"] in s.header["report"]["skipped_examples"][0]


def test_resize_crops_averages_blocks_and_takes_many_channels() -> None:
    from bioaug.data.prepare import resize_crops

    rng = np.random.default_rng(0)
    crops = rng.random((5, 3, 8, 8)).astype(np.float32)  # 15 planes: more than OpenCV's 4
    small = resize_crops(crops, 4)
    expected = crops.reshape(5, 3, 4, 2, 4, 2).mean(axis=(3, 5))
    np.testing.assert_allclose(small, expected, atol=1e-6)
    big = resize_crops(np.full((2, 3, 4, 4), 0.25, np.float32), 8)
    assert big.shape == (2, 3, 8, 8)
    np.testing.assert_allclose(big, 0.25, atol=1e-6)


def test_resize_zero_is_rejected_not_ignored(twin: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"resize \(--resize\): must be at least 4 \(got 0\)"):
        prepare_bbbc021(twin, tmp_path / "s", resize=0)


def test_crops_larger_than_the_field_get_a_useful_hint(twin: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no cells were found") as info:
        prepare_bbbc021(twin, tmp_path / "s", crop_size=400)
    assert "smaller --crop-size or --edge reflect" in info.value.format()


def _renamed_copy(src: Path, dst: Path, plates: dict[str, str]) -> Path:
    """The screen at ``src`` with its plates, plate folders and files renamed (and the CSV
    rewritten to match); the pixels are copied unchanged."""
    import pandas as pd

    df = pd.read_csv(src / "load_data.csv", dtype=str, keep_default_na=False)
    for col in [c for c in df.columns if c.startswith("FileName_")]:
        ch = col[len("FileName_"):]
        new_names, new_dirs = [], []
        for k, (name, folder) in enumerate(zip(df[col], df[f"PathName_{ch}"], strict=True)):
            plate = plates[df["Metadata_Plate"].iat[k]]
            new_dir = dst / "renamed images" / f"folder of {plate}"
            new_dir.mkdir(parents=True, exist_ok=True)
            new_name = f"{k:03d}-{ch[::-1]}-{name[::-1]}.tiff"
            (new_dir / new_name).write_bytes((src / folder / name).read_bytes())
            new_names.append(new_name)
            new_dirs.append(str(new_dir.relative_to(dst)))
        df[col], df[f"PathName_{ch}"] = new_names, new_dirs
    df["Metadata_Plate"] = df["Metadata_Plate"].map(plates)
    df.to_csv(dst / "renamed.csv", index=False)
    return dst / "renamed.csv"


def test_renaming_plates_folders_and_files_leaves_every_pixel_identical(tmp_path: Path) -> None:
    """What a store holds depends on the pixels, never on plate, folder or file names."""
    from bioaug.data.prepare import prepare_images
    from bioaug.data.synth_cellpainting import synth_cellpainting

    src = synth_cellpainting(tmp_path / "cp", plates=2, wells_per_plate=2, sites=2,
                             size=(96, 96), seed=3)
    kw = {"crop_size": 32, "label": "moa"}
    ref = prepare_images(src / "load_data.csv", tmp_path / "ref", **kw)
    x = ref.read(slice(None))
    assert len(ref) > 8
    keys = ["well", "site", "center_x", "center_y", "nucleus_area"]
    # the same plate order under new names: the whole store is identical, bit for bit
    same = _renamed_copy(src, tmp_path / "same", {"CP01": "Alpha/1 ü", "CP02": "Beta 2"})
    s = prepare_images(same, tmp_path / "s1", **kw)
    np.testing.assert_array_equal(s.read(slice(None)), x)
    assert s.obs[keys].equals(ref.obs[keys])
    # a renaming that reverses the plate order reorders the plates, not a pixel of a crop
    names = {"CP01": "zz-last", "CP02": "aa-first"}
    flipped = _renamed_copy(src, tmp_path / "flip", names)
    t = prepare_images(flipped, tmp_path / "s2", **kw)
    assert list(dict.fromkeys(t.obs["plate"])) == ["aa-first", "zz-last"]
    y = t.read(slice(None))
    for old, new in names.items():
        a = np.flatnonzero(ref.obs["plate"] == old)
        b = np.flatnonzero(t.obs["plate"] == new)
        np.testing.assert_array_equal(y[b], x[a])
        assert t.obs.iloc[b][keys].reset_index(drop=True).equals(
            ref.obs.iloc[a][keys].reset_index(drop=True))
        per = ("normalization", "scaling", "per_plate")
        got, want = t.header, ref.header
        for k in per:
            got, want = got[k], want[k]
        assert got[new] == want[old]


def test_sample_positions_depend_on_the_field_size_only() -> None:
    from bioaug.data.prepare import N_SAMPLES, sample_positions

    a = sample_positions((96, 128))
    assert len(a) == N_SAMPLES == len(np.unique(a)) and (np.diff(a) > 0).all()
    assert a.max() < 96 * 128
    np.testing.assert_array_equal(a, sample_positions((96, 128)))
    assert not np.array_equal(a, sample_positions((128, 96)))
    assert len(sample_positions((8, 8))) == 64


def test_bbbc021_comes_without_given_illumination(twin: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="--illum given: bbbc021 comes without illumination "
                                        "functions") as e:
        prepare_bbbc021(twin, tmp_path / "s", crop_size=CROP, illum="given")
    assert "--illum compute" in e.value.format()
    assert not (tmp_path / "s").exists() and not (tmp_path / "s.partial").exists()
