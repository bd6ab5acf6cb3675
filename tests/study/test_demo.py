"""The demo end to end at the hidden ``--tiny`` size (CI runs the real ``make demo-quick``)."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from bioaug.cli import main
from bioaug.study.demo import PLANS, plan_for


def test_plans_fit_their_budgets_on_paper():
    quick, full, gpu = PLANS["quick"], PLANS["full"], PLANS["gpu"]
    assert quick.width < full.width < gpu.width == 1.0
    assert quick.epochs < full.epochs < gpu.epochs
    assert gpu.view_crop == gpu.crop_size == 96  # the paper's crops
    assert plan_for("quick", "cpu").device == "cpu"
    assert plan_for("full", "cpu").name == "full"


@pytest.mark.slow
def test_tiny_demo_runs_resumes_and_writes_its_table(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--tiny", "--out", str(out), "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "Stage timings:" in captured.out
    assert re.search(r"train bbbc021-expert\s+\d+\.\d+s", captured.out)
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["embedding"]) == [
        "bbbc021-expert", "moco-v2-default",
        "fused (bbbc021-expert + moco-v2-default)", "raw pixels"]
    assert summary[["leiden_ami", "kmeans_ami", "linear_accuracy"]].notna().all().all()
    assert summary["nsc"].between(0, 1).all()
    md = (out / "summary.md").read_text()
    assert "| embedding | Leiden AMI | k-means AMI | NSC | NSCB | linear accuracy |" in md
    for pic in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (out / pic).is_file(), pic
    ckpt = out / "tiny" / "seed-0" / "runs" / "bbbc021-expert" / "checkpoint.pt"
    stamp = ckpt.stat().st_mtime_ns

    assert main(["demo", "--tiny", "--out", str(out), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert err.count("done already, skipped") == 10  # every stage
    assert ckpt.stat().st_mtime_ns == stamp
    assert pd.read_csv(out / "summary.csv").equals(summary)


def test_demo_refuses_a_folder_made_with_other_sizes(tmp_path, capsys):
    import json

    (tmp_path / "tiny").mkdir()
    plan = PLANS["tiny"].to_dict()
    plan["epochs"] = 99
    (tmp_path / "tiny" / "plan.json").write_text(json.dumps(plan))
    assert main(["demo", "--tiny", "--out", str(tmp_path), "--device", "cpu"]) == 2
    assert "was made with other demo sizes: epochs: 99 → 1" in capsys.readouterr().err
