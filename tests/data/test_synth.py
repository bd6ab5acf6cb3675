from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bioaug.data import bbbc021
from bioaug.data.synth import (
    SIGNATURES,
    cell_parameters,
    choose_plates,
    choose_wells,
    compound_signature,
    density_factors,
    load_design,
    parse_size,
    place_cells,
    render_cell_crops,
    render_cells,
    strength_of,
    synth_bbbc021,
)
from bioaug.errors import ConfigError, DataError

from .conftest import TWIN_KW


def test_headers_byte_identical(twin: Path, bbbc021_csv_dir: Path) -> None:
    for name in (bbbc021.IMAGE_CSV, bbbc021.MOA_CSV):
        real = (bbbc021_csv_dir / name).read_bytes().split(b"\n", 1)[0]
        ours = (twin / name).read_bytes().split(b"\n", 1)[0]
        assert ours == real


def test_rows_quoted_like_the_real_file(twin: Path, bbbc021_csv_dir: Path) -> None:
    def shape(line: str) -> str:  # quoted text → "s", numbers → their decimals
        line = re.sub(r'"[^"]*"', "s", line)
        return re.sub(r"\d+\.(\d+)", lambda m: f"f{len(m.group(1))}", re.sub(r"\b\d+\b", "i", line))

    real = (bbbc021_csv_dir / bbbc021.IMAGE_CSV).read_text().splitlines()[1]
    ours = (twin / bbbc021.IMAGE_CSV).read_text().splitlines()
    assert {shape(x) for x in ours[1:]} == {shape(real)}
    real_moa = (bbbc021_csv_dir / bbbc021.MOA_CSV).read_text().splitlines()[1]
    assert {shape(x) for x in (twin / bbbc021.MOA_CSV).read_text().splitlines()[1:]} == \
        {shape(real_moa)}
    assert b"\r" not in (twin / bbbc021.IMAGE_CSV).read_bytes()


def test_layout_names_and_pixels(twin: Path) -> None:
    meta = bbbc021.load_metadata(twin)
    f = meta.fields
    n_wells = TWIN_KW["plates"] * TWIN_KW["wells_per_plate"]
    assert len(f) == n_wells * TWIN_KW["sites"]
    real_wells, _ = load_design()
    for row in f.itertuples():
        week = row.plate.split("_")[0]
        assert row.path == f"{week}/{row.plate}"
        known = real_wells[(real_wells["plate"] == row.plate) & (real_wells["well"] == row.well)]
        assert len(known) == 1  # plate and well come from the real design
        assert known["compound"].iloc[0] == row.compound
        assert known["concentration"].iloc[0] == pytest.approx(row.concentration)
        for ch, w in bbbc021.WAVELENGTHS.items():
            name = getattr(row, f"file_{ch}")
            m = bbbc021.FILE_RE.match(name)
            assert m and m["prefix"] == known["prefix"].iloc[0] and m["well"] == row.well
            assert int(m["site"]) == row.site and int(m["wave"]) == w
            assert re.fullmatch(r"[0-9A-F]{8}-([0-9A-F]{4}-){3}[0-9A-F]{12}", m["guid"])
    first = f.iloc[0]
    img = tifffile.imread(twin / first["path"] / first["file_DAPI"])
    assert img.dtype == np.uint16 and img.shape == TWIN_KW["size"]
    assert img.max() > 4 * np.median(img)  # there are bright nuclei on a dim background
    # each field's channels share the GUID-free stem and the ImageNumber is per table
    assert f.groupby("table_number")["image_number"].apply(lambda s: s.is_unique).all()


def test_design_covers_all_moas_with_six_plates() -> None:
    wells, _ = load_design()
    for seed in range(3):
        rng = np.random.default_rng(seed)
        plates = choose_plates(wells, 6, rng)
        design = pd.concat([choose_wells(wells[wells["plate"] == p], 12, rng) for p in plates])
        moas = set(design["moa"].dropna())
        assert moas == {*bbbc021.MOA_CLASSES, "DMSO"}
        assert design["moa"].isna().sum() == 6  # one unannotated well per plate
        assert design.groupby("plate").size().eq(12).all()


