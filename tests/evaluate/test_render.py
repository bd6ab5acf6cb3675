"""The report as text: rows from the metric registry, report.md sections."""

from __future__ import annotations

from bioaug.evaluate import metrics
from bioaug.evaluate.render import NOTES, format_table, report_markdown, summary_rows

REPORT = {
    "clustering": {
        "leiden": {"ami": 0.5, "ari": 0.4, "n_items": 10, "n_classes": 2, "n_clusters": 3,
                   "resolution": 1.25},
        "kmeans": {"ami": 0.3, "ari": 0.2, "k": 2}, "silhouette": {"value": None, "n_items": 10}},
    "linear": {"accuracy": 0.9, "balanced_accuracy": 0.85, "n_train": 8, "n_test": 2,
               "n_classes": 2, "split": {"grouped_by": "compound"}},
    "profiling": {"nsc": None, "replicate": None,
                  "moa": {"map": 0.5, "fraction_retrieved": 0.25, "n_groups": 4,
                          "n_profiles": 20, "threshold": 0.05, "null_size": 100}},
}


def test_summary_rows_are_the_registered_metrics_the_report_holds():
    rows = summary_rows(REPORT)
    assert [r[0] for r in rows] == ["Leiden AMI", "Leiden ARI", "k-means AMI", "k-means ARI",
                                    "silhouette", "linear accuracy", "linear balanced acc.",
                                    "MoA mAP", "MoA retrieved"]
    assert rows[0] == ("Leiden AMI", "0.500", "10 items, 2 classes, 3 clusters @ res 1.25")
    assert rows[4] == ("silhouette", "—", "10 items")
    assert rows[5][2] == "8 train / 2 test, 2 classes, grouped by compound"
    assert rows[7][2] == "4 groups, 20 profiles; retrieved = FDR p < 0.05, 100 permutations"
    assert set(NOTES) <= set(metrics.METRICS)


def test_a_new_registered_metric_is_a_new_row(monkeypatch):
    monkeypatch.setitem(metrics.METRICS, "kmeans_k", metrics.Metric(
        "kmeans_k", "k-means k", ("clustering", "kmeans", "k"), "clusters of k-means"))
    rows = summary_rows(REPORT)
    assert rows[-1] == ("k-means k", "2.000", "")
    assert "k-means k" in format_table(rows)


def test_corrected_profiling_rows_follow_the_plain_ones():
    report = {**REPORT, "profiling_corrected": {"moa": {**REPORT["profiling"]["moa"],
                                                        "map": 0.75}}}
    rows = summary_rows(report)
    assert [r[0] for r in rows[-2:]] == ["MoA mAP (corrected)", "MoA retrieved (corrected)"]
    assert rows[-2][1] == "0.750"


def test_fractional_counts_of_tied_neighbours_are_said():
    rule = {"rule": "NSC", "accuracy": 0.2, "n_correct": 1.4, "n_scored": 7,
            "n_treatments": 7, "n_classes": 3, "unscorable": [], "n_tied_queries": 7,
            "map": 0.44, "map_n_queries": 7,
            "per_class": {}}
    report = {"input": {"path": None, "rep": "X_bioaug", "dims": 2, "label": "moa",
                        "n_items": 42, "n_items_without_label": 3, "n_items_excluded": 0,
                        "n_classes": 3, "excluded_labels": []},
              "seed": 0, "clustering": {**REPORT["clustering"], "n_neighbors": 15,
                                        "representation": {"dims": 2},
                                        "leiden": {**REPORT["clustering"]["leiden"],
                                                   "target_clusters": 2, "exact": False,
                                                   "tries": 4}},
              "linear": {**REPORT["linear"], "per_class": {}, "excluded_classes": [],
                         "split": {}},
              "profiling": {"nsc": rule, "n_cells": 42, "n_wells": 14,
                            "n_control_treatments": 1, "n_unannotated_treatments": 0},
              "timings": {"total": 1.0}}
    text = report_markdown(report)
    assert "accuracy 0.200 (1.40 of 7 scored; 7 treatments, 3 MoAs); 7 queries had tied " \
           "nearest references" in text
    assert "42 items with a label (3 without), 3 classes" in text
