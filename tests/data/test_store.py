from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bioaug.data.store import (
    Store,
    StoreWriter,
    begin_partial,
    clear_partial,
    to_float,
    write_store,
)
from bioaug.errors import ConfigError, DataError


def _obs(n: int) -> pd.DataFrame:
    return pd.DataFrame({"label": [f"c{i % 3}" for i in range(n)], "i": range(n)})


def test_round_trip_and_random_access(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 65535, size=(20, 3, 8, 6), dtype=np.uint16)
    store = write_store(tmp_path / "s", images, _obs(20), channels=["A", "B", "C"],
                        label_column="label", chunk=7)
    again = Store.open(tmp_path / "s")
    assert len(again) == 20 and again.channels == ["A", "B", "C"]
    assert again.image_size == (8, 6)
    idx = [17, 2, 9, 2]
    np.testing.assert_array_equal(again.read(idx), images[idx])
    assert isinstance(store.images, np.memmap)
    assert again.summary()["classes"] == {"c0": 7, "c1": 7, "c2": 6}
    np.testing.assert_allclose(again.read_float(0), images[0] / 65535.0, rtol=1e-6)


def test_interrupted_build_resumes_without_duplicates(tmp_path: Path) -> None:
    kw = dict(channels=["A"], image_size=(4, 4), dtype="uint8")
    w = StoreWriter(tmp_path / "s", **kw)
    w.add(np.full((3, 1, 4, 4), 1, np.uint8), [{"unit": "a"}] * 3)
    w.commit("a")
    w.add(np.full((2, 1, 4, 4), 2, np.uint8), [{"unit": "b"}] * 2)  # killed before commit
    w._img.flush()
    w.close()
    with pytest.raises(DataError, match="no store"):
        Store.open(tmp_path / "s")  # never looks complete
    w = StoreWriter(tmp_path / "s", **kw)
    assert w.done_units == {"a"} and w.n_items == 3
    w.add(np.full((2, 1, 4, 4), 2, np.uint8), [{"unit": "b"}] * 2)
    w.commit("b")
    store = w.finalize()
    assert store.obs["unit"].tolist() == ["a", "a", "a", "b", "b"]
    assert store.read(slice(None))[:, 0, 0, 0].tolist() == [1, 1, 1, 2, 2]


def test_resume_with_other_settings_is_refused(tmp_path: Path) -> None:
    w = StoreWriter(tmp_path / "s", channels=["A"], image_size=(4, 4), dtype="uint8")
    w.close()
    with pytest.raises(DataError, match="other settings"):
        StoreWriter(tmp_path / "s", channels=["A", "B"], image_size=(4, 4), dtype="uint8")


