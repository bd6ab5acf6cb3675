from __future__ import annotations

import errno
from pathlib import Path

import pytest

from bioaug.errors import BioaugError, did_you_mean, unknown_choice
from bioaug.io import atomic_open, atomic_write_text, sha256_file


def test_atomic_write_replaces_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    atomic_write_text(target, "first")
    with pytest.raises(RuntimeError), atomic_open(target, "w") as fh:
        fh.write("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # no temp file left


def test_disk_full_is_a_clear_error_and_keeps_old_file(tmp_path: Path) -> None:
    target = tmp_path / "ckpt.pt"
    atomic_write_text(target, "good")
    with pytest.raises(BioaugError, match="disk full"), atomic_open(target, "w"):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert target.read_text() == "good"


def test_sha256_file_known_answer(tmp_path: Path) -> None:
    f = tmp_path / "abc"
    f.write_bytes(b"abc")
    assert sha256_file(f) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_did_you_mean() -> None:
    assert did_you_mean("rotat", ["rotate", "flip"]) == " (did you mean 'rotate'?)"
    assert did_you_mean("zzz", ["rotate", "flip"]) == ""
    assert "known: flip, rotate" in unknown_choice("op", "zzz", ["rotate", "flip"])


def test_writing_over_a_directory_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(BioaugError, match="is a directory"):
        atomic_write_text(tmp_path / "d", "x")
    assert (tmp_path / "d").is_dir()
