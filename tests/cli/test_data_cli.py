from __future__ import annotations

import json
from pathlib import Path

import pytest

from bioaug.cli import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_synth_info_prepare_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "twin"
    code, out, _ = _run(capsys, "data", "synth", "bbbc021", "--out", str(root), "--plates", "2",
                        "--sites", "1", "--wells", "3", "--size", "128x160",
                        "--cells-per-field", "8", "--seed", "1")
    assert code == 0 and "wrote a BBBC021 twin" in out
    code, out, _ = _run(capsys, "data", "info", "bbbc021", "--root", str(root), "--json")
    info = json.loads(out)
    assert code == 0 and info["fields"] == 6 and info["plates"] == 2
    assert info["images"]["fields_complete"] == 6 and info["images"]["fields_missing"] == 0
    code, out, _ = _run(capsys, "data", "info", "bbbc021", "--root", str(root))
    assert code == 0 and "fields: 6" in out and "moa_classes:" in out
    store = tmp_path / "store"
    code, out, _ = _run(capsys, "data", "prepare", "bbbc021", "--root", str(root), "--out",
                        str(store), "--crop-size", "40", "--resize", "20", "--workers", "1")
    assert code == 0 and "crops 20×20 from 6 of 6 fields" in out
    code, out, _ = _run(capsys, "data", "info", str(store), "--json")
    summary = json.loads(out)
    assert summary["channels"] == ["DAPI", "Tubulin", "Actin"]
    assert summary["label_column"] == "moa" and summary["image_size"] == [20, 20]
    assert summary["n_plate"] == 2 and summary["items"] > 0
    code, _, err = _run(capsys, "data", "prepare", "bbbc021", "--root", str(root), "--out",
                        str(store))
    assert code == 2 and "already holds a crop store" in err and "--overwrite" in err


def test_digits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "data", "prepare", "digits", "--out", str(tmp_path / "d"),
                        "--size", "16")
    assert code == 0 and "1797 images 1×16×16 (train 1437, test 360)" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["data", "info", "{tmp}/nothing"], "no store at"),
    (["data", "info", "{tmp}"], "is not a bioaug store"),
    (["data", "info", "bbbc021"], "needs --root"),
    (["data", "info", "bbbc021", "--root", "{tmp}"], "no BBBC021_v1_image.csv"),
    (["data", "prepare", "cifar11", "--root", "{tmp}", "--out", "{tmp}/s"],
     "did you mean 'cifar10'"),
    (["data", "prepare", "bbbc021", "--out", "{tmp}/s"], "needs --root"),
    (["data", "synth", "bbbc021", "--out", "{tmp}/t", "--size", "big"], "HxW"),
    (["data", "fetch", "bbbc22", "--out", "{tmp}/f"], "did you mean 'bbbc021'"),
])
def test_errors_exit_2_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         argv: list[str], message: str) -> None:
    code, _, err = _run(capsys, *[a.format(tmp=tmp_path) for a in argv])
    assert code == 2
    assert message in err and "Traceback" not in err
    assert err.startswith("bioaug: error:")


