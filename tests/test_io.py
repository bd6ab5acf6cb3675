from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from bioaug.errors import BioaugError, did_you_mean, unknown_choice
from bioaug.io import (
    atomic_open,
    atomic_write_text,
    check_output,
    describe_os_error,
    sha256_file,
)


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


# -- output checks -----------------------------------------------------------------------
def _bioaug_h5ad(path: Path) -> Path:
    import anndata as ad
    import numpy as np

    a = ad.AnnData(obs=__import__("pandas").DataFrame(index=["0", "1"]))
    a.obsm["X_bioaug"] = np.zeros((2, 3), dtype=np.float32)
    a.uns["bioaug"] = {"kind": "raw"}
    a.write_h5ad(path)
    return path


def test_output_may_not_be_an_input(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "obs.csv").write_text("a\n1\n")
    ckpt = tmp_path / "checkpoint.pt"
    ckpt.write_bytes(b"weights")
    for out, relation in ((ckpt, "is the input"), (store / "obs.csv", "is part of the input"),
                          (store, "is the input"), (tmp_path, "contains the input")):
        with pytest.raises(BioaugError, match=relation):
            check_output(out, "h5ad" if out.suffix else "run", inputs=[store, ckpt, None])
    assert ckpt.read_bytes() == b"weights" and (store / "obs.csv").read_text() == "a\n1\n"
    # a new file inside an input folder writes over nothing
    assert check_output(store / "cells.h5ad", "h5ad", inputs=[store]) == store / "cells.h5ad"


def test_output_of_another_kind_is_never_replaced(tmp_path: Path) -> None:
    notes = tmp_path / "notes.h5ad"
    notes.write_text("my notes")
    with pytest.raises(BioaugError, match="bioaug did not write"):
        check_output(notes, "h5ad", replace=True)
    full = tmp_path / "full"
    full.mkdir()
    (full / "thesis.tex").write_text("x")
    with pytest.raises(BioaugError, match=r"bioaug did not write .*not a training run"):
        check_output(full, "run", replace=True)
    with pytest.raises(BioaugError, match=r"is a file, not a directory \(a crop store"):
        check_output(notes, "store", replace=True)
    with pytest.raises(BioaugError, match="is a directory; give a file name"):
        check_output(full, "h5ad")


def test_own_kind_is_replaced_only_when_asked(tmp_path: Path) -> None:
    cells = _bioaug_h5ad(tmp_path / "cells.h5ad")
    with pytest.raises(BioaugError, match=r"already holds a \.h5ad written by bioaug") as info:
        check_output(cells, "h5ad")
    assert "--overwrite" in str(info.value)
    assert check_output(cells, "h5ad", replace=True) == cells
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("seed: 0\n")  # someone else's project folder …
    with pytest.raises(BioaugError, match="bioaug did not write"):
        check_output(run, "run", replace=True)
    (run / "protocol.yaml").write_text("bioaug_protocol: 1\n")  # … a run before its checkpoint
    with pytest.raises(BioaugError, match="pass --resume"):
        check_output(run, "run", replace_flag="--resume")
    assert check_output(run, "run", replace=True) == run
    empty = tmp_path / "empty"
    empty.mkdir()
    assert check_output(empty, "store") == empty  # an empty folder is free to use


def test_unwritable_output_fails_before_work(tmp_path: Path, monkeypatch) -> None:
    real_open = os.open

    def read_only(path, flags, mode=0o777):
        if flags & os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(BioaugError, match=r"cannot write --out .*Read-only file system") as info:
        check_output(tmp_path / "new" / "cells.h5ad", "h5ad")
    assert "read-only" in str(info.value.hint)
    assert not (tmp_path / "new").exists()  # the check creates nothing


def test_written_files_respect_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        os.umask(0o077)
        atomic_write_text(tmp_path / "b.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o600


def test_torch_style_disk_full_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    import shutil

    target = tmp_path / "ckpt.pt"
    atomic_write_text(target, "good")
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=1024))
    with pytest.raises(BioaugError, match="disk full"), atomic_open(target, "w"):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos "
                           "100288 vs 100184")
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_os_errors_become_one_line(tmp_path: Path) -> None:
    err = describe_os_error(PermissionError(errno.EACCES, "Permission denied",
                                            str(tmp_path / "x")))
    assert err.format().splitlines()[0] == f"{tmp_path / 'x'}: Permission denied"
    full = describe_os_error(OSError(errno.ENOSPC, "No space left on device", "/data/o"))
    assert "disk full" in full.message and "free some space" in str(full.hint)
    nameless = describe_os_error(OSError(errno.ENOSPC, "No space left on device"),
                                 context="while writing --out crops")
    assert nameless.format().splitlines()[0] == ("disk full (No space left on device) while "
                                                 "writing --out crops")


def test_cli_prints_os_errors_without_traceback(tmp_path: Path, monkeypatch, capsys) -> None:
    import argparse

    from bioaug import cli

    def failing(args: argparse.Namespace) -> int:
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "store"))

    parser = argparse.ArgumentParser(prog="bioaug")
    parser.set_defaults(func=failing)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    assert cli.main([]) == cli.OS_ERROR_EXIT
    err = capsys.readouterr().err
    assert err.startswith(f"bioaug: error: {tmp_path / 'store'}: Permission denied")
    assert "Traceback" not in err


def test_pictures_and_schemas_are_recognised(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bioaug.io import PNG_METADATA

    fig = plt.figure()
    fig.savefig(tmp_path / "ours.png", metadata=PNG_METADATA)
    fig.savefig(tmp_path / "theirs.png")
    plt.close(fig)
    assert check_output(tmp_path / "ours.png", "png", replace=True)
    with pytest.raises(BioaugError, match="bioaug did not write"):
        check_output(tmp_path / "theirs.png", "png", replace=True)
    (tmp_path / "schema.json").write_text('{"$id": "https://bioaug.dev/schema/p.json"}')
    (tmp_path / "header.json").write_text('{"format": "bioaug-store", "shape": [1]}')
    assert check_output(tmp_path / "schema.json", "schema", replace=True)
    with pytest.raises(BioaugError, match="bioaug did not write"):
        check_output(tmp_path / "header.json", "schema", replace=True)


def test_too_little_space_is_an_error_before_writing(tmp_path: Path, monkeypatch) -> None:
    import shutil

    from bioaug.io import ensure_free_space, preallocate

    ensure_free_space(tmp_path / "not" / "yet", 1, "a tiny file")  # the nearest parent counts
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=10 << 10))
    with pytest.raises(BioaugError, match=r"disk full: writing x needs about 1\.0 MiB but .* "
                                          r"has 10\.0 KiB free"):
        ensure_free_space(tmp_path, 1 << 20, "writing x")
    f = tmp_path / "m.npy"
    f.write_bytes(b"\0" * 4096)
    preallocate(f)
    assert f.stat().st_size == 4096


def test_exported_tables_are_recognised(tmp_path: Path) -> None:
    (tmp_path / "profiles.csv").write_text("Metadata_plate,f0\nP1,0.5\n")
    (tmp_path / "obs.csv").write_text("plate,well\nP1,A01\n")
    assert check_output(tmp_path / "profiles.csv", "table", replace=True)
    with pytest.raises(BioaugError, match="bioaug did not write"):
        check_output(tmp_path / "obs.csv", "table", replace=True)
