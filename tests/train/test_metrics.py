from __future__ import annotations

import math

from bioaug.train.metrics import MetricsLogger, read_metrics, truncate_metrics


def test_logger_appends_and_resume_truncates(tmp_path):
    log = MetricsLogger(tmp_path, start_step=0, tensorboard=False)
    for step in range(1, 6):
        log.log({"step": step, "epoch": 0, "loss": 1.0 / step, "lr": 0.1, "images_per_s": 10.0,
                 "elapsed_s": step * 0.5, "top1": 0.5})
    log.close()
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5] and rows[1]["loss"] == 0.5
    assert list(rows[0]) == ["step", "epoch", "loss", "lr", "images_per_s", "elapsed_s", "top1"]
    truncate_metrics(tmp_path / "metrics.csv", 3)
    log = MetricsLogger(tmp_path, start_step=3, tensorboard=False)
    log.log({"step": 4, "epoch": 0, "loss": 9.0, "lr": 0.1, "images_per_s": 1.0,
             "elapsed_s": 2.0})   # a missing column stays empty
    log.close()
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert rows[-1]["loss"] == 9.0 and math.isnan(rows[-1]["top1"])


def test_tensorboard_events(tmp_path):
    log = MetricsLogger(tmp_path, start_step=0, tensorboard=True)
    log.log({"step": 1, "epoch": 0, "loss": 1.0, "lr": 0.1, "images_per_s": 1.0,
             "elapsed_s": 0.1})
    log.close()
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tb").iterdir())
