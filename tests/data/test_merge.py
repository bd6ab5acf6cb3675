"""Plates as parallel jobs: shards then merge equal one full preparation, item for item."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from bioaug.data.merge import merge_stores
from bioaug.data.prepare import prepare_bbbc021, prepare_images
from bioaug.data.store import Store, StoreWriter, write_store
from bioaug.data.synth_cellpainting import synth_cellpainting
from bioaug.errors import DataError

CROP = 32


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth_cellpainting(tmp_path_factory.mktemp("cp") / "screen", plates=3,
                              wells_per_plate=3, sites=1, size=(128, 128), cells_per_field=6)


@pytest.fixture(scope="module")
def shards(cp: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Store]:
    d = tmp_path_factory.mktemp("shards")
    kw = {"crop_size": CROP, "label": "moa", "batch": "batch", "group": "compound"}
    return {"full": prepare_images(cp / "load_data.csv", d / "full", **kw),
            "0": prepare_images(cp / "load_data.csv", d / "s0", shard="0/2", **kw),
            "1": prepare_images(cp / "load_data.csv", d / "s1", shard=(1, 2), **kw)}


def _same(a: Store, b: Store) -> None:
    assert len(a) == len(b) and a.channels == b.channels
    np.testing.assert_array_equal(a.read(slice(None)), b.read(slice(None)))
    assert a.obs.equals(b.obs)


def test_shards_then_merge_equal_one_full_prepare(shards: dict[str, Store],
                                                 tmp_path: Path) -> None:
    full, s0, s1 = shards["full"], shards["0"], shards["1"]
    assert s0.header["config"]["plates"] == ["CP01"]  # 3 plates in 2 contiguous blocks
    assert s1.header["config"]["plates"] == ["CP02", "CP03"]
    assert len(s0) + len(s1) == len(full)
    merged = merge_stores([s1.path, s0.path], tmp_path / "m")  # any order: shards sort
    _same(merged, full)
    assert merged.header["normalization"]["scaling"]["per_plate"] == \
        full.header["normalization"]["scaling"]["per_plate"]
    assert merged.header["report"]["crops"] == full.header["report"]["crops"]
    src = merged.header["provenance"]["merged_from"]
    assert [m["shard"] for m in src] == [[0, 2], [1, 2]]
    assert [m["plates"] for m in src] == [["CP01"], ["CP02", "CP03"]]
    assert merged.header["merge"] == {"ordered_by": "shard", "shards": 2}


def test_bbbc021_shards_merge_too(twin: Path, tmp_path: Path) -> None:
    full = prepare_bbbc021(twin, tmp_path / "full", crop_size=48)
    a = prepare_bbbc021(twin, tmp_path / "a", crop_size=48, shard="0/2")
    b = prepare_bbbc021(twin, tmp_path / "b", crop_size=48, shard="1/2")
    _same(merge_stores([a.path, b.path], tmp_path / "m"), full)


def test_interrupted_merge_looks_unfinished_then_resumes(shards: dict[str, Store],
                                                         tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    commit = StoreWriter.commit

    def once(self: StoreWriter, unit: str) -> None:
        if self.done_units:
            raise KeyboardInterrupt
        commit(self, unit)

    monkeypatch.setattr(StoreWriter, "commit", once)
    out = tmp_path / "m"
    with pytest.raises(KeyboardInterrupt):
        merge_stores([shards["0"].path, shards["1"].path], out)
    monkeypatch.undo()
    assert not out.exists()
    with pytest.raises(DataError, match="interrupted"):
        Store.open(out)
    progress = json.loads((tmp_path / "m.partial" / "progress.json").read_text())
    assert progress["units"] == ["store-0"]
    _same(merge_stores([shards["0"].path, shards["1"].path], out), shards["full"])


def test_stores_that_cannot_be_merged(shards: dict[str, Store], cp: Path,
                                      tmp_path: Path) -> None:
    s0, s1 = shards["0"].path, shards["1"].path
    other_crop = prepare_images(cp / "load_data.csv", tmp_path / "c", crop_size=CROP + 8,
                                shard="1/2", label="moa", batch="batch", group="compound")
    two_ch = prepare_images(cp / "load_data.csv", tmp_path / "ch", crop_size=CROP, shard="1/2",
                            channels=["DNA", "ER"], label="moa", batch="batch",
                            group="compound")
    other_pct = prepare_images(cp / "load_data.csv", tmp_path / "p", crop_size=CROP,
                               shard="1/2", percentiles=(1, 99), label="moa", batch="batch",
                               group="compound")
    small = write_store(tmp_path / "u8", np.zeros((1, 5, CROP, CROP), np.uint8),
                        [{"plate": "X"}], channels=["DNA", "ER", "RNA", "AGP", "Mito"])
    cases = [
        ([s0, other_crop.path], f"item size ({CROP + 8}, {CROP + 8}) do not match"),
        ([s0, two_ch.path], "channels (DNA, ER) do not match"),
        ([s0, other_pct.path], "prepared with percentiles=[1.0, 99.0]"),
        ([s0, small.path], "pixel type (uint8)"),
        ([s0, s0], "a store is given twice"),
        ([s0, shards["full"].path], "plate CP01 is in both"),
        ([s0, tmp_path / "nothing"], "no store at"),
    ]
    for inputs, message in cases:
        with pytest.raises(DataError, match=re.escape(message)):
            merge_stores(inputs, tmp_path / "out")
        assert not (tmp_path / "out").exists()
    with pytest.raises(DataError, match="never writes over its own input"):
        merge_stores([s0, s1], s0, overwrite=True)
    copy = tmp_path / "copy"
    shutil.copytree(s1, copy)
    with pytest.raises(DataError, match="never writes over its own input"):
        merge_stores([s0, copy], copy / "inside")
    assert Store.open(s0) is not None


def test_an_incomplete_set_of_shards_is_refused_naming_the_missing_ones(
        shards: dict[str, Store], cp: Path, tmp_path: Path) -> None:
    for given, missing in (([shards["0"]], "shard 1/2 is missing (given 1 of 2: 0/2)"),
                           ([shards["1"]], "shard 0/2 is missing (given 1 of 2: 1/2)")):
        with pytest.raises(DataError, match=re.escape(missing)):
            merge_stores([s.path for s in given], tmp_path / "m")
        assert not (tmp_path / "m").exists() and not (tmp_path / "m.partial").exists()
    kw = {"crop_size": CROP, "label": "moa", "batch": "batch", "group": "compound"}
    third = prepare_images(cp / "load_data.csv", tmp_path / "t", shard="2/3", **kw)
    with pytest.raises(DataError, match=re.escape("shards 0/3, 1/3 are missing")):
        merge_stores([third.path], tmp_path / "m")
    with pytest.raises(DataError, match=re.escape(f"shard 2/3 is one of 3 shards but "
                                                  f"{shards['0'].path} is shard 0/2")):
        merge_stores([shards["0"].path, third.path], tmp_path / "m")


def test_shards_and_whole_stores_are_not_merged_together(shards: dict[str, Store], cp: Path,
                                                         tmp_path: Path) -> None:
    kw = {"crop_size": CROP, "label": "moa", "batch": "batch", "group": "compound"}
    whole = prepare_images(cp / "load_data.csv", tmp_path / "w", plates=["CP02", "CP03"], **kw)
    with pytest.raises(DataError, match=re.escape(f"is shard 0/2 but {whole.path} is not a "
                                                  "shard")):
        merge_stores([shards["0"].path, whole.path], tmp_path / "m")
    part = prepare_images(cp / "load_data.csv", tmp_path / "p", plates=["CP01"], **kw)
    merged = merge_stores([whole.path, part.path], tmp_path / "m")  # neither is a shard
    assert merged.header["merge"] == {"ordered_by": "as given"}
    assert merged.obs["plate"].drop_duplicates().tolist() == ["CP02", "CP03", "CP01"]


def test_merge_never_writes_a_partial_name_nor_over_a_complete_store(
        shards: dict[str, Store], tmp_path: Path) -> None:
    from bioaug.errors import ConfigError

    inputs = [shards["0"].path, shards["1"].path]
    with pytest.raises(ConfigError, match=r"names ending in '\.partial' are reserved"):
        merge_stores(inputs, tmp_path / "m.partial")
    kept = shutil.copytree(shards["0"].path, tmp_path / "n.partial")
    before = (kept / "images.raw").read_bytes()
    for overwrite in (False, True):
        with pytest.raises(DataError, match="holds a complete store"):
            merge_stores(inputs, tmp_path / "n", overwrite=overwrite)
    assert (kept / "images.raw").read_bytes() == before and len(Store.open(kept)) > 0
