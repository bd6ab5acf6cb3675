from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from bioaug.data import bbbc021
from bioaug.data.bbbc021 import (
    FieldError,
    load_metadata,
    locate_fields,
    read_field,
    select_plates,
)
from bioaug.errors import DataError

EXPECTED = {"fields": 13200, "plates": 55, "weeks": 10, "treatments": 103, "n_moa_classes": 12}


def _check_real(meta: bbbc021.Metadata) -> None:
    s = meta.summary()
    assert {k: s[k] for k in EXPECTED} == EXPECTED
    assert s["has_control"] and sorted(s["moa_classes"]) == sorted(bbbc021.MOA_CLASSES)
    assert s["moa_rows_without_fields"] == [] and s["moa_labels_unknown"] == []
    f = meta.fields
    # DMSO is on every plate; the two single-week MoAs stay in one week
    assert f[f["moa"] == "DMSO"]["plate"].nunique() == 55
    for moa in ("Kinase inhibitors", "Cholesterol-lowering"):
        assert f[f["moa"] == moa]["batch"].nunique() == 1
    assert set(f["site"]) == {1, 2, 3, 4}
    assert set(f["replicate"]) == {1, 2, 3}
    row = f[(f["plate"] == "Week4_27481") & (f["well"] == "G10") & (f["site"] == 2)].iloc[0]
    assert row["batch"] == "Week4" and row["compound"] == "5-fluorouracil"
    assert row["concentration"] == pytest.approx(0.003)
    # prefixed file names (e.g. Week10_200907_B02_s1_w1…) still give the site
    w10 = f[f["plate"] == "Week10_40111"]
    assert w10["file_DAPI"].str.startswith("Week10_200907_").all()
    assert sorted(w10["site"].unique()) == [1, 2, 3, 4]


def test_real_csvs(bbbc021_csv_dir: Path) -> None:
    meta = load_metadata(bbbc021_csv_dir)
    _check_real(meta)
    assert meta.tolerance == pytest.approx(5e-7)


def _resave(src: Path, dst: Path, *, quote: bool, decimals: int, newline: str) -> None:
    """Write a re-saved variant of a metadata CSV (as spreadsheets and scripts do)."""
    df = pd.read_csv(src, dtype=str, keep_default_na=False)
    for col in df.columns:
        if "oncentration" in col:
            df[col] = [f"{float(v):.{decimals}f}" for v in df[col]]
    buf = io.StringIO()
    df.to_csv(buf, index=False, quoting=csv.QUOTE_ALL if quote else csv.QUOTE_MINIMAL,
              lineterminator=newline)
    dst.write_bytes(buf.getvalue().encode())


@pytest.mark.parametrize(("quote", "decimals", "newline"),
                         [(False, 3, "\n"), (True, 6, "\r\n"), (False, 6, "\r"),
                          (True, 3, "\r")])
def test_resaved_variants(bbbc021_csv_dir: Path, tmp_path: Path, quote: bool, decimals: int,
                          newline: str) -> None:
    for name in (bbbc021.IMAGE_CSV, bbbc021.MOA_CSV):
        _resave(bbbc021_csv_dir / name, tmp_path / name, quote=quote, decimals=decimals,
                newline=newline)
    raw = (tmp_path / bbbc021.IMAGE_CSV).read_bytes()
    assert (b"\r\n" in raw) == (newline == "\r\n")
    meta = load_metadata(tmp_path)
    _check_real(meta)
    assert meta.tolerance == pytest.approx(0.5 * 10.0**-decimals)


def test_tolerance_follows_precision(tmp_path: Path, bbbc021_csv_dir: Path) -> None:
    """0.0006 is not 0.001 in a six-decimal file; both print as 0.001 with three."""
    (tmp_path / bbbc021.MOA_CSV).write_text('"compound",concentration,"moa"\n'
                                            '"X",0.001000,"DNA damage"\n')
    head = (bbbc021_csv_dir / bbbc021.IMAGE_CSV).read_text().splitlines()[:2]
    row = head[1].replace('"5-fluorouracil",0.003000', '"X",0.000600')
    (tmp_path / bbbc021.IMAGE_CSV).write_text(head[0] + "\n" + row + "\n")
    assert load_metadata(tmp_path).fields["moa"].isna().all()
    (tmp_path / bbbc021.IMAGE_CSV).write_text(head[0] + "\n" + row.replace("0.000600", "0.001")
                                              + "\n")
    assert load_metadata(tmp_path).fields["moa"].tolist() == ["DNA damage"]