def test_same_seed_same_dataset(tmp_path: Path) -> None:
    kw = {"plates": 1, "sites": 1, "wells_per_plate": 2, "size": (64, 80),
          "cells_per_field": 3}
    a = synth_bbbc021(tmp_path / "a", seed=3, **kw)
    b = synth_bbbc021(tmp_path / "b", seed=3, **kw)
    c = synth_bbbc021(tmp_path / "c", seed=4, **kw)
    ta = (a / bbbc021.IMAGE_CSV).read_bytes()
    assert ta == (b / bbbc021.IMAGE_CSV).read_bytes() != (c / bbbc021.IMAGE_CSV).read_bytes()
    fa = sorted(a.rglob("*.tif"))
    fb = sorted(b.rglob("*.tif"))
    assert [p.name for p in fa] == [p.name for p in fb]
    np.testing.assert_array_equal(tifffile.imread(fa[0]), tifffile.imread(fb[0]))
    with pytest.raises(ConfigError, match="already holds"):
        synth_bbbc021(tmp_path / "a", seed=3, **kw)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("precious")
    with pytest.raises(ConfigError, match="not a BBBC021 folder; refusing"):
        synth_bbbc021(tmp_path / "mine", overwrite=True, **kw)
    assert (tmp_path / "mine" / "thesis.txt").exists()


def test_bad_arguments() -> None:
    assert parse_size("1024x1280") == (1024, 1280)
    with pytest.raises(ConfigError, match="HxW"):
        parse_size("big")
    with pytest.raises(ConfigError, match="plates must be between 1 and 55"):
        synth_bbbc021("/nonexistent/x", plates=56)


def test_strength_grows_with_concentration() -> None:
    _, moa = load_design()
    concs = sorted(moa[moa["compound"] == "taxol"]["concentration"])
    s = [strength_of("taxol", c, moa) for c in concs]
    assert s == sorted(s) and s[-1] == 1.0 and s[0] >= 0.5
    assert strength_of("taxol", concs[0] / 10, moa) < 0.5
    assert strength_of("DMSO", 0.0, moa) == 0.0


def _nuclear_area(moa: str, strength: float, n: int = 100) -> float:
    rng = np.random.default_rng(0)
    p = cell_parameters(n, compound_signature(moa, moa), strength, rng)
    img = render_cells(p, 101, rng)
    dapi = img[:, 0]
    return float((dapi > 0.5 * dapi.max((1, 2), keepdims=True)).sum((1, 2)).mean())


def test_phenotype_grows_with_strength() -> None:
    """Aurora kinase inhibition enlarges nuclei more at higher concentration."""
    a0, a5, a1 = (_nuclear_area("Aurora kinase inhibitors", s) for s in (0.0, 0.5, 1.0))
    assert a0 < a5 < a1 and a1 > 1.3 * a0
    assert _nuclear_area("Microtubule stabilizers", 1.0) == pytest.approx(a0, rel=0.2)


def test_stain_is_conserved() -> None:
    """Every cell holds its drawn amount of each stain, whatever its phenotype."""
    rng = np.random.default_rng(1)
    for moa in SIGNATURES:
        p = cell_parameters(4, compound_signature(moa, moa), 1.0, rng)
        img = render_cells(p, 141, rng)
        np.testing.assert_allclose(img.sum((2, 3)), p["amount"], rtol=1e-3)


def _morphology(crops: np.ndarray) -> np.ndarray:
    """Scale-free features: radial profiles, texture and bright-area fractions."""
    n, _, h, w = crops.shape
    x = crops / crops.mean((2, 3), keepdims=True)
    yy, xx = np.indices((h, w))
    ring = np.minimum((np.hypot(yy - h / 2 + 0.5, xx - w / 2 + 0.5) / (h / 2) * 8).astype(int), 7)
    prof = np.stack([x[:, :, ring == b].mean(-1) for b in range(8)], -1).reshape(n, -1)
    gy, gx = np.gradient(x, axis=(2, 3))
    extra = [np.hypot(gy, gx).mean((2, 3)), (x > 2).mean((2, 3)), (x > 4).mean((2, 3)),
             x.std((2, 3))]
    return np.concatenate([prof, *extra], 1)


