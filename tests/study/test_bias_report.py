"""The class-bias report: what report.md says about each class's trend."""

from __future__ import annotations

import pandas as pd

from bioaug.study.bias_report import write_bias_report

AXIS = "p"


def test_report_names_classes_whose_trend_is_unknown(tmp_path):
    rows = [{"point": i, "seed": 0, AXIS: p, "linear_accuracy": 0.6, "class": cls,
             "class_accuracy": acc}
            for i, p in enumerate((0.0, 1.0))
            for cls, acc in {"a": 0.4 + 0.4 * p, "b": 0.5}.items()]
    rows.append({"point": 0, "seed": 0, AXIS: 0.0, "linear_accuracy": 0.6, "class": "c",
                 "class_accuracy": 0.7})  # c measured at the lowest p only
    paths = write_bias_report(pd.DataFrame(rows), [AXIS], tmp_path)
    text = paths["report.md"].read_text()
    assert "As `p` grows: gain — `a`; lose — none" in text
    assert "Not measured at both ends, so no trend: `c`." in text
    trends = pd.read_csv(paths["trends.csv"]).set_index("class")
    assert trends.loc["c", "direction"] == "unknown" and trends.loc["b", "direction"] == "flat"