def test_missing_columns_are_named(tmp_path: Path, bbbc021_csv_dir: Path) -> None:
    df = pd.read_csv(bbbc021_csv_dir / bbbc021.IMAGE_CSV, nrows=5)
    df.drop(columns=["Replicate", "Image_FileName_Actin"]).to_csv(
        tmp_path / bbbc021.IMAGE_CSV, index=False)
    (tmp_path / bbbc021.MOA_CSV).write_bytes((bbbc021_csv_dir / bbbc021.MOA_CSV).read_bytes())
    with pytest.raises(DataError) as e:
        load_metadata(tmp_path)
    msg = e.value.format()
    assert "Image_FileName_Actin" in msg and "Replicate" in msg
    assert bbbc021.IMAGE_CSV in msg
    (tmp_path / bbbc021.MOA_CSV).write_text("compound,conc,moa\nA,1.0,B\n")
    df.to_csv(tmp_path / bbbc021.IMAGE_CSV, index=False)
    with pytest.raises(DataError, match="lacks column concentration"):
        load_metadata(tmp_path)


def test_bad_values_name_the_line(tmp_path: Path, bbbc021_csv_dir: Path) -> None:
    lines = (bbbc021_csv_dir / bbbc021.IMAGE_CSV).read_text().splitlines()[:4]
    lines[3] = lines[3].replace(",0.003000", ",three")
    (tmp_path / bbbc021.IMAGE_CSV).write_text("\n".join(lines) + "\n")
    (tmp_path / bbbc021.MOA_CSV).write_bytes((bbbc021_csv_dir / bbbc021.MOA_CSV).read_bytes())
    with pytest.raises(DataError, match=r"line 4: column Image_Metadata_Concentration must be "
                                        r"a number, got 'three'"):
        load_metadata(tmp_path)


def test_moa_rows_without_fields_and_conflicts(tmp_path: Path, bbbc021_csv_dir: Path) -> None:
    lines = (bbbc021_csv_dir / bbbc021.IMAGE_CSV).read_text().splitlines()[:3]
    (tmp_path / bbbc021.IMAGE_CSV).write_text("\n".join(lines) + "\n")
    (tmp_path / bbbc021.MOA_CSV).write_text(
        '"compound",concentration,"moa"\n"5-fluorouracil",0.003000,"DNA replication"\n'
        '"ghost",1.000000,"Epithelial"\n')
    meta = load_metadata(tmp_path)
    assert meta.fields["moa"].tolist() == ["DNA replication"] * 2
    assert meta.unmatched_moa["compound"].tolist() == ["ghost"]
    assert meta.summary()["moa_rows_without_fields"][0]["line"] == 3
    assert meta.summary()["moa_labels_unknown"] == []
    (tmp_path / bbbc021.MOA_CSV).write_text(
        '"compound",concentration,"moa"\n"5-fluorouracil",0.003000,"DNA replicaton"\n')
    assert load_metadata(tmp_path).summary()["moa_labels_unknown"] == ["DNA replicaton"]
    (tmp_path / bbbc021.MOA_CSV).write_text(
        '"compound",concentration,"moa"\n"5-fluorouracil",0.003000,"DNA replication"\n'
        '"5-fluorouracil",0.003000,"Epithelial"\n')
    with pytest.raises(DataError, match="two MoAs"):
        load_metadata(tmp_path)


