from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd

from bioaug.cli import main


def write_blobs(path, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), 30)
    x = rng.normal(size=(3, 8))[y] * 8 + rng.normal(size=(90, 8))
    a = ad.AnnData(obs=pd.DataFrame({"label": [f"c{i}" for i in y]},
                                    index=[str(i) for i in range(90)]))
    a.obsm["X_bioaug"] = x.astype(np.float32)
    a.write_h5ad(path)
    return path


def test_evaluate_prints_summary_and_writes_report(tmp_path, capsys):
    path = write_blobs(tmp_path / "cells.h5ad")
    code = main(["evaluate", str(path), "--label", "label", "--out", str(tmp_path / "rep"),
                 "--no-plots", "--seed", "3"])
    assert code == 0
    out = capsys.readouterr().out
    assert "Leiden AMI" in out and "90 items, 3 classes" in out
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert report["seed"] == 3 and report["clustering"]["kmeans"]["ami"] > 0.95
    assert (tmp_path / "rep" / "report.md").is_file()


def test_evaluate_bad_label_and_rep_exit_2(tmp_path, capsys):
    path = write_blobs(tmp_path / "cells.h5ad")
    assert main(["evaluate", str(path), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert "label column 'moa' not found" in err and "obs columns: label" in err
    assert main(["evaluate", str(path), "--label", "label", "--rep", "X_pca",
                 "--out", str(tmp_path / "rep")]) == 2
    assert "obsm holds: X_bioaug" in capsys.readouterr().err


def test_evaluate_out_is_a_file_exit_2(tmp_path, capsys):
    path = write_blobs(tmp_path / "cells.h5ad")
    (tmp_path / "taken").write_text("x")
    assert main(["evaluate", str(path), "--label", "label", "--out", str(tmp_path / "taken"),
                 "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert "is a file, not a directory" in err and "Traceback" not in err


def test_evaluate_exclude_of_a_missing_label_is_an_error_before_work(tmp_path, capsys):
    path = write_blobs(tmp_path / "cells.h5ad")
    assert main(["evaluate", str(path), "--label", "label", "--exclude", "c7",
                 "--out", str(tmp_path / "rep"), "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert "--exclude 'c7': no item has label = 'c7'" in err and "values: c0, c1, c2" in err
    assert not (tmp_path / "rep" / "report.json").exists()


def test_evaluate_scores_every_layer_of_a_layer_all_embedding(tmp_path, capsys):
    path = tmp_path / "cells.h5ad"
    write_blobs(path)
    a = ad.read_h5ad(path)
    a.obsm["X_bioaug_stage1"] = np.random.default_rng(1).normal(size=(90, 4)).astype(np.float32)
    a.obsm["X_bioaug_stage2"] = a.obsm["X_bioaug"][:, :5]
    a.uns["bioaug"] = {"layer": "backbone", "layers": ["stage1", "stage2"]}
    a.write_h5ad(path)
    assert main(["evaluate", str(path), "--label", "label", "--out", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    table = out[out.index("per layer:"):].splitlines()
    assert table[1].split()[:3] == ["layer", "Leiden", "AMI"]
    assert [line.split()[0] for line in table[2:5]] == ["backbone", "stage1", "stage2"]
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert list(report["layers"]["scores"]) == ["backbone", "stage1", "stage2"]
    assert report["figures"]["layers"] == "layers.png"
    assert (tmp_path / "rep" / "layers.png").is_file()


def test_evaluate_seed_beyond_32_bits_is_an_error_not_a_traceback(tmp_path, capsys):
    path = write_blobs(tmp_path / "cells.h5ad")
    assert main(["evaluate", str(path), "--label", "label", "--out", str(tmp_path / "rep"),
                 "--no-plots", "--seed", str(2**32)]) == 2
    err = capsys.readouterr().err
    assert "seed: a seed must be an integer from 0 to 4294967295" in err
    assert "Traceback" not in err and not (tmp_path / "rep").exists()


def test_evaluate_help_says_the_null_is_drawn_in_chunks(capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "drawn in chunks, so memory stays bounded at any N" in text


def test_evaluate_says_how_many_items_have_no_label(tmp_path, capsys):
    path = write_blobs(tmp_path / "cells.h5ad")
    a = ad.read_h5ad(path)
    a.obs["label"] = a.obs["label"].astype(object).where(np.arange(90) >= 4)  # 4 unlabelled
    a.obs["label"] = a.obs["label"].astype("category")
    a.write_h5ad(path)
    assert main(["evaluate", str(path), "--label", "label", "--out", str(tmp_path / "rep"),
                 "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "86 items, 3 classes" in out and "None" not in out
    assert "4 item(s) without a 'label' left out of the label-based metrics" in out