def test_not_a_store_and_damaged_store(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not a bioaug store"):
        Store.open(tmp_path / "empty")
    write_store(tmp_path / "s", np.zeros((4, 1, 2, 2), np.uint8), _obs(4), channels=["A"])
    with open(tmp_path / "s" / "images.raw", "ab") as fh:
        fh.write(b"x")
    with pytest.raises(DataError, match="damaged"):
        Store.open(tmp_path / "s")


def test_existing_store_needs_overwrite(tmp_path: Path) -> None:
    write_store(tmp_path / "s", np.zeros((2, 1, 2, 2), np.uint8), _obs(2), channels=["A"])
    with pytest.raises(DataError, match="already exists"):
        write_store(tmp_path / "s", np.ones((2, 1, 2, 2), np.uint8), _obs(2), channels=["A"])
    s = write_store(tmp_path / "s", np.ones((2, 1, 2, 2), np.uint8), _obs(2), channels=["A"],
                    overwrite=True)
    assert int(s.read(0).sum()) == 4


def test_to_float_scales() -> None:
    assert to_float(np.array([255], np.uint8))[0] == 1.0
    assert to_float(np.array([65535], np.uint16))[0] == 1.0


def test_text_columns_stay_text_and_unlabelled_items_are_counted(tmp_path: Path) -> None:
    images = np.zeros((4, 1, 2, 2), dtype=np.uint8)
    obs = pd.DataFrame({"label": ["0", "7", None, "7"], "label_id": [0, 7, -1, 7]})
    s = write_store(tmp_path / "s", images, obs, channels=["gray"], label_column="label")
    again = Store.open(tmp_path / "s")
    assert again.obs["label"].iloc[1] == "7" and again.obs["label_id"].iloc[1] == 7
    assert again.obs["label"].isna().sum() == 1
    assert s.summary()["classes"] == {"0": 1, "7": 2} and s.summary()["unlabelled"] == 1


def test_overwrite_never_replaces_something_that_is_not_a_store(tmp_path: Path) -> None:
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("…")
    with pytest.raises(DataError, match="not a bioaug store; refusing"):
        write_store(precious, np.zeros((1, 1, 2, 2), np.uint8), _obs(1), channels=["g"],
                    overwrite=True)
    assert (precious / "chapter1.tex").exists()


def test_header_that_is_not_an_object(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "header.json").write_text('"just a string"')
    with pytest.raises(DataError, match="the header is not a JSON object"):
        Store.open(tmp_path / "s")


def _damaged(tmp_path: Path, **change: object) -> Path:
    s = write_store(tmp_path / "s", np.zeros((2, 3, 4, 4), np.uint8), _obs(2),
                    channels=["a", "b", "c"])
    header = json.loads((s.path / "header.json").read_text())
    for k, v in change.items():
        if v is None:
            header.pop(k)
        else:
            header[k] = v
    (s.path / "header.json").write_text(json.dumps(header))
    return s.path


@pytest.mark.parametrize(("change", "message"), [
    ({"shape": None}, "shape: required"),
    ({"channels": None}, "channels: required"),
    ({"dtype": None}, "dtype: required"),
    ({"dtype": "int7"}, "dtype: must be one of 'uint8', 'uint16'"),
    ({"channels": ["a", "b"]}, "channels lists 2 name"),
    ({"shape": [2, 3, 4]}, "shape"),
    ({"shape": [2, 3, 0, 16]}, "height ≥ 1"),
    ({"shape": [1, 3, 8, 4]}, "obs.csv has 2 rows"),  # same byte count, wrong item count
    ({"version": "new"}, "version"),
])
def test_damaged_headers_are_clear_errors(tmp_path: Path, change: dict, message: str) -> None:
    path = _damaged(tmp_path, **change)
    with pytest.raises(DataError, match=re.escape(message)) as e:
        Store.open(path)
    assert "header.json" in e.value.format() or "obs.csv" in e.value.format()


def test_overwrite_never_deletes_a_run_inside_a_store(tmp_path: Path) -> None:
    s = write_store(tmp_path / "s", np.zeros((1, 1, 2, 2), np.uint8), _obs(1), channels=["g"])
    (s.path / "run").mkdir()
    (s.path / "run" / "checkpoint.pt").write_bytes(b"weights")
    with pytest.raises(DataError, match=r"holds files a store does not \(run\)"):
        write_store(s.path, np.zeros((1, 1, 2, 2), np.uint8), _obs(1), channels=["g"],
                    overwrite=True)
    assert (s.path / "run" / "checkpoint.pt").read_bytes() == b"weights"
    # a folder that merely shares the name of the build's scratch space is not deleted
    other = tmp_path / "t"
    (tmp_path / "t.partial").mkdir()
    (tmp_path / "t.partial" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not an interrupted store build"):
        write_store(other, np.zeros((1, 1, 2, 2), np.uint8), _obs(1), channels=["g"],
                    overwrite=True)
    assert (tmp_path / "t.partial" / "notes.txt").exists()
    # a sibling called <store>.old survives a replacement
    (tmp_path / "s.old").mkdir()
    shutil.rmtree(s.path / "run")
    write_store(s.path, np.ones((1, 1, 2, 2), np.uint8), _obs(1), channels=["g"], overwrite=True)
    assert (tmp_path / "s.old").is_dir()


def _complete_store_named(tmp_path: Path, name: str) -> Path:
    """A complete store moved to ``name`` (as one written before such names were refused)."""
    s = write_store(tmp_path / "made", np.arange(8, dtype=np.uint8).reshape(2, 1, 2, 2),
                    _obs(2), channels=["g"])
    return s.path.rename(tmp_path / name)


def test_out_names_ending_in_partial_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"names ending in '\.partial' are reserved") as e:
        write_store(tmp_path / "s.partial", np.zeros((1, 1, 2, 2), np.uint8), _obs(1),
                    channels=["g"])
    assert f"--out {tmp_path / 's'}" in e.value.format()
    assert not (tmp_path / "s.partial").exists()
    assert not (tmp_path / "s.partial.partial").exists()


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_complete_store_named_like_scratch_space_is_never_deleted(tmp_path: Path,
                                                                   overwrite: bool) -> None:
    kept = _complete_store_named(tmp_path, "s.partial")
    before = (kept / "images.raw").read_bytes()
    with pytest.raises(DataError, match=r"holds a complete store \(header\.json\); refusing"):
        write_store(tmp_path / "s", np.zeros((3, 1, 2, 2), np.uint8), _obs(3), channels=["g"],
                    overwrite=overwrite)
    assert (kept / "images.raw").read_bytes() == before
    assert len(Store.open(kept)) == 2 and not (tmp_path / "s").exists()
    with pytest.raises(DataError, match="no store at") as e:
        Store.open(tmp_path / "s")
    assert "holds a complete store under a scratch name; rename it to s" in e.value.format()


def test_scratch_folders_are_deleted_only_when_they_are_ours(tmp_path: Path) -> None:
    kept = _complete_store_named(tmp_path, "t.partial")
    with pytest.raises(DataError, match="holds a complete store"):
        clear_partial(kept)
    mine = begin_partial(tmp_path / "u")
    (mine / "half.tif").write_bytes(b"x")
    assert begin_partial(tmp_path / "u") == mine and list(mine.iterdir()) == [
        mine / ".bioaug-partial"]  # an interrupted write of ours is cleared
    theirs = tmp_path / "v.partial"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="is not an interrupted write; refusing to delete it"):
        begin_partial(tmp_path / "v")
    assert (theirs / "notes.txt").exists() and kept.is_dir()


