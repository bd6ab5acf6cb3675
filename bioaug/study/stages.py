"""Resumable train → embed → evaluate stages, shared by sweeps, the demo and the examples.

Each stage skips itself when its output is already complete, so a killed study picks up
where it stopped:

- :func:`train_stage` — skipped when the run's checkpoint says ``finished``; a run with an
  unfinished checkpoint is resumed (``bioaug train --resume``);
- :func:`embed_stage` — skipped when the ``.h5ad`` file exists (it is written atomically,
  so it exists only once complete);
- :func:`evaluate_stage` — skipped when ``report.json`` exists (written last, atomically).

Every stage returns how long it took (0 when skipped) so callers can print timings.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bioaug.errors import BioaugError


def log(msg: str) -> None:
    """A progress line of a study on stderr (stdout stays for results)."""
    print(msg, file=sys.stderr, flush=True)


@dataclass
class StageResult:
    """Output path of a stage, seconds spent, and whether it was already done."""

    path: Path
    seconds: float
    skipped: bool


def run_finished(run_dir: Path) -> bool:
    """True when ``run_dir`` holds a checkpoint of a finished training run."""
    from bioaug.train.checkpoint import checkpoint_path, read_checkpoint

    if not checkpoint_path(run_dir).is_file():
        return False
    try:
        return bool(read_checkpoint(run_dir).get("finished", False))
    except BioaugError:
        return False


def train_stage(config: Any) -> StageResult:
    """Train (or resume, or skip) the run described by a :class:`TrainConfig`."""
    from bioaug.train.loop import train

    run_dir = Path(config.out)
    if run_finished(run_dir):
        return StageResult(run_dir, 0.0, True)
    t0 = time.perf_counter()
    out = train(config, resume=True)  # a fresh start when there is no checkpoint yet
    return StageResult(Path(out), time.perf_counter() - t0, False)


def embed_stage(checkpoints: Sequence[Path], data: Path, out: Path, *,
                layer: str | None = None, batch_size: int = 256, device: str = "auto",
                raw: bool = False, **kwargs: Any) -> StageResult:
    """Embed ``data`` with the checkpoints (or raw pixels) into ``out`` (.h5ad); ``layer``
    None: each backbone's default (:func:`bioaug.models.default_embed_layer`)."""
    from bioaug.embed import embed, write_h5ad

    out = Path(out)
    if out.is_file():
        return StageResult(out, 0.0, True)
    t0 = time.perf_counter()
    adata = embed([str(c) for c in checkpoints], str(data), layer=layer,
                  batch_size=batch_size, raw=raw, device=device, **kwargs)
    write_h5ad(adata, out)
    return StageResult(out, time.perf_counter() - t0, False)


def evaluate_stage(h5ad: Path, out_dir: Path, *, label: str, rep: str = "X_bioaug",
                   seed: int = 0, **kwargs: Any) -> tuple[StageResult, Any]:
    """Evaluate ``rep`` of ``h5ad`` into ``out_dir`` (report.json, report.md, PNGs).

    Returns the stage result and the :class:`~bioaug.evaluate.EvaluationReport` (read
    back from ``report.json`` when the stage was done already).
    """
    from bioaug.evaluate import EvaluationReport, evaluate

    out_dir = Path(out_dir)
    report_path = out_dir / "report.json"
    if report_path.is_file():
        return StageResult(report_path, 0.0, True), EvaluationReport.read(report_path)
    t0 = time.perf_counter()
    report = evaluate(str(h5ad), label=label, rep=rep, out=str(out_dir), seed=seed, **kwargs)
    return StageResult(report_path, time.perf_counter() - t0, False), report
