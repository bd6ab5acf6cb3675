"""``bioaug protocol``: exit codes, output, and never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bioaug.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_validate_ok_and_bad(tmp_path: Path, capsys) -> None:
    code, out, _ = run(capsys, "protocol", "validate", "bbbc021-expert", "none")
    assert code == 0
    assert out.count("OK") == 2 and "bbbc021-expert: 2 views" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("bioaug_protocol: 1\nviews:\n  - crop_size: 8\n    steps:\n"
                   "      - stain_jitter: {brightness: 1.5}\n")
    code, out, err = run(capsys, "protocol", "validate", "none", str(bad))
    assert code == 2
    assert "OK  none" in out
    assert f"bioaug: error: {bad}:5: views[0].steps[0].stain_jitter.brightness: must be in " \
           "[0, 1], got 1.5" in err
    assert "1 of 2 protocol(s) invalid" in err


@pytest.mark.parametrize(("content", "message"), [
    (b"", "the protocol is empty"),
    (b"\x00\x01\x02binary", "binary file"),
    (b"views: [\n", "YAML syntax error"),
    (b"bioaug_protocol: 3\nviews: []\n", "format version 3 is newer"),
])
def test_validate_bad_files_exit_2(tmp_path: Path, capsys, content: bytes, message: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(content)
    code, _, err = run(capsys, "protocol", "validate", str(path))
    assert code == 2 and message in err


def test_validate_unknown_name(capsys) -> None:
    code, _, err = run(capsys, "protocol", "validate", "moco-v3")
    assert code == 2 and "unknown protocol 'moco-v3'" in err


def test_show_prints_normalised_yaml_with_defaults(capsys) -> None:
    code, out, _ = run(capsys, "protocol", "show", "bbbc021-expert")
    assert code == 0
    assert "bioaug_protocol: 1" in out and "same_as: 0" in out
    assert "ratio: [0.8, 1.25]" in out and "turns: [0, 1, 2, 3]" in out


def test_schema_to_stdout_and_file(tmp_path: Path, capsys) -> None:
    code, out, _ = run(capsys, "protocol", "schema")
    assert code == 0 and "op_stain_jitter" in json.loads(out)["$defs"]
    target = tmp_path / "schema.json"
    code, out, _ = run(capsys, "protocol", "schema", "--out", str(target))
    assert code == 0 and json.loads(target.read_text())["title"]


def test_list_ops_text_and_markdown(capsys) -> None:
    code, out, _ = run(capsys, "protocol", "list-ops")
    assert code == 0 and "stain_jitter:" in out and "color_jitter:" in out
    code, out, _ = run(capsys, "protocol", "list-ops", "--markdown")
    assert code == 0 and "### `channel_dropout`" in out and "| parameter |" in out


def test_list_shipped(capsys) -> None:
    code, out, _ = run(capsys, "protocol", "list")
    assert code == 0 and "bbbc021-expert" in out and "mnist-all" in out


def test_preview(tmp_path: Path, capsys) -> None:
    out_png = tmp_path / "preview.png"
    code, out, _ = run(capsys, "protocol", "preview", "bbbc021-expert", "--out", str(out_png),
                       "--n", "2", "--seed", "3")
    assert code == 0 and out_png.is_file() and out_png.read_bytes()[:4] == b"\x89PNG"
    assert f"wrote {out_png}" in out


@pytest.mark.parametrize(("args", "message"), [
    (["--n", "0"], "--n must be between 1 and 64"),
    (["--input", "nowhere.tif"], "no such file"),
])
def test_preview_errors(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    code, _, err = run(capsys, "protocol", "preview", "none", "--out",
                       str(tmp_path / "x.png"), *args)
    assert code == 2 and message in err


def test_preview_rejects_non_png_output(tmp_path: Path, capsys) -> None:
    code, _, err = run(capsys, "protocol", "preview", "none", "--out", str(tmp_path / "x.jpg"))
    assert code == 2 and "--out must be a .png file" in err


def test_out_that_is_a_directory_is_a_clear_error(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "grid.png"
    folder.mkdir()
    code, _, err = run(capsys, "protocol", "preview", "none", "--out", str(folder))
    assert code == 2 and "is a directory" in err
    code, _, err = run(capsys, "protocol", "schema", "--out", str(tmp_path))
    assert code == 2 and "is a directory" in err


@pytest.mark.parametrize("seed", ["-1", str(2**32), str(2**63), str(2**64)])
def test_preview_seed_out_of_range_is_a_clear_error(tmp_path: Path, capsys, seed: str) -> None:
    code, _, err = run(capsys, "protocol", "preview", "none", "--out", str(tmp_path / "g.png"),
                       "--seed", seed)
    assert code == 2
    assert f"--seed: a seed must be an integer from 0 to 4294967295 (2**32 - 1), not {seed}" \
        in err


def test_preview_largest_seed_works(tmp_path: Path, capsys) -> None:
    code, out, _ = run(capsys, "protocol", "preview", "none", "--out", str(tmp_path / "g.png"),
                       "--n", "1", "--seed", str(2**32 - 1))
    assert code == 0 and "wrote" in out


@pytest.mark.parametrize("shape", [(3, 0, 0), (0, 5), (0, 10, 10)])
def test_preview_of_an_empty_image_is_a_clear_error(tmp_path: Path, capsys, shape) -> None:
    import numpy as np

    np.save(tmp_path / "empty.npy", np.zeros(shape, dtype=np.float32))
    code, _, err = run(capsys, "protocol", "preview", "none", "--out", str(tmp_path / "g.png"),
                       "--input", str(tmp_path / "empty.npy"))
    assert code == 2 and f"the image is empty: shape {shape}" in err
    assert "at least one channel of at least 1×1 pixels" in err
    assert not (tmp_path / "g.png").exists()


def test_preview_of_nan_input_is_one_line(tmp_path: Path, capsys) -> None:
    import numpy as np

    a = np.ones((3, 8, 8), dtype=np.float32)
    a[0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", a)
    code, _, err = run(capsys, "protocol", "preview", "none", "--out", str(tmp_path / "g.png"),
                       "--input", str(tmp_path / "nan.npy"))
    assert code == 2 and "holds 1 NaN pixel value" in err and "Traceback" not in err
    assert not (tmp_path / "g.png").exists()


def test_preview_of_int64_npy_is_not_black(tmp_path: Path, capsys) -> None:
    import matplotlib.image as mpimg
    import numpy as np

    a = (np.random.default_rng(0).random((1, 16, 16)) * 4095).astype(np.int64)
    np.save(tmp_path / "i.npy", a)
    out = tmp_path / "g.png"
    code, _, _ = run(capsys, "protocol", "preview", "none", "--out", str(out),
                     "--input", str(tmp_path / "i.npy"), "--n", "1")
    assert code == 0
    # black panels on the white page average about 0.49, the scaled data about 0.75
    assert float(mpimg.imread(out)[..., :3].mean()) > 0.6


def test_preview_never_writes_over_its_input(tmp_path: Path, capsys) -> None:
    import matplotlib.image as mpimg
    import numpy as np

    image = tmp_path / "cells.png"
    mpimg.imsave(image, np.random.default_rng(0).random((16, 16, 3)))
    before = image.read_bytes()
    code, _, err = run(capsys, "protocol", "preview", "none", "--out", str(image),
                       "--input", str(image))
    assert code == 2 and "is the --input image" in err
    assert image.read_bytes() == before


def test_preview_checks_arguments_before_reading_images(tmp_path: Path, capsys,
                                                        monkeypatch) -> None:
    import bioaug.augment.preview as preview

    def boom(*args, **kwargs):
        raise AssertionError("read the images before checking the arguments")

    monkeypatch.setattr(preview, "load_preview_input", boom)
    for args, message in [(["--n", "65"], "--n must be between 1 and 64"),
                          (["--out", str(tmp_path / "x.jpg")], "--out must be a .png"),
                          (["--input", str(tmp_path / "nowhere.npy")], "no such file"),
                          (["--out", str(tmp_path / "f" / "x.png")], None)]:
        argv = ["protocol", "preview", "none", "--out", str(tmp_path / "g.png"), *args]
        if message is None:  # a missing folder is created; file in place of a folder is not
            (tmp_path / "f").write_text("a file")
            message = "cannot write --out"
        code, _, err = run(capsys, *argv)
        assert code == 2 and message in err, err


def test_schema_and_preview_never_write_over_files_they_did_not_make(tmp_path: Path,
                                                                      capsys) -> None:
    header = tmp_path / "header.json"
    header.write_text('{"shape": [1, 1, 4, 4]}')
    code, _, err = run(capsys, "protocol", "schema", "--out", str(header))
    assert code != 0 and "not" in err and str(header) in err
    assert header.read_text() == '{"shape": [1, 1, 4, 4]}'

    picture = tmp_path / "someone-else.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n not ours")
    code, _, err = run(capsys, "protocol", "preview", "none", "--out", str(picture))
    assert code != 0 and str(picture) in err
    assert picture.read_bytes() == b"\x89PNG\r\n\x1a\n not ours"

    # a preview bioaug wrote itself is replaced
    ours = tmp_path / "ours.png"
    assert run(capsys, "protocol", "preview", "none", "--out", str(ours))[0] == 0
    first = ours.stat().st_mtime_ns
    assert run(capsys, "protocol", "preview", "none", "--out", str(ours), "--seed", "3")[0] == 0
    assert ours.stat().st_mtime_ns >= first