def test_no_csvs(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no BBBC021_v1_image\.csv"):
        load_metadata(tmp_path)


def test_select_plates(bbbc021_csv_dir: Path) -> None:
    f = load_metadata(bbbc021_csv_dir).fields
    assert set(select_plates(f, ["Week4_27481", "40111"])["plate"]) == {"Week4_27481",
                                                                        "Week10_40111"}
    with pytest.raises(DataError, match="did you mean 'Week4_27481'"):
        select_plates(f, ["Week4_27418"])


def test_locate_both_layouts(twin_copy: Path) -> None:
    meta = load_metadata(twin_copy)
    loc = locate_fields(twin_copy, meta.fields)
    assert len(loc.paths) == len(meta.fields) and loc.missing.empty
    # the zips unpack one folder per plate: WeekN_PLATE/<file>
    for week in [d for d in twin_copy.iterdir() if d.is_dir()]:
        for plate_dir in list(week.iterdir()):
            plate_dir.rename(twin_copy / plate_dir.name)
        week.rmdir()
    loc = locate_fields(twin_copy, meta.fields)
    assert len(loc.paths) == len(meta.fields)
    assert all(p is not None and p.parent == twin_copy for p in loc.plate_dirs.values())


def test_missing_images_counted_with_examples(twin_copy: Path) -> None:
    meta = load_metadata(twin_copy)
    victim = meta.fields.iloc[3]
    folder = twin_copy / victim["path"]
    (folder / victim["file_Tubulin"]).unlink()
    info = bbbc021.info(twin_copy)
    assert info["images"]["fields_missing"] == 1 and info["images"]["files_missing"] == 1
    assert victim["file_Tubulin"] in info["images"]["examples"][0]
    assert info["images"]["fields_complete"] == len(meta.fields) - 1


def test_read_field_preserves_16_bit(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    planes = [rng.integers(0, 65535, (20, 24), dtype=np.uint16) for _ in range(3)]
    paths = []
    for i, p in enumerate(planes):
        paths.append(tmp_path / f"c{i}.tif")
        tifffile.imwrite(paths[-1], p)
    out = read_field(paths)
    assert out.dtype == np.uint16 and out.shape == (3, 20, 24)
    np.testing.assert_array_equal(out[2], planes[2])


def test_read_field_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.tif"
    tifffile.imwrite(good, np.ones((20, 24), np.uint16))
    truncated = tmp_path / "trunc.tif"
    truncated.write_bytes(good.read_bytes()[:100])
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(b"not a tiff at all")
    wrong_dtype = tmp_path / "f32.tif"
    tifffile.imwrite(wrong_dtype, np.ones((20, 24), np.float32))
    small = tmp_path / "small.tif"
    tifffile.imwrite(small, np.ones((10, 24), np.uint16))
    cases = {truncated: "corrupt", garbage: "corrupt", wrong_dtype: "dtype", small: "shape",
             tmp_path / "absent.tif": "missing"}
    for bad, reason in cases.items():
        with pytest.raises(FieldError) as e:
            read_field([good, bad, good], expected_shape=(20, 24))
        assert e.value.reason == reason, bad
        assert bad.name in e.value.format()


def test_field_error_pickles() -> None:
    import pickle

    e = pickle.loads(pickle.dumps(FieldError("bad", reason="corrupt", where="/x.tif")))
    assert e.reason == "corrupt" and e.format() == "/x.tif: bad"


def test_root_given_as_the_image_csv_finds_the_images(twin: Path) -> None:
    by_folder = bbbc021.info(twin)["images"]
    by_csv = bbbc021.info(twin / bbbc021.IMAGE_CSV)["images"]
    assert by_csv == by_folder and by_csv["fields_complete"] == 16


def test_bundled_tables_are_the_published_files(tmp_path: Path) -> None:
    import hashlib

    import yaml

    card = yaml.safe_load((Path(bbbc021.__file__).parents[1] / "datasets" / "bbbc021.yaml")
                          .read_text(encoding="utf-8"))
    published = {f["name"]: f for f in card["files"]}
    folder = bbbc021.write_bundled_metadata(tmp_path / "meta")
    for name in (bbbc021.IMAGE_CSV, bbbc021.MOA_CSV):
        data = (folder / name).read_bytes()
        assert len(data) == published[name]["size"]
        assert hashlib.sha256(data).hexdigest() == published[name]["sha256"]
    assert "Broad Bioimage Benchmark Collection" in card["source"]["credit"]


def test_semicolons_and_repeated_columns_in_the_tables_are_named(twin_copy: Path) -> None:
    moa = twin_copy / bbbc021.MOA_CSV
    text = moa.read_text()
    moa.write_text(text.replace(",", ";"))
    with pytest.raises(DataError, match="the MoA table is semicolon-separated; use commas"):
        load_metadata(twin_copy)
    header, rest = text.split("\n", 1)
    moa.write_text(header + ',"moa"\n' + "\n".join(line + ",x" for line in rest.splitlines()))
    with pytest.raises(DataError, match=r"the MoA table names column moa twice \(columns 3 "
                                        r"and 4\)"):
        load_metadata(twin_copy)
