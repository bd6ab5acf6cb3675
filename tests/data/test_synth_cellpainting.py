"""The Cell Painting twin: layout, determinism, and the LoadData path on five channels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bioaug.data.prepare import prepare_images
from bioaug.data.store import Store
from bioaug.data.synth_cellpainting import CHANNELS, TREATMENTS, synth_cellpainting
from bioaug.errors import ConfigError, DataError

KW = {"plates": 2, "wells_per_plate": 3, "sites": 2, "size": (128, 128), "cells_per_field": 6,
      "seed": 3}
CROP = 32


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth_cellpainting(tmp_path_factory.mktemp("cp") / "screen", masks=True, **KW)


def test_layout_is_a_loaddata_screen(cp: Path) -> None:
    ld = pd.read_csv(cp / "load_data.csv")
    assert len(ld) == 2 * 3 * 2
    for ch in CHANNELS:
        assert {f"FileName_{ch}", f"PathName_{ch}"} <= set(ld.columns)
        assert all((cp / p / f).is_file() for p, f in zip(ld[f"PathName_{ch}"],
                                                          ld[f"FileName_{ch}"], strict=True))
    assert set(ld["Metadata_MoA"]) == {m for _, m in TREATMENTS[:3]}
    cells = pd.read_csv(cp / "cells.csv")
    assert set(cells["ImageNumber"]) == set(range(1, len(ld) + 1))


def test_same_seed_same_bytes(cp: Path, tmp_path: Path) -> None:
    again = synth_cellpainting(tmp_path / "again", masks=True, **KW)
    for f in sorted(p.relative_to(cp) for p in cp.rglob("*") if p.is_file()):
        if f.name != "twin.json":
            assert (again / f).read_bytes() == (cp / f).read_bytes(), f


def test_prepared_crops_sit_on_the_true_cells(cp: Path, tmp_path: Path) -> None:
    s = prepare_images(cp / "load_data.csv", tmp_path / "s", crop_size=CROP, label="moa",
                       batch="batch", group="compound", min_area=20)
    assert s.channels == list(CHANNELS) and s.n_channels == 5 and s.label_column == "moa"
    truth = pd.read_csv(cp / "cells.csv")
    dists = []
    for (plate, well, site), g in s.obs.groupby(["plate", "well", "site"]):
        t = truth[(truth["Metadata_Plate"] == plate) & (truth["Metadata_Well"] == well)
                  & (truth["Metadata_Site"] == site)]
        tc = t[["Nuclei_Location_Center_Y", "Nuclei_Location_Center_X"]].to_numpy(float)
        got = g[["center_y", "center_x"]].to_numpy()
        dists.append(np.hypot(*(got[:, None] - tc[None]).transpose(2, 0, 1)).min(1))
    d = np.concatenate(dists)
    assert np.median(d) < 1.0 and np.mean(d < 3) > 0.9
    # every cell whose crop fits is found
    fits = ((truth["Nuclei_Location_Center_X"] >= CROP // 2)
            & (truth["Nuclei_Location_Center_Y"] >= CROP // 2)
            & (truth["Nuclei_Location_Center_X"] + CROP - CROP // 2 <= 128)
            & (truth["Nuclei_Location_Center_Y"] + CROP - CROP // 2 <= 128))
    assert abs(len(s) - int(fits.sum())) <= 0.1 * fits.sum()
    by_mask = prepare_images(cp / "load_data.csv", tmp_path / "m", crop_size=CROP,
                             masks_column="NucleiMask")
    assert len(by_mask) == int(fits.sum())
    by_loc = prepare_images(cp / "load_data.csv", tmp_path / "l", crop_size=CROP,
                            locations=cp / "cells.csv")
    assert len(by_loc) == int(fits.sum())


def test_five_channel_protocol_runs_on_the_store(cp: Path, tmp_path: Path) -> None:
    from bioaug.augment import build_pipeline, load_protocol

    s = prepare_images(cp / "load_data.csv", tmp_path / "s", crop_size=72, edge="reflect",
                       locations=cp / "cells.csv")
    proto = load_protocol("cellpainting-expert")
    ops = {st.op for v in proto.views for st in v.steps}
    assert {"stain_jitter", "channel_dropout", "rotate90", "flip"} <= ops
    assert not ops & {"color_jitter", "grayscale", "hue"}
    pipe = build_pipeline(proto, s.n_channels, s.channels)
    views = pipe(torch.from_numpy(s.read_float(np.arange(4))), torch.Generator().manual_seed(0))
    assert all(v.shape == (4, 5, 64, 64) for v in views)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--plates must be a whole number ≥ 1"):
        synth_cellpainting(tmp_path / "a", plates=0)
    with pytest.raises(ConfigError, match="--size must be at least 64x64"):
        synth_cellpainting(tmp_path / "a", size=(32, 128))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="not a Cell Painting twin; refusing"):
        synth_cellpainting(tmp_path / "mine", overwrite=True)
    assert (tmp_path / "mine" / "notes.txt").exists()


def test_store_opens(cp: Path, tmp_path: Path) -> None:
    s = prepare_images(cp / "load_data.csv", tmp_path / "s", crop_size=CROP,
                       locations=cp / "cells.csv", plates=["CP02"])
    assert set(Store.open(s.path).obs["plate"]) == {"CP02"}


def test_a_field_too_large_for_memory_is_refused_before_writing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bioaug.data import memory

    monkeypatch.setattr(memory, "available_memory", lambda: 2**30)
    with pytest.raises(ConfigError) as e:
        synth_cellpainting(tmp_path / "t", size=(100000, 100000))
    text = e.value.format()
    # 216 bytes per pixel of the field padded by 24 px a side; 1 GiB holds 2229² of those
    assert f"a 100000x100000 field (--size) needs about 2.0 TiB of memory " \
        f"({216 * 100048 * 100048:,} bytes) but 1.0 GiB (1,073,741,824 bytes)" in text
    assert "the largest square field that fits is about 2181x2181" in text
    assert not (tmp_path / "t").exists() and not (tmp_path / "t.partial").exists()


def test_partial_names_and_folders_that_are_not_scratch_space(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"names ending in '\.partial' are reserved"):
        synth_cellpainting(tmp_path / "t.partial", **KW)
    (tmp_path / "t.partial").mkdir()
    (tmp_path / "t.partial" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not an interrupted synthetic screen; refusing"):
        synth_cellpainting(tmp_path / "t", **KW)
    assert (tmp_path / "t.partial" / "notes.txt").read_text() == "mine"


def test_replacing_a_twin_keeps_a_sibling_named_old(tmp_path: Path) -> None:
    out = synth_cellpainting(tmp_path / "t", **{**KW, "plates": 1, "sites": 1})
    (tmp_path / "t.old").mkdir()
    (tmp_path / "t.old" / "notes.txt").write_text("mine")
    synth_cellpainting(out, overwrite=True, **{**KW, "plates": 1, "sites": 1})
    assert (tmp_path / "t.old" / "notes.txt").read_text() == "mine"
    assert (out / "load_data.csv").is_file() and not (tmp_path / "t.partial").exists()
