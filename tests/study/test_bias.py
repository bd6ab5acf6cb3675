"""Class-bias analysis on a constructed results table with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bioaug.errors import ConfigError
from bioaug.study import bias

AXIS = "views[*].steps.stain_jitter.p"


def table(noise: float = 0.0) -> pd.DataFrame:
    """Class a gains with p, class b loses as much, class c is flat: overall is flat."""
    rng = np.random.default_rng(0)
    rows, point = [], 0
    for p in (0.0, 0.5, 1.0):
        for seed in (0, 1):
            acc = {"a": 0.4 + 0.4 * p, "b": 0.8 - 0.4 * p, "c": 0.6}
            acc = {k: v + noise * rng.normal() for k, v in acc.items()}
            overall = float(np.mean(list(acc.values())))
            for cls, v in acc.items():
                rows.append({"point": point, "seed": seed, AXIS: p, "linear_accuracy": overall,
                             "leiden_ami": 0.1, "class": cls, "class_accuracy": v})
            point += 1
    return pd.DataFrame(rows)


def test_per_class_table_mean_and_spread():
    t = bias.per_class_table(table(), [AXIS])
    a1 = t[(t["class"] == "a") & (t[AXIS] == 1.0)].iloc[0]
    assert a1["mean"] == pytest.approx(0.8) and a1["std"] == pytest.approx(0.0)  # 2 seeds
    assert a1["n_seeds"] == 2
    assert len(t) == 9
    noisy = bias.per_class_table(table(noise=0.05), [AXIS])
    assert (noisy["std"] > 0).all()


def test_trends_find_gainers_and_losers():
    tr = bias.class_trends(table(), AXIS).set_index("class")
    assert tr.loc["a", "direction"] == "gains" and tr.loc["a", "slope"] == pytest.approx(0.4)
    assert tr.loc["b", "direction"] == "loses" and tr.loc["b", "change"] == pytest.approx(-0.4)
    assert tr.loc["c", "direction"] == "flat"


def test_bias_matrix_anticorrelated_pair():
    m = bias.bias_matrix(table(noise=0.01))
    assert m.loc["a", "b"] < -0.95
    assert m.loc["a", "a"] == pytest.approx(1.0)
    constant = bias.bias_matrix(table())
    assert np.isnan(constant.loc["a", "c"])  # c never moves: correlation undefined


def test_bias_matrix_needs_two_runs():
    t = table()
    with pytest.raises(ConfigError, match="at least 2"):
        bias.bias_matrix(t[t["point"] == 0])


def test_spread_overall_flat_classes_move():
    s = bias.spread_summary(table(), [AXIS])
    assert s["overall_range"] == pytest.approx(0.0, abs=1e-12)
    assert s["max_class_range"] == pytest.approx(0.4)
    assert s["max_class"] in ("a", "b")


def test_overall_table_and_categorical_axis():
    t = table()
    t[AXIS] = t[AXIS].map({0.0: "[0.1, 0.5]", 0.5: "[0.1, 1.0]", 1.0: "[0.1, 2.0]"})
    o = bias.overall_table(t, [AXIS])
    assert list(o[AXIS]) == ["[0.1, 0.5]", "[0.1, 1.0]", "[0.1, 2.0]"]
    assert "nsc_mean" not in o.columns  # absent metrics are not invented
    tr = bias.class_trends(t, AXIS).set_index("class")
    assert tr.loc["a", "slope_unit"] == "per step" and tr.loc["a", "slope"] == pytest.approx(0.2)


def test_missing_columns():
    with pytest.raises(ConfigError, match="lacks column"):
        bias.per_class_table(table().drop(columns=["class_accuracy"]), [AXIS])


def test_bias_matrix_keeps_classes_without_accuracy():
    t = table(noise=0.01)
    t.loc[t["class"] == "c", "class_accuracy"] = np.nan  # e.g. no test item of class c
    m = bias.bias_matrix(t)
    assert list(m.columns) == ["a", "b", "c"] and np.isnan(m.loc["a", "c"])


def test_binomial_noise():
    t = table()
    assert bias.binomial_noise(t) is None  # test counts unknown
    t["class_n_test"] = 100
    t["class_accuracy"] = 0.5
    assert bias.binomial_noise(t) == pytest.approx(2 * 0.05)


def test_one_seed_has_no_spread_and_the_report_prints_none(tmp_path):
    from bioaug.study.bias_report import spread_decimals, write_bias_report

    one_seed = table()[lambda d: d["seed"] == 0]
    t = bias.per_class_table(one_seed, [AXIS])
    assert t["std"].isna().all() and (t["n_seeds"] == 1).all()
    assert bias.overall_table(one_seed, [AXIS])["linear_accuracy_std"].isna().all()
    perfect = one_seed.assign(class_accuracy=1.0, class_n_test=20)
    text = write_bias_report(perfect, [AXIS], tmp_path)["report.md"].read_text()
    assert "±" not in text and "_std" not in text  # no spread columns, no zero noise
    assert [spread_decimals(v) for v in (0.12, 0.012, 0.0012, 0.5, 3.0)] == [2, 3, 4, 2, 1]


def test_class_missing_at_an_end_of_the_axis_has_an_unknown_trend():
    t = table()
    t = t[~((t["class"] == "b") & (t[AXIS] == 1.0))]  # b never measured at the highest p
    tr = bias.class_trends(t, AXIS).set_index("class")
    assert np.isnan(tr.loc["b", "change"]) and tr.loc["b", "direction"] == "unknown"
    assert tr.loc["c", "direction"] == "flat" and tr.loc["a", "direction"] == "gains"
    assert bias.trend_direction(0.0, 0.01) == "flat"


def test_a_table_without_columns_is_reported_as_empty():
    with pytest.raises(ConfigError, match="no sweep point has finished"):
        bias.check_results(pd.DataFrame(), [AXIS])
