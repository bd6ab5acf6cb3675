"""The protocol comparison: options checked up front, one metric naming, summaries."""

from __future__ import annotations

import pandas as pd
import pytest

from bioaug.errors import BioaugError, ConfigError
from bioaug.evaluate.metrics import METRICS
from bioaug.study import compare, stages


def test_bad_training_option_fails_before_any_stage(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("a stage ran before the options were checked")
    monkeypatch.setattr(stages, "train_stage", boom)
    with pytest.raises(ConfigError, match="epochs"):
        compare.compare_protocols(tmp_path / "store", ["none"], tmp_path / "out",
                                  train={"epochs": -1})
    with pytest.raises(BioaugError, match="not compared"):
        compare.compare_protocols(tmp_path / "store", ["none"], tmp_path / "out",
                                  fuse=[["none", "other"]])
    assert not (tmp_path / "out").exists()


def test_rows_use_the_metric_registry_and_summaries_average_seeds():
    report = {"clustering": {"leiden": {"ami": 0.5}, "kmeans": {"ami": 0.25}},
              "linear": {"accuracy": 0.75}, "profiling": {"nsc": {"accuracy": 0.5}}}
    row = compare.metrics_row(report)
    assert list(row) == list(METRICS)
    assert row["leiden_ami"] == 0.5 and row["nsc"] == 0.5 and row["nscb"] is None
    table = pd.DataFrame([{"embedding": "a", "label": "moa", "seed": s, **row,
                           "leiden_ami": 0.5 + s / 10} for s in (0, 1)])
    summary = compare.summarize(table)
    assert summary.loc[0, "leiden_ami_mean"] == pytest.approx(0.55)
    assert "nscb_mean" not in summary.columns  # absent everywhere: no column
    assert "leiden_ami | " not in compare.format_summary(summary, ["leiden_ami"])
