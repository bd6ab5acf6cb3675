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
    assert "--seed: a seed must be" in err and "-5" in err and "Traceback" not in err
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


def _frame(values: dict[str, tuple[float, float]]) -> pd.DataFrame:
    """A seed's summary frame: embedding → (leiden_ami, nsc)."""
    return pd.DataFrame([{"embedding": e, "leiden_ami": a, "nsc": n, "report": f"{e}/r"}
                         for e, (a, n) in values.items()])


def test_seed_summary_means_sds_and_claims_are_known_answers():
    from bioaug.study.demo import PLANS, seed_summary, seed_summary_markdown

    frames = {
        0: _frame({"bbbc021-expert": (0.30, 0.5), "moco-v2-default": (0.10, 0.4),
                   "raw pixels": (0.05, 0.6)}),
        1: _frame({"bbbc021-expert": (0.20, 0.5), "moco-v2-default": (0.12, 0.4),
                   "raw pixels": (0.05, 0.6)}),
        2: _frame({"bbbc021-expert": (0.25, 0.5), "moco-v2-default": (0.14, 0.4),
                   "raw pixels": (0.05, 0.6)}),
    }
    s = seed_summary(frames).set_index("embedding")
    assert s.loc["bbbc021-expert", "n_seeds"] == 3
    assert s.loc["bbbc021-expert", "leiden_ami_mean"] == pytest.approx(0.25)
    assert s.loc["bbbc021-expert", "leiden_ami_sd"] == pytest.approx(0.05)  # sample sd
    assert s.loc["moco-v2-default", "leiden_ami_sd"] == pytest.approx(0.02)
    assert s.loc["raw pixels", "nsc_sd"] == 0.0
    md = seed_summary_markdown(s.reset_index(), PLANS["tiny"], [0, 1, 2])
    assert "| bbbc021-expert | 0.250 ± 0.050 | 0.500 ± 0.000 |" in md
    # 0.25 − 0.12 = 0.13 > the larger sd 0.05; NSC: 0.5 < 0.6
    assert "| expert beats default on Leiden AMI | +0.130 | 0.050 | yes, by more than one sd |" \
        in md
    assert "| expert beats raw pixels on NSC | -0.100 | 0.000 | no |" in md
    assert "k-means AMI" not in md.split("## Claims checked")[1]  # not measured: not claimed


def test_seed_summary_says_within_one_sd_when_the_gap_is_small():
    from bioaug.study.demo import PLANS, seed_summary, seed_summary_markdown

    frames = {s: _frame({"bbbc021-expert": (a, 0.5), "moco-v2-default": (0.2, 0.5)})
              for s, a in enumerate((0.1, 0.4, 0.25))}
    md = seed_summary_markdown(seed_summary(frames), PLANS["tiny"], [0, 1, 2])
    assert "| expert beats default on Leiden AMI | +0.050 | 0.150 | higher, within one sd |" \
        in md


def test_demo_refuses_a_repeated_seed(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["demo", "--tiny", "--out", str(out), "--seeds", "1", "1"]) == 2
    err = capsys.readouterr().err
    assert "each seed once" in err and "Traceback" not in err
    assert not out.exists()


def test_demo_with_several_seeds_runs_each_and_writes_the_seed_summary(tmp_path, monkeypatch,
                                                                       capsys):
    import bioaug.study.demo as demo

    calls = []

    def fake_run_demo(out, plan, *, seed):
        calls.append((plan.name, seed))
        return _frame({"bbbc021-expert": (0.2 + seed / 10, 0.5),
                       "moco-v2-default": (0.1, 0.4), "raw pixels": (0.05, 0.6)})

    monkeypatch.setattr(demo, "run_demo", fake_run_demo)
    out = tmp_path / "d"
    assert main(["demo", "--tiny", "--out", str(out), "--seeds", "0", "2"]) == 0
    assert calls == [("tiny", 0), ("tiny", 2)]
    table = pd.read_csv(out / "tiny" / "summary_seeds.csv").set_index("embedding")
    assert table.loc["bbbc021-expert", "leiden_ami_mean"] == pytest.approx(0.3)
    md = (out / "summary_seeds.md").read_text()
    assert md == (out / "tiny" / "summary_seeds.md").read_text()
    assert "seeds 0, 2" in md and "expert beats default on Leiden AMI" in md
    assert "Over seeds 0, 2" in capsys.readouterr().out