def test_a_build_stopped_after_writing_its_header_resumes(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import bioaug.data.store as store_module

    write = store_module.atomic_write_json

    def stop_after_header(path: Path, obj: object) -> None:
        write(path, obj)
        if path.name == "header.json":
            raise KeyboardInterrupt

    monkeypatch.setattr(store_module, "atomic_write_json", stop_after_header)
    with pytest.raises(KeyboardInterrupt):
        write_store(tmp_path / "s", np.ones((2, 1, 2, 2), np.uint8), _obs(2), channels=["g"])
    monkeypatch.undo()
    partial = tmp_path / "s.partial"
    assert (partial / "header.json").is_file() and (partial / "progress.json").is_file()
    s = write_store(tmp_path / "s", np.ones((2, 1, 2, 2), np.uint8), _obs(2), channels=["g"])
    assert len(s) == 2 and not partial.exists()


def test_a_missing_pixel_file_is_named_with_what_to_do(tmp_path: Path) -> None:
    s = write_store(tmp_path / "s", np.zeros((2, 1, 2, 2), np.uint8), _obs(2), channels=["g"])
    (s.path / "images.raw").unlink()
    with pytest.raises(DataError, match=r"images\.raw is missing from the store") as e:
        Store.open(s.path)
    text = e.value.format()
    assert str(s.path) in text and "-1 bytes" not in text
    assert "restore" in text and "rebuild the store" in text


@pytest.mark.parametrize(("content", "message"), [
    (None, r"obs\.csv is missing from the store"),
    ("", r"obs\.csv has 0 rows but the store holds 2 images"),
    ('label,i\n"c0,1\n', r"cannot read obs\.csv"),
])
def test_a_missing_or_empty_obs_table_is_a_clear_error(tmp_path: Path, content: str | None,
                                                       message: str) -> None:
    s = write_store(tmp_path / "s", np.zeros((2, 1, 2, 2), np.uint8), _obs(2), channels=["g"])
    if content is None:
        (s.path / "obs.csv").unlink()
    else:
        (s.path / "obs.csv").write_text(content)
    with pytest.raises(DataError, match=message):
        Store.open(s.path)


@pytest.mark.parametrize(("change", "message"), [
    ({"shape": [2, 3, 2, 8]}, "the items are 4×4 (H×W) as recorded, but the shape says 2×8"),
    ({"shape": [2, 3, 8, 2], "image_size": None, "config": {"crop_size": 4}},
     "the items are 4×4 (H×W) as recorded, but the shape says 8×2"),
    ({"layout": "NHWC"}, "its layout is 'NHWC'; stores are NCHW"),
    ({"config": {"channels": ["a", "b", "c", "d"]}}, "recorded 4 channel(s) (a, b, c, d)"),
])
def test_a_shape_of_the_right_size_but_the_wrong_layout_is_refused(tmp_path: Path,
                                                                   change: dict,
                                                                   message: str) -> None:
    path = _damaged(tmp_path, **change)
    with pytest.raises(DataError, match=re.escape(message)) as e:
        Store.open(path)
    assert "does not fit the store's layout (items, channels, height, width)" in str(e.value)
    assert "header.json" in e.value.format()


def test_headers_record_the_layout_and_item_size(tmp_path: Path) -> None:
    s = write_store(tmp_path / "s", np.zeros((2, 3, 4, 5), np.uint8), _obs(2),
                    channels=["a", "b", "c"])
    assert s.header["layout"] == "NCHW" and s.header["image_size"] == [4, 5]


def test_nonfinite_items_scan_a_range_of_items(tmp_path):
    from bioaug.data.store import nonfinite_items

    images = np.zeros((12, 1, 4, 4), dtype=np.float32)
    images[[1, 6, 11], 0, 2, 2] = [np.nan, np.inf, -np.inf]
    store = write_store(tmp_path / "s", images, pd.DataFrame({"label": ["a"] * 12}),
                        channels=["DAPI"])
    assert nonfinite_items(store, chunk=5).tolist() == [1, 6, 11]
    assert nonfinite_items(store, chunk=2, items=range(4, 11)).tolist() == [6]
