"""The demo end to end at the hidden ``--tiny`` size (CI runs the real ``make demo-quick``)."""

from __future__ import annotations

import json
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
    from bioaug.evaluate.metrics import metric_title

    out = tmp_path / "demo"
    assert main(["demo", "--tiny", "--out", str(out), "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "Stage timings:" in captured.out
    assert re.search(r"train bbbc021-expert\s+\d+\.\d+s", captured.out)
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["embedding"]) == [
        "bbbc021-expert", "moco-v2-default", "fused bbbc021-expert+moco-v2-default",
        "raw pixels"]
    assert summary[["leiden_ami", "kmeans_ami", "linear_accuracy"]].notna().all().all()
    assert summary["nsc"].between(0, 1).all()
    assert summary["nsc_corrected"].between(0, 1).all()  # rows after correction
    md = (out / "summary.md").read_text()
    header = "| embedding | " + " | ".join(
        metric_title(c) for c in summary.columns if c not in ("embedding", "report")) + " |"
    assert header.startswith("| embedding | Leiden AMI | k-means AMI | NSC | NSCB |")
    assert header in md and "NSC (corrected)" in header
    for pic in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (out / pic).is_file(), pic
    for link in re.findall(r"\]\(([^)]+report\.md)\)", md):
        assert (out / link).is_file(), link
    ckpt = out / "tiny" / "seed-0" / "bbbc021-expert" / "seed-0" / "run" / "checkpoint.pt"
    stamp = ckpt.stat().st_mtime_ns
    # the demo passes no optimiser settings: the method's recipe decides them
    cfg = json.loads((out / "tiny" / "plan.json").read_text())
    assert "lr" not in cfg

    assert main(["demo", "--tiny", "--out", str(out), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert err.count("done already, skipped") == 12  # every stage
    assert ckpt.stat().st_mtime_ns == stamp
    assert pd.read_csv(out / "summary.csv").equals(summary)


def test_demo_negative_seed_fails_before_any_work(tmp_path, capsys):
    assert main(["demo", "--tiny", "--out", str(tmp_path / "d"), "--seed", "-5",
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "--seed must be" in err and "-5" in err and "Traceback" not in err
    assert not (tmp_path / "d").exists()


def test_demo_train_settings_carry_no_optimiser_recipe():
    from bioaug.study.demo import train_settings
    from bioaug.train.config import RECIPE_FIELDS

    assert not set(train_settings(PLANS["quick"])) & set(RECIPE_FIELDS)


def test_demo_refuses_a_folder_made_with_other_sizes(tmp_path, capsys):
    import json

    (tmp_path / "tiny").mkdir()
    plan = PLANS["tiny"].to_dict()
    plan["epochs"] = 99
    (tmp_path / "tiny" / "plan.json").write_text(json.dumps(plan))
    assert main(["demo", "--tiny", "--out", str(tmp_path), "--device", "cpu"]) == 2
    assert "was made with other demo sizes: epochs: 99 → 1" in capsys.readouterr().err
