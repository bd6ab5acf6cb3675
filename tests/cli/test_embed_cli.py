from __future__ import annotations

import anndata as ad
import pytest

from bioaug.cli import main
from tests.embed.conftest import make_store, train_tiny


@pytest.fixture(scope="module")
def store_and_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("embed_cli")
    store = make_store(root / "store")
    return store, train_tiny(store, root / "run")


def test_embed_writes_cells_and_profiles(store_and_run, tmp_path, capsys):
    store, run = store_and_run
    out = tmp_path / "cells.h5ad"
    code = main(["embed", "--checkpoint", str(run), "--data", str(store), "--out", str(out),
                 "--aggregate", "well", "--aggregate", "treatment", "--batch-size", "16",
                 "--device", "cpu"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "embedded 48 items" in printed and "cells.treatment.h5ad" in printed
    assert ad.read_h5ad(out).n_obs == 48
    assert not (tmp_path / ".cells.h5ad.partial").exists()  # resumable work removed when done
    assert ad.read_h5ad(tmp_path / "cells.well.h5ad").n_obs == 12
    treatments = ad.read_h5ad(tmp_path / "cells.treatment.h5ad")
    assert treatments.n_obs == 6 and "X_bioaug" in treatments.obsm


def test_embed_raw(store_and_run, tmp_path):
    store, _ = store_and_run
    assert main(["embed", "--raw", "--data", str(store), "--out", str(tmp_path / "r.h5ad")]) == 0
    assert ad.read_h5ad(tmp_path / "r.h5ad").obsm["X_bioaug"].shape == (48, 768)


def test_embed_errors_exit_2_with_message(store_and_run, tmp_path, capsys):
    store, _ = store_and_run
    code = main(["embed", "--checkpoint", str(tmp_path / "nope"), "--data", str(store),
                 "--out", str(tmp_path / "x.h5ad")])
    err = capsys.readouterr().err
    assert code == 2 and "no checkpoint" in err and "Traceback" not in err
    code = main(["embed", "--raw", "--data", str(tmp_path / "nostore"),
                 "--out", str(tmp_path / "x.h5ad")])
    assert code == 2 and "no store at" in capsys.readouterr().err
    assert not (tmp_path / "x.h5ad").exists()


def test_embed_out_is_a_directory_is_a_clear_error(store_and_run, tmp_path, capsys):
    store, _ = store_and_run
    code = main(["embed", "--raw", "--data", str(store), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "is a directory" in err and "Traceback" not in err


def test_embed_weights_without_backbone_is_an_error(store_and_run, tmp_path, capsys):
    store, run = store_and_run
    code = main(["embed", "--checkpoint", str(run), "--weights", str(tmp_path / "w.pth"),
                 "--data", str(store), "--out", str(tmp_path / "x.h5ad")])
    err = capsys.readouterr().err
    assert code == 2 and "--weights is for a named --backbone" in err
    assert not (tmp_path / "x.h5ad").exists()
