"""Turning evaluation reports into tidy result rows."""

from __future__ import annotations

import json
import math

import pytest

from bioaug.errors import ConfigError
from bioaug.study.results import gather, point_rows

REPORT = {
    "input": {"n_items": 100, "n_classes": 3},
    "clustering": {"leiden": {"ami": 0.4, "ari": 0.3}, "kmeans": {"ami": 0.5},
                   "silhouette": {"value": 0.1, "n_items": 100}},
    "profiling": None,
    "linear": {"accuracy": 0.7, "n_test": 20, "per_class": {"a": 0.9, "b": 0.5, "c": None},
               "per_class_n_test": {"a": 10, "b": 10, "c": 0}},
}


def test_point_rows_one_per_class():
    rows = point_rows(3, 1, {"views[*].steps.flip.p": 0.5,
                             "views[0].steps.gaussian_blur.sigma": [0.1, 2.0]}, REPORT)
    assert [r["class"] for r in rows] == ["a", "b", "c"]
    r = rows[0]
    assert (r["point"], r["seed"], r["linear_accuracy"], r["leiden_ami"], r["kmeans_ami"],
            r["silhouette"], r["n_items"], r["class_accuracy"], r["class_n_test"]) == \
        (3, 1, 0.7, 0.4, 0.5, 0.1, 100, 0.9, 10)
    assert r["nsc"] is None and r["nscb"] is None  # not BBBC021: left empty, not invented
    assert r["views[0].steps.gaussian_blur.sigma"] == "[0.1, 2.0]"
    assert math.isnan(rows[2]["class_accuracy"])


def test_gather_reads_reports_and_reports_bad_ones(tmp_path):
    good = tmp_path / "r.json"
    good.write_text(json.dumps(REPORT))
    df = gather([(0, 0, {"x": 1}, good), (1, 0, {"x": 2}, good)])
    assert len(df) == 6 and set(df["x"]) == {1, 2}
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ConfigError, match="cannot read the report of point 1"):
        gather([(0, 0, {}, good), (1, 0, {}, bad)])
    (tmp_path / "empty.json").write_text(json.dumps({"linear": {"per_class": {}}}))
    with pytest.raises(ConfigError, match=r"no linear\.per_class"):
        gather([(0, 0, {}, tmp_path / "empty.json")])


def test_columns_are_the_metric_registry_names():
    from bioaug.evaluate.metrics import METRICS

    row = point_rows(0, 0, {}, REPORT)[0]
    assert [c for c in row if c in METRICS] == list(METRICS)
    assert "ami_leiden" not in row  # one name per metric, the registry's


def test_a_class_accuracy_that_is_not_a_number_names_file_point_and_class(tmp_path):
    report = {"linear": {"per_class": {"a": 0.9, "Actin disruptors": "n/a"}}}
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    with pytest.raises(ConfigError) as info:
        gather([(4, 0, {}, path)])
    text = info.value.format()
    assert text.startswith(f"{path}: the report of point 4: ")
    assert "linear.per_class.Actin disruptors is 'n/a', not a number" in text


def test_an_unreadable_report_names_its_file_once(tmp_path):
    missing = tmp_path / "point-7" / "report.json"
    with pytest.raises(ConfigError) as info:
        gather([(7, 0, {}, missing)])
    text = info.value.format()
    assert text == f"{missing}: cannot read the report of point 7: No such file or directory"
    bad = tmp_path / "bad.json"
    bad.write_text('{"linear": ')
    with pytest.raises(ConfigError) as info:
        gather([(1, 0, {}, bad)])
    assert info.value.format().count(str(bad)) == 1
    assert "not valid JSON (Expecting value at line 1 column 12)" in info.value.format()