def test_phenotype_not_readable_from_mean_intensity() -> None:
    classes = ["DMSO", *bbbc021.MOA_CLASSES]
    per = 24
    moas = [c for c in classes for _ in range(per)]
    rng = np.random.default_rng(1)
    crops, _ = render_cell_crops(moas, rng.uniform(0.6, 1.0, len(moas)), size=64, seed=3)
    y = np.repeat(np.arange(len(classes)), per)

    def acc(features: np.ndarray) -> float:
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        return float(cross_val_score(clf, features, y, cv=3).mean())

    chance = 1 / len(classes)
    mean_acc = acc(np.log(crops.mean((2, 3))))
    morph_acc = acc(_morphology(crops))
    assert mean_acc < 2 * chance
    assert morph_acc > 0.4 and morph_acc > 4 * mean_acc


def test_negative_seed_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="seed must be a non-negative integer, got -1"):
        synth_bbbc021(tmp_path / "t", seed=-1)
    assert not (tmp_path / "t").exists()


def _nearest(points: np.ndarray) -> np.ndarray:
    d = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    return d.min(1)


def test_cells_form_colonies_and_keep_their_distance() -> None:
    """With clumping, cells sit next to a neighbour; without, they spread out; never closer
    than the minimum distance."""
    size, min_dist = (512, 640), 26.0
    clumped = place_cells(40, size, min_dist, np.random.default_rng(0), clumping=1.0)
    spread = place_cells(40, size, min_dist, np.random.default_rng(0), clumping=0.0)
    assert len(clumped) == len(spread) == 40
    for pts in (clumped, spread):
        assert _nearest(pts).min() >= min_dist - 1e-9
        assert ((pts >= 0) & (pts < np.array(size))).all()
    # every clumped cell after the first grew next to an earlier one (≤ 1.5 × min_dist)
    assert _nearest(clumped).max() <= 1.5 * min_dist + 1e-9
    assert np.median(_nearest(spread)) > 1.5 * min_dist


def test_density_varies_with_mean_one() -> None:
    f = density_factors(20000, 0.3, np.random.default_rng(0))
    assert f.mean() == pytest.approx(1.0, abs=0.02)
    assert 0.25 < f.std() < 0.35 and f.min() >= 0.4 and f.max() <= 2.5
    np.testing.assert_array_equal(density_factors(5, 0.0, np.random.default_rng(1)), 1.0)


def test_a_field_too_large_for_memory_is_refused_before_writing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bioaug.data import memory

    monkeypatch.setattr(memory, "available_memory", lambda: 2**30)
    with pytest.raises(ConfigError) as e:
        synth_bbbc021(tmp_path / "t", size=(100000, 100000))
    text = e.value.format()
    # 96 bytes per pixel of the field padded by 321 px a side; 1 GiB holds 3344² of those
    assert "a 100000x100000 field (--size) needs about" in text
    assert f"({96 * 100642 * 100642:,} bytes) but 1.0 GiB (1,073,741,824 bytes)" in text
    assert "the largest square field that fits is about 2702x2702" in text
    with pytest.raises(ConfigError, match=r"in each of 4 workers.*\n.*fewer --workers"):
        synth_bbbc021(tmp_path / "t", size=(4000, 4000), workers=4)
    assert not (tmp_path / "t").exists() and not (tmp_path / "t.partial").exists()


def test_out_names_ending_in_partial_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"names ending in '\.partial' are reserved"):
        synth_bbbc021(tmp_path / "t.partial", **TWIN_KW)
    assert not (tmp_path / "t.partial").exists()


def test_a_complete_store_named_like_the_scratch_folder_survives(tmp_path: Path) -> None:
    from bioaug.data.store import write_store

    kept = write_store(tmp_path / "made", np.ones((1, 1, 2, 2), np.uint8), [{"a": 1}],
                       channels=["g"]).path.rename(tmp_path / "t.partial")
    with pytest.raises(DataError, match="holds a complete store"):
        synth_bbbc021(tmp_path / "t", **TWIN_KW)
    assert (kept / "images.raw").read_bytes() == b"\x01" * 4
