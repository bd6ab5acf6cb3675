"""The metric registry: one name per metric, read from reports or report.json dicts."""

from __future__ import annotations

import pytest

from bioaug.errors import ConfigError
from bioaug.evaluate.metrics import METRICS, metric_names, metric_title, metric_values

REPORT = {"clustering": {"leiden": {"ami": 0.4}, "silhouette": {"value": 0.2}},
          "linear": {"accuracy": 0.7},
          "profiling": {"nsc": {"accuracy": 0.5, "map": 0.6}, "nscb": None,
                        "moa": {"map": 0.3, "fraction_retrieved": 0.25}},
          "profiling_corrected": {"nsc": {"accuracy": 0.9}, "nscb": {"accuracy": 0.8}}}


def test_values_by_registered_name_missing_ones_are_none():
    v = metric_values(REPORT)
    assert v["leiden_ami"] == 0.4 and v["silhouette"] == 0.2 and v["nsc_map"] == 0.6
    assert v["nscb"] is None and v["kmeans_ami"] is None
    assert v["moa_retrieved"] == 0.25
    assert v["nsc_corrected"] == 0.9 and v["nscb_corrected"] == 0.8
    assert list(v)[:len(METRICS)] == list(METRICS)


def test_names_titles_and_unknown_names():
    assert "nscb_corrected" in metric_names(corrected=True)
    assert "nscb_corrected" not in metric_names()
    assert metric_title("nscb_corrected") == "NSCB (corrected)"
    assert len({m.title for m in METRICS.values()}) == len(METRICS)
    with pytest.raises(ConfigError, match=r"unknown metric 'ami_leiden'"):
        metric_values(REPORT, ["ami_leiden"])
