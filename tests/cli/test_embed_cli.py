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
    assert "at layer backbone (default of backbone vgg13_bn)" in printed
    assert ad.read_h5ad(out).n_obs == 48
    assert not (tmp_path / ".cells.h5ad.partial").exists()  # resumable work removed when done
    assert ad.read_h5ad(tmp_path / "cells.well.h5ad").n_obs == 12
    treatments = ad.read_h5ad(tmp_path / "cells.treatment.h5ad")
    assert treatments.n_obs == 6 and "X_bioaug" in treatments.obsm


def test_embed_explicit_layer_is_printed_and_recorded(store_and_run, tmp_path, capsys):
    store, run = store_and_run
    out = tmp_path / "proj.h5ad"
    assert main(["embed", "--checkpoint", str(run), "--data", str(store), "--out", str(out),
                 "--layer", "projection", "--device", "cpu"]) == 0
    assert "at layer projection (given)" in capsys.readouterr().out
    prov = ad.read_h5ad(out).uns["bioaug"]
    assert (prov["layer"], prov["layer_source"]) == ("projection", "given")


def test_embed_help_lists_each_backbones_default_layer(capsys):
    from bioaug.models import BACKBONES

    with pytest.raises(SystemExit):
        main(["embed", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name, entry in BACKBONES.items():
        assert f"{name} → {entry.embed_layer}" in text
    assert "vgg_mnist → feature_map" in text


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


def test_embed_never_writes_over_its_inputs(store_and_run, tmp_path, capsys):
    store, run = store_and_run
    ckpt = run / "checkpoint.pt"
    before = ckpt.read_bytes(), (store / "obs.csv").read_text()
    for out in (ckpt, store / "obs.csv", store):
        code = main(["embed", "--checkpoint", str(run), "--data", str(store), "--out", str(out),
                     "--overwrite"])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err, err
        assert "input" in err or "directory" in err, err
    assert (ckpt.read_bytes(), (store / "obs.csv").read_text()) == before


def test_embed_replaces_its_own_output_only_when_asked(store_and_run, tmp_path, capsys):
    store, _ = store_and_run
    notes = tmp_path / "notes.h5ad"
    notes.write_text("not an embedding")
    assert main(["embed", "--raw", "--data", str(store), "--out", str(notes),
                 "--overwrite"]) == 2
    assert "bioaug did not write" in capsys.readouterr().err
    assert notes.read_text() == "not an embedding"
    out = tmp_path / "raw.h5ad"
    assert main(["embed", "--raw", "--data", str(store), "--out", str(out)]) == 0
    assert main(["embed", "--raw", "--data", str(store), "--out", str(out)]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert main(["embed", "--raw", "--data", str(store), "--out", str(out), "--overwrite"]) == 0


def test_embed_aggregate_without_wells_fails_up_front(tmp_path, capsys):
    import numpy as np
    import pandas as pd

    from bioaug.data.store import write_store

    store = write_store(tmp_path / "digits", np.zeros((4, 1, 8, 8), dtype=np.uint8),
                        pd.DataFrame({"label": [0, 1, 2, 3]}), channels=["gray"]).path
    out = tmp_path / "d.h5ad"
    code = main(["embed", "--raw", "--data", str(store), "--out", str(out),
                 "--aggregate", "well"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot aggregate per well" in err
    assert not out.exists() and not (tmp_path / ".d.h5ad.partial").exists()


def test_embed_shards_and_merge_equal_one_run(store_and_run, tmp_path, capsys):
    import numpy as np

    store, _ = store_and_run
    full = tmp_path / "full.h5ad"
    assert main(["embed", "--raw", "--data", str(store), "--out", str(full)]) == 0
    parts = [tmp_path / f"cells.{i}.h5ad" for i in range(2)]
    for i, part in enumerate(parts):
        assert main(["embed", "--raw", "--data", str(store), "--shard", f"{i}/2",
                     "--out", str(part)]) == 0
    assert "(shard 1/2)" in capsys.readouterr().out
    merged = tmp_path / "all.h5ad"
    assert main(["embed", "merge", *map(str, parts), "--out", str(merged),
                 "--aggregate", "well"]) == 0
    a, b = ad.read_h5ad(full), ad.read_h5ad(merged)
    assert np.array_equal(a.obsm["X_bioaug"], b.obsm["X_bioaug"])
    assert list(a.obs.index) == list(b.obs.index)
    assert ad.read_h5ad(tmp_path / "all.well.h5ad").n_obs == 12
    for argv, message in (
            (["embed", "merge", str(parts[0]), "--out", str(tmp_path / "x.h5ad")],
             "shards 1/2 are missing"),
            (["embed", "merge", *map(str, parts), "--out", str(parts[0])], "is the input"),
            (["embed", "--raw", "--data", str(store), "--shard", "2/2", "--out",
              str(tmp_path / "y.h5ad")], "--shard 2/2 is out of range"),
            (["embed", "--raw", "--data", str(store), "--shard", "0/2", "--aggregate", "well",
              "--out", str(tmp_path / "y.h5ad")], "wells may span shards")):
        assert main(argv) == 2
        assert message in capsys.readouterr().err


def test_embed_layer_all_writes_every_stage(store_and_run, tmp_path, capsys):
    store, run = store_and_run
    out = tmp_path / "layers.h5ad"
    assert main(["embed", "--checkpoint", str(run), "--data", str(store), "--out", str(out),
                 "--layer", "all", "--device", "cpu", "--aggregate", "well"]) == 0
    printed = capsys.readouterr().out
    assert "at layer backbone (default of backbone vgg13_bn), and layers stage1, stage2, " \
           "stage3, stage4, stage5 in X_bioaug_<layer>" in printed
    cells = ad.read_h5ad(out)
    assert list(cells.uns["bioaug"]["layers"]) == [f"stage{i}" for i in range(1, 6)]
    assert cells.obsm["X_bioaug_stage2"].shape == (48, 16)
    assert "X_bioaug_stage3" in ad.read_h5ad(tmp_path / "layers.well.h5ad").obsm


def test_embed_stage_and_unknown_layer(store_and_run, tmp_path, capsys):
    store, run = store_and_run
    out = tmp_path / "s3.h5ad"
    assert main(["embed", "--checkpoint", str(run), "--data", str(store), "--out", str(out),
                 "--layer", "stage3", "--device", "cpu"]) == 0
    assert ad.read_h5ad(out).obsm["X_bioaug"].shape == (48, 32)
    capsys.readouterr()
    assert main(["embed", "--checkpoint", str(run), "--data", str(store), "--out",
                 str(tmp_path / "bad.h5ad"), "--layer", "block3", "--device", "cpu"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "unknown embedding layer 'block3' for backbone 'vgg13_bn'" in err
    assert "stage1, stage2, stage3, stage4, stage5, or 'all'" in err


def test_embed_help_describes_layer_probing(capsys):
    with pytest.raises(SystemExit):
        main(["embed", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "block1 … block12 (ViT; class token after the block)" in text
    assert "all: the default layer in X_bioaug" in text


def test_embed_and_merge_write_only_h5ad_names(store_and_run, tmp_path, capsys):
    store, _ = store_and_run
    for argv in (["embed", "--raw", "--data", str(store), "--out", str(tmp_path / "x.parquet")],
                 ["embed", "merge", str(tmp_path / "a.h5ad"), "--out",
                  str(tmp_path / "x.parquet")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "x.parquet: an AnnData file is written as HDF5" in err
        assert "must end in .h5ad, not .parquet" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_embed_device_accepts_an_indexed_gpu():
    from bioaug.cli import build_parser

    args = build_parser().parse_args(["embed", "--raw", "--data", "crops", "--out", "c.h5ad",
                                      "--device", "CUDA:1"])
    assert args.device == "cuda:1"


@pytest.mark.parametrize("device", ["gpu", "cuda:", "cuda:-1", "cuda1"])
def test_embed_device_rejects_other_spellings_at_parse_time(device, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["embed", "--raw", "--data", str(tmp_path / "crops"), "--out",
              str(tmp_path / "c.h5ad"), "--device", device])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err
    assert f"argument --device: unknown device '{device}'" in err
    assert "cuda:N (N = 0, 1, … the GPU's index)" in err


@pytest.mark.parametrize(("gpus", "message"), [
    (2, "--device cuda:2 asks for GPU 2 but this machine has 2 CUDA GPUs (cuda:0 … cuda:1)"),
    (0, "--device cuda:2 was asked for but no CUDA GPU is available"),
])
def test_embed_device_the_machine_lacks_fails_before_any_work(gpus, message, tmp_path,
                                                              monkeypatch, capsys):
    import torch

    store = make_store(tmp_path / "store", size=8)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    out = tmp_path / "cells.h5ad"
    code = main(["embed", "--raw", "--data", str(store), "--out", str(out),
                 "--device", "cuda:2"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not out.exists() and not (tmp_path / ".cells.h5ad.partial").exists()
