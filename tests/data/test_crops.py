"""Pre-cut crops → store: known answers, layouts, geometry, obs, shards, errors, real cells."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bioaug.data.crops import (
    SOURCE_ROW,
    fit_crops,
    infer_layout,
    plate_percentiles,
    prepare_crops,
    to_nchw,
)
from bioaug.data.merge import merge_stores
from bioaug.data.store import Store
from bioaug.errors import ConfigError, DataError
from tests.conftest import REPO

IFC = REPO.parent / "shared" / "data" / "real" / "ifc-cellcycle"


def _crops(n: int = 6, c: int = 2, h: int = 8, w: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4000, size=(n, c, h, w)).astype(np.uint16)


def _obs(path: Path, **columns: list) -> Path:
    pd.DataFrame(columns).to_csv(path, index=False)
    return path


# -- known answers ------------------------------------------------------------------------
def test_known_percentiles_give_known_uint16(tmp_path: Path) -> None:
    # plate A holds 0 and 10, plate B 100, 200 and 300: with (0, 100) percentiles each plate
    # maps its own min → 0 and max → 65535, channel by channel
    a = np.zeros((2, 2, 2, 2), np.uint16)
    a[0, 0], a[1, 0] = 0, 10
    a[0, 1], a[1, 1] = 5, 7
    b = np.zeros((3, 2, 2, 2), np.uint16)
    b[0, 0], b[1, 0], b[2, 0] = 100, 200, 300
    b[:, 1] = 50
    np.save(tmp_path / "x.npy", np.concatenate([a, b]))
    obs = _obs(tmp_path / "obs.csv", plate=["A", "A", "B", "B", "B"])
    store = prepare_crops(tmp_path / "x.npy", tmp_path / "s", obs=obs, percentiles=(0, 100),
                          layout="NCHW")
    img = store.read(slice(None))
    assert img.dtype == np.uint16 and img.shape == (5, 2, 2, 2)
    assert img[:, 0, 0, 0].tolist() == [0, 65535, 0, 32768, 65535]
    assert img[:2, 1, 0, 0].tolist() == [0, 65535]
    assert (img[2:, 1] == 0).all()  # a flat channel: lo == hi, everything maps to 0
    per_plate = store.header["normalization"]["scaling"]["per_plate"]
    assert per_plate == {"A": {"lo": [0.0, 5.0], "hi": [10.0, 7.0]},
                         "B": {"lo": [100.0, 50.0], "hi": [300.0, 50.0]}}


def test_default_percentiles_exact_on_every_pixel() -> None:
    crops = np.arange(1000, dtype=np.uint16).reshape(10, 1, 10, 10)
    lo, hi = plate_percentiles(crops, (0.1, 99.9))
    # linear interpolation: position 0.001 × 999 = 0.999 and 0.999 × 999 = 998.001
    assert lo.tolist() == pytest.approx([0.999]) and hi.tolist() == pytest.approx([998.001])
    ragged = [crops[0], crops[1:].transpose(1, 0, 2, 3).reshape(1, 90, 10)]
    lo2, hi2 = plate_percentiles(ragged, (0.1, 99.9))
    assert lo2.tolist() == pytest.approx([0.999]) and hi2.tolist() == pytest.approx([998.001])


def test_default_percentiles_known_output(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.arange(1000, dtype=np.uint16).reshape(10, 1, 10, 10))
    img = prepare_crops(tmp_path / "x.npy", tmp_path / "s").read(slice(None)).ravel()
    assert img[0] == 0 and img[999] == 65535
    # round((500 - 0.999) / (998.001 - 0.999) · 65535) = round(32800.33)
    assert img[500] == 32800


# -- layouts ----------------------------------------------------------------------------
def test_infer_layout() -> None:
    assert infer_layout((5, 3, 40, 40)) == "NCHW"
    assert infer_layout((5, 40, 40, 3)) == "NHWC"
    assert infer_layout((5, 4, 4, 4)) is None
    assert infer_layout((5, 3, 40, 3)) is None


def test_nhwc_and_nchw_give_identical_stores(tmp_path: Path) -> None:
    x = _crops()
    np.save(tmp_path / "nchw.npy", x)
    np.save(tmp_path / "nhwc.npy", x.transpose(0, 2, 3, 1))
    obs = _obs(tmp_path / "obs.csv", label=list("aabbcc"))
    s1 = prepare_crops(tmp_path / "nchw.npy", tmp_path / "s1", obs=obs)
    s2 = prepare_crops(tmp_path / "nhwc.npy", tmp_path / "s2", obs=obs)
    s3 = prepare_crops(tmp_path / "nhwc.npy", tmp_path / "s3", obs=obs, layout="NHWC")
    assert np.array_equal(s1.read(slice(None)), s2.read(slice(None)))
    assert np.array_equal(s1.read(slice(None)), s3.read(slice(None)))
    assert s1.obs.equals(s2.obs)
    assert s1.header["config"]["layout"] == "NCHW" and s2.header["config"]["layout"] == "NHWC"


def test_ambiguous_layout_asks_for_layout(tmp_path: Path) -> None:
    x = _crops(c=4, h=4, w=4)
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(DataError, match="cannot tell the channel axis") as exc:
        prepare_crops(tmp_path / "x.npy", tmp_path / "s")
    assert "--layout" in str(exc.value)
    store = prepare_crops(tmp_path / "x.npy", tmp_path / "s", layout="NCHW")
    assert store.n_channels == 4


def test_pages_split_into_channels() -> None:
    pages = np.arange(4 * 2 * 3 * 3).reshape(8, 3, 3)
    arr, layout = to_nchw(pages, None, n_channels=2)
    assert arr.shape == (4, 2, 3, 3) and layout == "NCHW"
    assert np.array_equal(arr[1, 0], pages[2]) and np.array_equal(arr[1, 1], pages[3])
    with pytest.raises(DataError, match="8 pages do not split into crops of 3"):
        to_nchw(pages, None, n_channels=3)


# -- geometry -----------------------------------------------------------------------------
def test_fit_crops_centre_crop_and_pad() -> None:
    x = np.arange(36, dtype=np.float32).reshape(1, 1, 6, 6)
    assert np.array_equal(fit_crops(x, 4)[0, 0], x[0, 0, 1:5, 1:5])
    assert np.array_equal(fit_crops(x, 3)[0, 0], x[0, 0, 1:4, 1:4])  # odd surplus: 1 top
    row = np.array([1.0, 2.0, 3.0], np.float32).reshape(1, 1, 1, 3)
    tall = np.repeat(row, 5, axis=2)  # 5 high, 3 wide → 5×5: pad columns only
    assert fit_crops(tall, 5, "reflect")[0, 0, 0].tolist() == [2, 1, 2, 3, 2]
    assert fit_crops(tall, 5, "edge")[0, 0, 0].tolist() == [1, 1, 2, 3, 3]
    assert fit_crops(tall, 5, "constant")[0, 0, 0].tolist() == [0, 1, 2, 3, 0]
    assert fit_crops(tall, 6, "constant")[0, 0, 0].tolist() == [0, 1, 2, 3, 0, 0]
    wide = np.arange(24, dtype=np.float32).reshape(1, 1, 4, 6)
    out = fit_crops(wide, 4, "constant")
    assert out.shape == (1, 1, 4, 4) and np.array_equal(out[0, 0], wide[0, 0, :, 1:5])
    assert fit_crops(x, None) is x


def test_crop_pad_resize_in_store(tmp_path: Path) -> None:
    x = np.zeros((3, 1, 10, 10), np.uint16)
    x[:, 0, 3:7, 3:7] = 1000  # a bright centre square on a dark background
    x[:, 0, 0, 0] = 0
    np.save(tmp_path / "x.npy", x)
    crop = prepare_crops(tmp_path / "x.npy", tmp_path / "c", crop_size=4, percentiles=(0, 100))
    assert crop.image_size == (4, 4) and (crop.read(slice(None)) == 65535).all()
    pad = prepare_crops(tmp_path / "x.npy", tmp_path / "p", crop_size=14, pad="constant",
                        percentiles=(0, 100))
    img = pad.read(slice(None))
    assert pad.image_size == (14, 14) and img[0, 0, 5:9, 5:9].min() == 65535
    assert img.sum() == 3 * 16 * 65535
    small = prepare_crops(tmp_path / "x.npy", tmp_path / "r", crop_size=4, resize=8,
                          percentiles=(0, 100))
    assert small.image_size == (8, 8) and (small.read(slice(None)) == 65535).all()
    native = prepare_crops(tmp_path / "x.npy", tmp_path / "n")
    assert native.image_size == (10, 10)
    assert native.header["normalization"]["geometry"] == {"crop_size": None,
                                                          "pad": "reflect", "resize": None}


# -- obs ----------------------------------------------------------------------------------
def test_obs_columns_carried_and_label(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", _crops(n=4))
    obs = _obs(tmp_path / "obs.csv", Metadata_Plate=["p1", "p1", "p2", "p2"],
               Metadata_Well=["A01", "A02", "B01", "B02"], treatment=["t0", "t1", "t0", "t1"],
               label=["x", "y", "x", "y"], dose=[0.5, 1.0, 0.5, 1.0])
    store = prepare_crops(tmp_path / "x.npy", tmp_path / "s", obs=obs, group="treatment")
    assert list(store.obs.columns) == ["plate", "well", "treatment", "label", "dose",
                                       "compound", SOURCE_ROW]
    assert store.label_column == "label"
    assert store.obs["label"].tolist() == ["x", "y", "x", "y"]
    assert store.obs["dose"].tolist() == [0.5, 1.0, 0.5, 1.0]
    assert store.obs["compound"].tolist() == ["t0", "t1", "t0", "t1"]
    assert store.obs[SOURCE_ROW].tolist() == [0, 1, 2, 3]
    assert store.summary()["classes"] == {"x": 2, "y": 2}
    named = prepare_crops(tmp_path / "x.npy", tmp_path / "t", obs=obs, label="treatment")
    assert named.label_column == "treatment"


def test_index_column_selects_and_orders(tmp_path: Path) -> None:
    x = _crops(n=5)
    np.save(tmp_path / "x.npy", x)
    obs = _obs(tmp_path / "obs.csv", cell=[3, 0], label=["a", "b"])
    store = prepare_crops(tmp_path / "x.npy", tmp_path / "s", obs=obs, index_column="cell",
                          percentiles=(0, 100))
    full = prepare_crops(tmp_path / "x.npy", tmp_path / "f", percentiles=(0, 100),
                         obs=_obs(tmp_path / "o2.csv", cell=[3, 0, 1, 2, 4]),
                         index_column="cell")
    assert len(store) == 2 and store.obs[SOURCE_ROW].tolist() == [3, 0]
    # scaled on the two listed crops only
    lo = x[[3, 0]].min(axis=(0, 2, 3))
    assert store.header["normalization"]["scaling"]["per_plate"]["all"]["lo"] == lo.tolist()
    assert full.obs["cell"].tolist() == [3, 0, 1, 2, 4]


def test_plates_in_order_of_appearance_and_names_do_not_matter(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", _crops(n=6))
    a = prepare_crops(tmp_path / "x.npy", tmp_path / "a",
                      obs=_obs(tmp_path / "a.csv", plate=["Z", "A", "Z", "A", "M", "M"]))
    b = prepare_crops(tmp_path / "x.npy", tmp_path / "b",
                      obs=_obs(tmp_path / "b.csv", plate=["p", "q", "p", "q", "r", "r"]))
    assert a.obs[SOURCE_ROW].tolist() == [0, 2, 1, 3, 4, 5]
    assert np.array_equal(a.read(slice(None)), b.read(slice(None)))


# -- shards -------------------------------------------------------------------------------
def test_shards_merged_equal_the_full_store(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", _crops(n=9))
    obs = _obs(tmp_path / "obs.csv", plate=["a"] * 3 + ["b"] * 3 + ["c"] * 3,
               label=list("xyzxyzxyz"))
    full = prepare_crops(tmp_path / "x.npy", tmp_path / "full", obs=obs, crop_size=6)
    shards = [prepare_crops(tmp_path / "x.npy", tmp_path / f"s{i}", obs=obs, crop_size=6,
                            shard=f"{i}/2") for i in (1, 0)]
    assert [len(s) for s in shards] == [6, 3]
    merged = merge_stores([s.path for s in shards], tmp_path / "merged")
    assert np.array_equal(merged.read(slice(None)), full.read(slice(None)))
    assert merged.obs.equals(full.obs)
    assert merged.header["normalization"] == full.header["normalization"]
    with pytest.raises(ConfigError, match="only 3 plate"):
        prepare_crops(tmp_path / "x.npy", tmp_path / "s9", obs=obs, shard="0/4")


def test_resume_after_interruption(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bioaug.data import crops as crops_mod

    np.save(tmp_path / "x.npy", _crops(n=4))
    obs = _obs(tmp_path / "obs.csv", plate=["a", "a", "b", "b"])
    full = prepare_crops(tmp_path / "x.npy", tmp_path / "full", obs=obs)
    calls = {"n": 0}
    real = crops_mod._plate_items

    def dies_on_second(*args: object, **kw: object) -> object:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kw)

    with monkeypatch.context() as m:
        m.setattr(crops_mod, "_plate_items", dies_on_second)
        with pytest.raises(KeyboardInterrupt):
            prepare_crops(tmp_path / "x.npy", tmp_path / "s", obs=obs)
    assert not (tmp_path / "s").exists() and (tmp_path / "s.partial").exists()
    resumed = prepare_crops(tmp_path / "x.npy", tmp_path / "s", obs=obs)
    assert np.array_equal(resumed.read(slice(None)), full.read(slice(None)))
    assert resumed.header["normalization"] == full.header["normalization"]


# -- other sources ------------------------------------------------------------------------
def test_npz_channels_key_and_selection(tmp_path: Path) -> None:
    x = _crops(c=3)
    np.savez(tmp_path / "x.npz", meta=np.zeros(3), images=x,
             channels=np.array(["DNA", "ER", "Mito"]))
    store = prepare_crops(tmp_path / "x.npz", tmp_path / "s")
    assert store.channels == ["DNA", "ER", "Mito"]
    assert store.header["provenance"]["images_key"] == "images"
    two = prepare_crops(tmp_path / "x.npz", tmp_path / "t", channels=["Mito", "DNA"])
    assert two.channels == ["Mito", "DNA"]
    assert np.array_equal(two.read(slice(None))[:, 1], store.read(slice(None))[:, 0])
    renamed = prepare_crops(tmp_path / "x.npz", tmp_path / "r", channels=["a", "b", "c"])
    assert renamed.channels == ["a", "b", "c"]
    np.save(tmp_path / "y.npy", x)
    assert prepare_crops(tmp_path / "y.npy", tmp_path / "y").channels == ["ch0", "ch1", "ch2"]


def test_tiff_stacks(tmp_path: Path) -> None:
    import tifffile

    x = _crops(n=4, c=4, h=4, w=4)  # ambiguous by shape: the OME axes decide
    np.save(tmp_path / "x.npy", x)
    ref = prepare_crops(tmp_path / "x.npy", tmp_path / "ref", layout="NCHW")
    tifffile.imwrite(tmp_path / "x.ome.tif", x.transpose(1, 0, 2, 3), ome=True,
                     photometric="minisblack", metadata={"axes": "CTYX"})
    ome = prepare_crops(tmp_path / "x.ome.tif", tmp_path / "ome")
    assert np.array_equal(ome.read(slice(None)), ref.read(slice(None)))
    tifffile.imwrite(tmp_path / "ij.tif", x, imagej=True, metadata={"axes": "TCYX"})
    ij = prepare_crops(tmp_path / "ij.tif", tmp_path / "ij")
    assert np.array_equal(ij.read(slice(None)), ref.read(slice(None)))
    tifffile.imwrite(tmp_path / "pages.tif", x.reshape(16, 4, 4))
    pages = prepare_crops(tmp_path / "pages.tif", tmp_path / "pages",
                          channels=["a", "b", "c", "d"])
    assert np.array_equal(pages.read(slice(None)), ref.read(slice(None)))


def test_csv_of_per_cell_files(tmp_path: Path) -> None:
    import tifffile

    x = _crops(n=3, c=2)
    np.save(tmp_path / "x.npy", x)
    ref = prepare_crops(tmp_path / "x.npy", tmp_path / "ref")
    (tmp_path / "cells").mkdir()
    rows = []
    for k in range(3):
        np.save(tmp_path / "cells" / f"{k}.npy", x[k])
        for c, ch in enumerate(("DNA", "RNA")):
            tifffile.imwrite(tmp_path / "cells" / f"{k}_{ch}.tif", x[k, c])
        rows.append({"file": f"cells/{k}.npy", "FileName_DNA": f"{k}_DNA.tif",
                     "FileName_RNA": f"{k}_RNA.tif", "PathName_DNA": "cells",
                     "PathName_RNA": "cells", "label": "ab"[k % 2]})
    table = pd.DataFrame(rows)
    table.drop(columns=[c for c in table if "_" in c]).to_csv(tmp_path / "one.csv", index=False)
    table.drop(columns=["file"]).to_csv(tmp_path / "per_channel.csv", index=False)
    one = prepare_crops(tmp_path / "one.csv", tmp_path / "one")
    per = prepare_crops(tmp_path / "per_channel.csv", tmp_path / "per")
    assert np.array_equal(one.read(slice(None)), ref.read(slice(None)))
    assert np.array_equal(per.read(slice(None)), ref.read(slice(None)))
    assert per.channels == ["DNA", "RNA"] and list(per.obs.columns) == ["label", SOURCE_ROW]
    assert one.label_column == "label" and "files_sha256" in one.header["provenance"]


def test_per_cell_files_of_different_sizes(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.ones((1, 6, 6), np.uint16))
    np.save(tmp_path / "b.npy", np.full((1, 4, 8), 3, np.uint16))
    pd.DataFrame({"file": ["a.npy", "b.npy"]}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match="differ in size") as exc:
        prepare_crops(tmp_path / "t.csv", tmp_path / "s")
    assert "--crop-size" in str(exc.value) and not (tmp_path / "s.partial").exists()
    store = prepare_crops(tmp_path / "t.csv", tmp_path / "s", crop_size=6, pad="constant",
                          percentiles=(0, 100))
    img = store.read(slice(None))
    assert store.image_size == (6, 6) and (img[0] == 0).all()
    assert (img[1, 0, 1:5] == 65535).all() and (img[1, 0, [0, 5]] == 0).all()


# -- errors -------------------------------------------------------------------------------
def test_errors(tmp_path: Path) -> None:
    x = _crops(n=4)
    np.save(tmp_path / "x.npy", x)
    obs = _obs(tmp_path / "obs.csv", label=list("abc"), cell=[0, 1, 1])
    with pytest.raises(DataError, match="3 rows but there are 4 crops"):
        prepare_crops(tmp_path / "x.npy", tmp_path / "s", obs=obs)
    with pytest.raises(DataError, match="crop 1 is listed twice"):
        prepare_crops(tmp_path / "x.npy", tmp_path / "s", obs=obs, index_column="cell")
    with pytest.raises(DataError, match="did you mean 'cell'"):
        prepare_crops(tmp_path / "x.npy", tmp_path / "s", obs=obs, index_column="cel")
    four = _obs(tmp_path / "four.csv", phase=list("abcd"), cell=[0, 1, 2, 7])
    with pytest.raises(DataError, match="did you mean 'phase'"):
        prepare_crops(tmp_path / "x.npy", tmp_path / "s", obs=four, label="phse")
    with pytest.raises(DataError, match=r"line 5: cell = 7 is not a crop row \(0 … 3\)"):
        prepare_crops(tmp_path / "x.npy", tmp_path / "s", obs=four, index_column="cell")
    with pytest.raises(DataError, match="file is missing"):
        prepare_crops(tmp_path / "nope.npy", tmp_path / "s")
    with pytest.raises(DataError, match=r"unsupported crop source '\.h5'"):
        prepare_crops(tmp_path / "x.h5", tmp_path / "s")
    with pytest.raises(DataError, match="names 3 channel"):
        prepare_crops(tmp_path / "x.npy", tmp_path / "s", channels=["a", "b", "c"])
    with pytest.raises(ConfigError, match="--crop-size"):
        prepare_crops(tmp_path / "x.npy", tmp_path / "s", crop_size=2)
    with pytest.raises(ConfigError, match="percentiles"):
        prepare_crops(tmp_path / "x.npy", tmp_path / "s", percentiles=(50, 10))
    np.save(tmp_path / "flat.npy", np.zeros((8, 8), np.uint16))
    with pytest.raises(DataError, match=r"got shape \[8, 8\]"):
        prepare_crops(tmp_path / "flat.npy", tmp_path / "s")
    np.save(tmp_path / "bool.npy", np.zeros((2, 1, 8, 8), bool))
    with pytest.raises(DataError, match="integer or float pixels, got bool"):
        prepare_crops(tmp_path / "bool.npy", tmp_path / "s")
    np.savez(tmp_path / "z.npz", a=np.zeros(3), b=np.zeros((2, 2)))
    with pytest.raises(DataError, match=r"no 4-D array .* a \[3\], b \[2, 2\]"):
        prepare_crops(tmp_path / "z.npz", tmp_path / "s")
    np.savez(tmp_path / "y.npz", images=x)
    with pytest.raises(DataError, match="did you mean 'images'"):
        prepare_crops(tmp_path / "y.npz", tmp_path / "s", key="image")
    with pytest.raises(ConfigError, match=r"--key applies to \.npz"):
        prepare_crops(tmp_path / "x.npy", tmp_path / "s", key="images")
    with pytest.raises(DataError, match="unknown plate 'q'"):
        prepare_crops(tmp_path / "x.npy", tmp_path / "s",
                      obs=_obs(tmp_path / "p.csv", plate=list("aabb")), plates=["q"])
    pd.DataFrame({"name": ["a.npy"]}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match="names no image files"):
        prepare_crops(tmp_path / "t.csv", tmp_path / "s")
    pd.DataFrame({"file": ["gone.npy"]}).to_csv(tmp_path / "g.csv", index=False)
    with pytest.raises(DataError, match="line 2: file is missing"):
        prepare_crops(tmp_path / "g.csv", tmp_path / "s")
    assert not (tmp_path / "s").exists()


# -- real cells ---------------------------------------------------------------------------
@pytest.mark.skipif(not IFC.is_dir(), reason=f"real data not found at {IFC}")
def test_real_ifc_cellcycle(tmp_path: Path) -> None:
    store = prepare_crops(IFC / "cells.npz", tmp_path / "ifc", obs=IFC / "cells.csv")
    assert len(store) == 3419 and store.n_channels == 3 and store.image_size == (40, 40)
    assert store.channels == ["Brightfield", "DNA", "Darkfield"]
    assert store.label_column == "phase"
    counts = store.obs["phase"].value_counts().to_dict()
    assert counts == {"G1": 900, "S_phase": 900, "G2": 900, "Prophase": 606,
                      "Metaphase": 69, "Telophase": 28, "Anaphase": 16}
    assert store.obs["cell"].tolist() == list(range(3419))
    again = Store.open(store.path)
    assert len(again.header["provenance"]["images_sha256"]) == 64
    img = store.read(slice(None))
    assert img.min() == 0 and img.max() == 65535


@pytest.mark.parametrize(("content", "message"), [
    ("", r"the obs table is empty \(no header line, no rows\)"),
    ("\n\n", r"the obs table is empty"),
    ("label;plate\na;p\n", r"the obs table is semicolon-separated; use commas"),
    ("label,plate,label\na,p,b\n", r"the obs table names column label twice \(columns 1 and 3\)"),
])
def test_an_empty_or_misread_obs_table_is_one_clear_line(tmp_path: Path, content: str,
                                                         message: str) -> None:
    np.save(tmp_path / "x.npy", _crops(n=1))
    (tmp_path / "obs.csv").write_text(content)
    with pytest.raises(DataError, match=message) as e:
        prepare_crops(tmp_path / "x.npy", tmp_path / "s", obs=tmp_path / "obs.csv")
    assert str(tmp_path / "obs.csv") in e.value.format()
    assert not (tmp_path / "s").exists() and not (tmp_path / "s.partial").exists()


def test_an_empty_table_of_cell_files_is_named(tmp_path: Path) -> None:
    (tmp_path / "cells.csv").write_text("")
    with pytest.raises(DataError, match="the cell file table is empty"):
        prepare_crops(tmp_path / "cells.csv", tmp_path / "s")


def test_out_names_ending_in_partial_are_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", _crops(n=2))
    with pytest.raises(ConfigError, match=r"names ending in '\.partial' are reserved"):
        prepare_crops(tmp_path / "x.npy", tmp_path / "s.partial")
    assert not (tmp_path / "s.partial").exists()
