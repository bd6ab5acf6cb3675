"""Training metrics: ``RUN/metrics.csv`` (one row per step) and TensorBoard (``RUN/tb``).

Rows are appended and flushed as they come, so ``tail -f`` works during a run. On resume
the file is cut back (atomically) to the steps the checkpoint contains, so a killed run
never leaves rows of steps that are trained again.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any

from bioaug.io import atomic_write_text

BASE_COLUMNS = ["step", "epoch", "loss", "lr", "images_per_s", "elapsed_s"]


def truncate_metrics(path: str | os.PathLike, last_step: int) -> None:
    """Drop rows with ``step > last_step`` (atomic rewrite); no-op without a file."""
    p = Path(path)
    if not p.exists():
        return
    with open(p, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    keep = [r for r in body if r and _as_int(r[0]) is not None and _as_int(r[0]) <= last_step]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(keep)
    atomic_write_text(p, buf.getvalue())


def _as_int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a metrics.csv as dicts of floats (empty cells → NaN)."""
    with open(path, newline="", encoding="utf-8") as fh:
        out = []
        for row in csv.DictReader(fh):
            out.append({k: (float(v) if v not in ("", None) else math.nan)
                        for k, v in row.items()})
        return out


class MetricsLogger:
    """Appends step rows to metrics.csv; mirrors them to TensorBoard when available."""

    def __init__(self, run_dir: Path, *, start_step: int, tensorboard: bool) -> None:
        self.path = run_dir / "metrics.csv"
        self.columns: list[str] | None = None
        if self.path.exists() and self.path.stat().st_size:
            with open(self.path, newline="", encoding="utf-8") as fh:
                self.columns = next(csv.reader(fh), None)
        self._fh = open(self.path, "a", newline="", encoding="utf-8")  # noqa: SIM115
        self._writer = csv.writer(self._fh)
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard not installed: CSV only
                SummaryWriter = None
            if SummaryWriter is not None:
                self.tb = SummaryWriter(log_dir=str(run_dir / "tb"),
                                        purge_step=start_step + 1 if start_step else None)

    def log(self, row: dict[str, Any]) -> None:
        if self.columns is None:
            self.columns = list(BASE_COLUMNS) + [k for k in row if k not in BASE_COLUMNS]
            self._writer.writerow(self.columns)
        self._writer.writerow([_fmt(row.get(c)) for c in self.columns])
        self._fh.flush()
        if self.tb is not None:
            step = int(row["step"])
            for key, value in row.items():
                if key in ("step", "epoch", "elapsed_s") or value is None:
                    continue
                self.tb.add_scalar(f"train/{key}", float(value), step)

    def log_scalar(self, name: str, value: float, step: int) -> None:
        if self.tb is not None:
            self.tb.add_scalar(name, value, step)

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        if self.tb is not None:
            self.tb.flush()
            self.tb.close()
            self.tb = None


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
