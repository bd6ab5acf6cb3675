"""A two-point sweep on a tiny twin, end to end: resume after a kill, gather, report."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from bioaug.cli import main

AXIS = "views[*].steps.stain_jitter.p"


def sweep_file(tmp_path: Path, store: Path) -> Path:
    cfg = {"bioaug_sweep": 1, "name": "tiny stain-jitter p", "protocol": "bbbc021-expert",
           "data": str(store), "label": "moa",
           "train": {"epochs": 1, "batch_size": 32, "width": 0.0625, "crop": 32,
                     "num_workers": 0, "tensorboard": False},
           "embed": {"batch_size": 128}, "evaluate": {"plot": False},
           "axes": {AXIS: [0.0, 1.0]}, "seeds": [0], "device": "cpu"}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(f.relative_to(folder)): (f.stat().st_ino, f.stat().st_mtime_ns)
            for f in sorted(folder.rglob("*")) if f.is_file()}


@pytest.mark.slow
def test_two_point_sweep_resumes_and_reports(tiny_store, tmp_path, monkeypatch, capsys):
    import bioaug.train.loop as loop

    calls: list[str] = []
    real_train = loop.train

    def counting_train(config, **kw):
        calls.append(str(config.out))
        return real_train(config, **kw)

    monkeypatch.setattr(loop, "train", counting_train)
    cfg, out = sweep_file(tmp_path, tiny_store), tmp_path / "sweep"

    # one job of an array runs point 0, then the sweep is "killed"
    assert main(["sweep", "--config", str(cfg), "--out", str(out), "--point", "0"]) == 0
    p0 = out / "points" / "0"
    for name in ("protocol.yaml", "run/checkpoint.pt", "cells.h5ad", "eval/report.json", "done.json"):
        assert (p0 / name).is_file(), name
    assert not (out / "points" / "1" / "done.json").exists()
    assert not (out / "results.csv").exists()
    assert "stain_jitter:" in (p0 / "protocol.yaml").read_text()
    before = snapshot(p0)
    assert len(calls) == 1

    # the rerun skips point 0 (no file rewritten, one more training only) and gathers
    assert main(["sweep", "--config", str(cfg), "--out", str(out)]) == 0
    assert len(calls) == 2 and calls[1].endswith("points/1/run")
    assert snapshot(p0) == before
    assert "all 2 points done" in capsys.readouterr().out

    results = pd.read_csv(out / "results.csv")
    classes = json.loads((p0 / "eval" / "report.json").read_text())["linear"]["per_class"]
    assert len(results) == 2 * len(classes)
    assert set(results[AXIS]) == {0.0, 1.0}
    assert {"point", "seed", "linear_accuracy", "leiden_ami", "nsc", "class",
            "class_accuracy"} <= set(results.columns)

    assert main(["sweep", "report", str(out)]) == 0
    report = out / "report"
    per_class = pd.read_csv(report / "per_class.csv")
    assert set(per_class["class"]) == set(classes) and len(per_class) == 2 * len(classes)
    matrix = pd.read_csv(report / "bias_matrix.csv", index_col=0)
    assert matrix.shape == (len(classes), len(classes))
    for png in ("bias_heatmap.png", "per_class_vs_param.png", "overall_vs_per_class.png"):
        assert (report / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (report / "report.md").read_text()
    assert "Inter-class bias matrix" in md and "![bias heatmap](bias_heatmap.png)" in md

    assert main(["sweep", "status", str(out)]) == 0
    assert "2/2 points done" in capsys.readouterr().out
