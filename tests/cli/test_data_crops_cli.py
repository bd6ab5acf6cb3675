"""`bioaug data prepare crops`: pre-cut crops in, a store out, mistakes as one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bioaug.cli import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def crops(tmp_path: Path) -> tuple[Path, Path]:
    """Six 2-channel 12×12 crops with channel names, and an obs table over two plates."""
    x = np.random.default_rng(0).integers(0, 3000, size=(6, 2, 12, 12)).astype(np.uint16)
    np.savez(tmp_path / "cells.npz", images=x, channels=np.array(["DNA", "Actin"]))
    pd.DataFrame({"cell": range(6), "plate": ["p1"] * 3 + ["p2"] * 3,
                  "phase": list("GGSMSG")}).to_csv(tmp_path / "cells.csv", index=False)
    return tmp_path / "cells.npz", tmp_path / "cells.csv"


def test_prepare_info_and_shards(tmp_path: Path, crops: tuple[Path, Path],
                                 capsys: pytest.CaptureFixture[str]) -> None:
    images, obs = crops
    store = tmp_path / "store"
    code, out, _ = _run(capsys, "data", "prepare", "crops", "--images", str(images), "--obs",
                        str(obs), "--out", str(store), "--crop-size", "10", "--pad", "edge")
    assert code == 0
    assert out.strip() == (f"wrote {store}: 6 crops 10×10, channels DNA, Actin, 2 plate(s), "
                           "label phase")
    code, out, _ = _run(capsys, "data", "info", str(store), "--json")
    info = json.loads(out)
    assert info["classes"] == {"G": 3, "M": 1, "S": 2} and info["n_plate"] == 2
    assert info["dataset"] == "crops" and info["report"]["crops"] == 6
    shards = []
    for i in (0, 1):
        shards.append(str(tmp_path / f"s{i}"))
        code, _, _ = _run(capsys, "data", "prepare", "crops", "--images", str(images), "--obs",
                          str(obs), "--out", shards[-1], "--crop-size", "10", "--pad", "edge",
                          "--shard", f"{i}/2")
        assert code == 0
    code, out, _ = _run(capsys, "data", "merge", *shards, "--out", str(tmp_path / "merged"))
    assert code == 0 and "(shards of 2)" in out
    from bioaug.data.store import Store

    a, b = Store.open(store), Store.open(tmp_path / "merged")
    assert np.array_equal(a.read(slice(None)), b.read(slice(None))) and a.obs.equals(b.obs)


def test_channels_layout_and_label_flags(tmp_path: Path, crops: tuple[Path, Path],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    images, obs = crops
    x = np.load(images)["images"]
    np.save(tmp_path / "hwc.npy", x.transpose(0, 2, 3, 1))
    code, out, _ = _run(capsys, "data", "prepare", "crops", "--images",
                        str(tmp_path / "hwc.npy"), "--layout", "NHWC", "--channels", "a,b",
                        "--obs", str(obs), "--label", "plate", "--index-column", "cell",
                        "--out", str(tmp_path / "s"))
    assert code == 0 and "channels a, b" in out and "label plate" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["--out", "{tmp}/s"], "needs --images FILE"),
    (["--images", "{tmp}/none.npy", "--out", "{tmp}/s"], "file is missing"),
    (["--images", "{images}", "--obs", "{tmp}/short.csv", "--out", "{tmp}/s"],
     "the obs table has 2 rows but there are 6 crops"),
    (["--images", "{images}", "--obs", "{obs}", "--label", "phse", "--out", "{tmp}/s"],
     "did you mean 'phase'"),
    (["--images", "{images}", "--edge", "reflect", "--out", "{tmp}/s"],
     "--edge does not apply to pre-cut crops"),
    (["--images", "{images}", "--workers", "2", "--out", "{tmp}/s"], "--workers does not apply"),
    (["--images", "{images}", "--size", "8", "--out", "{tmp}/s"], "--size does not apply"),
    (["--images", "{images}", "--key", "imgs", "--out", "{tmp}/s"], "did you mean 'images'"),
    (["--images", "{images}", "--channels", "DNA", "RNA", "Mito", "--out", "{tmp}/s"],
     "--channels names 3 channel(s) but the crops have 2"),
    (["--images", "{images}", "--shard", "1/1", "--out", "{tmp}/s"], "need 0 ≤ I < N"),
    (["--images", "{images}", "--resize", "2", "--out", "{tmp}/s"], "must be at least 4"),
    (["--images", "{images}", "--out", "{images}"], "the input"),
])
def test_errors_exit_2_without_traceback(tmp_path: Path, crops: tuple[Path, Path],
                                         capsys: pytest.CaptureFixture[str],
                                         argv: list[str], message: str) -> None:
    images, obs = crops
    pd.DataFrame({"phase": ["G", "S"]}).to_csv(tmp_path / "short.csv", index=False)
    filled = [a.format(tmp=tmp_path, images=images, obs=obs) for a in argv]
    code, _, err = _run(capsys, "data", "prepare", "crops", *filled)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert err.startswith("bioaug: error:")


def test_crops_flags_refused_by_other_datasets(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "data", "prepare", "digits", "--images", "x.npy", "--out",
                        str(tmp_path / "d"))
    assert code == 2 and "--images applies to `data prepare crops`, not digits" in err