def test_half_written_store_is_reported(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    from bioaug.data.store import StoreWriter

    w = StoreWriter(tmp_path / "s", channels=["gray"], image_size=(4, 4), dtype="uint8")
    w.add(np.zeros((2, 1, 4, 4), np.uint8), [{"label": "a"}, {"label": "b"}])
    w.commit("chunk-0")
    w.close()
    code, _, err = _run(capsys, "data", "info", str(tmp_path / "s"))
    assert code == 2 and "half-written: 1 unit(s), 2 items" in err and "resume" in err


def test_fetch_from_a_loopback_mirror(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`bioaug data fetch` with --card and --base-url against 127.0.0.1 (no internet)."""
    import hashlib
    import http.server
    import threading

    import yaml

    from tests.data.test_fetch import _Handler

    payload = b"\x00\x00\x08\x01" + (3).to_bytes(4, "big") + b"abc"
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.log, srv.ranges = {"x.idx": payload}, [], True  # type: ignore[attr-defined]
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    try:
        card = tmp_path / "card.yaml"
        card.write_text(yaml.safe_dump({
            "name": "mnist", "title": "t", "licence": "t", "base_url": "http://invalid.example/",
            "files": [{"name": "x.idx", "url": "x.idx",
                       "sha256": hashlib.sha256(payload).hexdigest()}]}))
        base = f"http://127.0.0.1:{srv.server_address[1]}/"
        argv = ["data", "fetch", "mnist", "--out", str(tmp_path / "o"), "--card", str(card),
                "--base-url", base, "--json"]
        code, out, _ = _run(capsys, *argv)
        assert code == 0 and json.loads(out)["files"] == {"x.idx": "downloaded"}
        assert (tmp_path / "o" / "x.idx").read_bytes() == payload
        code, out, _ = _run(capsys, *argv)
        assert json.loads(out)["files"] == {"x.idx": "already complete"}
        card.write_text(card.read_text().replace(hashlib.sha256(payload).hexdigest(), "f" * 64))
        (tmp_path / "o" / "x.idx").unlink()
        (tmp_path / "o" / ".bioaug-fetch.json").unlink()
        code, _, err = _run(capsys, *argv)
        assert code == 2 and "sha256 checksum mismatch" in err
    finally:
        srv.shutdown()
        srv.server_close()


def test_more_user_mistakes_exit_2_without_traceback(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    not_a_dict = tmp_path / "list_header"
    not_a_dict.mkdir()
    (not_a_dict / "header.json").write_text("[1, 2]")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    cases = [
        (["data", "info", str(not_a_dict)], "the header is not a JSON object"),
        (["data", "fetch", "bbbc021", "--out", str(a_file)], "is a file, not a"),
        (["data", "fetch", "bbbc021", "--out", str(tmp_path / "f"), "--base-url", "nourl"],
         "unknown url type"),
        (["data", "synth", "bbbc021", "--out", str(tmp_path / "t"), "--seed", "-1"],
         "seed must be a non-negative integer"),
        (["data", "prepare", "digits", "--out", str(tmp_path / "d"), "--size", "0"],
         "size must be at least 1"),
    ]
    for argv, message in cases:
        code, _, err = _run(capsys, *argv)
        assert code == 2, argv
        assert err.startswith("bioaug: error:") and message in err, (argv, err)


def test_negative_examples_is_a_clear_error(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "data", "info", "bbbc021", "--root", str(tmp_path),
                        "--examples", "-1")
    assert code == 2 and "--examples must be 0 or more, got -1" in err


def test_cellpainting_synth_prepare_shards_merge(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    cp = tmp_path / "cp"
    code, out, _ = _run(capsys, "data", "synth", "cellpainting", "--out", str(cp), "--plates",
                        "2", "--wells", "2", "--sites", "1", "--size", "96x96")
    assert code == 0 and "wrote a Cell Painting twin" in out and "--load-data" in out
    common = ["--load-data", str(cp / "load_data.csv"), "--label", "moa", "--batch", "batch",
              "--group", "compound", "--crop-size", "32"]
    full = tmp_path / "full"
    code, out, _ = _run(capsys, "data", "prepare", "images", "--out", str(full), *common)
    assert code == 0 and "crops 32×32 from 4 of 4 fields" in out
    for i in (0, 1):
        code, _, _ = _run(capsys, "data", "prepare", "images", "--out", str(tmp_path / f"s{i}"),
                          "--shard", f"{i}/2", *common)
        assert code == 0
    code, out, _ = _run(capsys, "data", "merge", str(tmp_path / "s1"), str(tmp_path / "s0"),
                        "--out", str(tmp_path / "m"))
    assert code == 0 and "from 2 stores (shards of 2)" in out
    code, out, _ = _run(capsys, "data", "info", str(tmp_path / "m"), "--json")
    merged, whole = json.loads(out), None
    code, out, _ = _run(capsys, "data", "info", str(full), "--json")
    whole = json.loads(out)
    assert merged["items"] == whole["items"] and merged["channels"] == ["DNA", "ER", "RNA",
                                                                       "AGP", "Mito"]
    assert merged["classes"] == whole["classes"]
    code, _, err = _run(capsys, "data", "merge", str(tmp_path / "s0"), "--out",
                        str(tmp_path / "half"))
    assert code == 2 and "shard 1/2 is missing (given 1 of 2: 0/2)" in err
    assert not (tmp_path / "half").exists() and "Traceback" not in err


def test_prepare_flags_come_from_the_options_model(capsys: pytest.CaptureFixture[str]) -> None:
    from bioaug.data.prepare import PrepareOptions

    with pytest.raises(SystemExit):
        main(["data", "prepare", "--help"])
    text = capsys.readouterr().out
    for name, field in PrepareOptions.model_fields.items():
        assert "--" + name.replace("_", "-") in text
        assert field.description.split()[0] in text


@pytest.mark.parametrize(("argv", "message"), [
    (["data", "synth", "bbbc021", "--out", "{tmp}/t", "--workers", "0"],
     "--workers must be a whole number ≥ 1 (1 runs in this process), got 0"),
    (["data", "synth", "cellpainting", "--out", "{tmp}/t", "--workers", "0"],
     "--workers must be a whole number ≥ 1"),
    (["data", "prepare", "images", "--out", "{tmp}/s"], "needs --load-data"),
    (["data", "prepare", "images", "--out", "{tmp}/s", "--load-data", "{tmp}/none.csv"],
     "cannot read the LoadData table"),
    (["data", "prepare", "bbbc021", "--root", "{tmp}", "--out", "{tmp}/s", "--label", "x"],
     "--label applies to `data prepare images`"),
    (["data", "prepare", "digits", "--out", "{tmp}/s", "--crop-size", "40"],
     "--crop-size applies to screens"),
    (["data", "prepare", "images", "--out", "{tmp}/s", "--load-data", "x.csv",
      "--percentiles", "50", "10"], "percentiles must satisfy 0 ≤ low < high ≤ 100"),
    (["data", "prepare", "images", "--out", "{tmp}/s", "--load-data", "x.csv",
      "--max-area", "10"], "max_area (10) must be at least min_area (50)"),
    (["data", "merge", "{tmp}/a", "--out", "{tmp}/m"], "no store at"),
    (["data", "synth", "cellpainting", "--out", "{tmp}/t", "--masks", "--size", "20x20"],
     "too small"),
])
def test_screen_mistakes_exit_2_without_traceback(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str],
                                                  argv: list[str], message: str) -> None:
    code, _, err = _run(capsys, *[a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert code == 2 and message in err and "Traceback" not in err, err


@pytest.mark.parametrize("where", ["root", "inside-root"])
def test_prepare_never_writes_into_its_input(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             where: str) -> None:
    root = tmp_path / "screen"
    root.mkdir()
    (root / "notes.txt").write_text("keep me")
    out = root if where == "root" else root / "notes.txt"
    code, _, err = _run(capsys, "data", "prepare", "bbbc021", "--root", str(root),
                        "--out", str(out))
    assert code != 0 and "Traceback" not in err and str(out) in err
    assert (root / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in root.iterdir()) == ["notes.txt"]


def _jump_style(tmp_path: Path) -> Path:
    """The Cell Painting twin as JUMP writes a LoadData CSV: Orig<Ch> image columns and
    Illum<Ch> functions (flat ones: dividing by them changes nothing)."""
    import numpy as np
    import pandas as pd

    from bioaug.data.synth_cellpainting import CHANNELS, synth_cellpainting

    cp = synth_cellpainting(tmp_path / "cp", plates=2, wells_per_plate=2, sites=1,
                            size=(96, 96))
    df = pd.read_csv(cp / "load_data.csv")
    for ch in CHANNELS:
        np.save(cp / f"Illum{ch}.npy", np.ones((96, 96), np.float32))
        df = df.rename(columns={f"FileName_{ch}": f"FileName_Orig{ch}",
                                f"PathName_{ch}": f"PathName_Orig{ch}"})
        df[f"FileName_Illum{ch}"] = f"Illum{ch}.npy"
        df[f"PathName_Illum{ch}"] = f"{cp}/"
    df.to_csv(cp / "jump.csv", index=False)
    return cp / "jump.csv"


def test_prepare_images_illum_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    from bioaug.data.store import Store

    ld = _jump_style(tmp_path)
    common = ["data", "prepare", "images", "--load-data", str(ld), "--crop-size", "32"]
    code, out, err = _run(capsys, *common, "--out", str(tmp_path / "given"))
    assert code == 0 and "crops 32×32 from 4 of 4 fields" in out, err
    code, out, _ = _run(capsys, "data", "info", str(tmp_path / "given"), "--json")
    assert json.loads(out)["channels"] == ["DNA", "ER", "RNA", "AGP", "Mito"]
    code, _, _ = _run(capsys, *common, "--out", str(tmp_path / "none"), "--illum", "none")
    assert code == 0
    given, none = Store.open(tmp_path / "given"), Store.open(tmp_path / "none")
    assert given.header["config"]["illum"] == "given" and none.header["config"]["illum"] == "none"
    np.testing.assert_array_equal(given.read(slice(None)), none.read(slice(None)))
    plain = tmp_path / "cp" / "load_data.csv"
    code, _, err = _run(capsys, "data", "prepare", "images", "--load-data", str(plain),
                        "--out", str(tmp_path / "s"), "--illum", "given")
    assert code == 2 and "--illum given: the LoadData table has no FileName_Illum<Ch>" in err
    assert "Traceback" not in err
    code, _, err = _run(capsys, "data", "prepare", "digits", "--out", str(tmp_path / "d"),
                        "--illum", "none")
    assert code == 2 and "--illum applies to screens" in err
    with pytest.raises(SystemExit) as e:
        main([*common, "--out", str(tmp_path / "t"), "--illum", "divide"])
    assert e.value.code == 2 and "invalid choice: 'divide'" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["data", "synth", "bbbc021", "--size", "100000x100000"], "the largest square field that "
                                                              "fits is about"),
    (["data", "synth", "cellpainting", "--size", "100000x100000"], "the largest square field "
                                                                   "that fits is about"),
    (["data", "prepare", "digits", "--size", "100000"], "the largest --size that fits is about"),
])
def test_sizes_that_cannot_fit_in_memory_exit_2(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                argv: list[str], message: str) -> None:
    code, _, err = _run(capsys, *argv, "--out", str(tmp_path / "out"))
    assert code == 2 and err.startswith("bioaug: error:") and "Traceback" not in err
    assert "of memory (" in err and "bytes) is available" in err and message in err
    assert not any(tmp_path.iterdir())


def test_partial_names_are_refused_and_complete_stores_kept(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    for argv in (["data", "prepare", "digits", "--size", "8"],
                 ["data", "synth", "cellpainting"],
                 ["data", "merge", str(tmp_path / "any")],
                 ["data", "prepare", "crops", "--images", str(tmp_path / "x.npy")]):
        code, _, err = _run(capsys, *argv, "--out", str(tmp_path / "d.partial"))
        assert code == 2 and "names ending in '.partial' are reserved" in err, argv
        assert "--out " + str(tmp_path / "d") in err
    code, _, _ = _run(capsys, "data", "prepare", "digits", "--size", "8", "--out",
                      str(tmp_path / "made"))
    kept = (tmp_path / "made").rename(tmp_path / "d.partial")  # as written by an older bioaug
    before = (kept / "images.raw").read_bytes()
    for extra in ([], ["--overwrite"]):
        code, _, err = _run(capsys, "data", "prepare", "digits", "--size", "8", "--out",
                            str(tmp_path / "d"), *extra)
        assert code == 2 and "holds a complete store (header.json); refusing" in err
    assert (kept / "images.raw").read_bytes() == before and not (tmp_path / "d").exists()


def test_an_empty_obs_table_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    np.save(tmp_path / "x.npy", np.zeros((2, 1, 8, 8), np.uint16))
    (tmp_path / "obs.csv").write_text("")
    code, _, err = _run(capsys, "data", "prepare", "crops", "--images", str(tmp_path / "x.npy"),
                        "--obs", str(tmp_path / "obs.csv"), "--out", str(tmp_path / "s"))
    assert code == 2 and "the obs table is empty" in err and "Traceback" not in err
