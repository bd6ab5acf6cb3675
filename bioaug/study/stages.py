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
    """Train (or resume, or skip) the run described by a :class:`TrainConfig`.

    Parameters
    ----------
    config
        A validated :class:`~bioaug.train.config.TrainConfig`; its ``out`` is the run
        directory.

    Returns
    -------
    StageResult
        The run directory, the seconds spent, and ``skipped=True`` (0 seconds) when the
        run had already finished.

    Examples
    --------
    A 2-step SimCLR run on 32 random 12 px crops, then the same stage again:

    >>> import tempfile
    >>> import numpy as np
    >>> import pandas as pd
    >>> from bioaug.data.store import write_store
    >>> from bioaug.study.stages import run_finished, train_stage
    >>> from bioaug.train import load_config
    >>> folder = tempfile.mkdtemp()
    >>> images = np.random.default_rng(0).integers(0, 255, (32, 3, 12, 12), dtype=np.uint8)
    >>> _ = write_store(f"{folder}/crops", images, pd.DataFrame({"label": ["a", "b"] * 16}),
    ...                 channels=["R", "G", "B"])
    >>> config = load_config(data=f"{folder}/crops", protocol="none", out=f"{folder}/run",
    ...                      method="simclr", backbone="vgg_mnist", width=0.25, crop=12,
    ...                      batch_size=8, epochs=1, max_steps=2, device="cpu", num_workers=0,
    ...                      tensorboard=False, preview_views=0,
    ...                      method_kwargs={"proj_hidden_dim": 16, "proj_output_dim": 8})
    >>> first = train_stage(config)
    >>> first.path.name, first.skipped, run_finished(first.path)
    ('run', False, True)
    >>> again = train_stage(config)
    >>> again.skipped, again.seconds
    (True, 0.0)
    """
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
    """Embed ``data`` with the checkpoints (or raw pixels) into ``out`` (.h5ad).

    Parameters
    ----------
    checkpoints
        Run directories or checkpoint files; several are fused (``X_bioaug_fused``).
        Empty with ``raw=True``.
    data
        The crop store to embed.
    out
        The ``.h5ad`` file to write; when it exists the stage is skipped.
    layer
        Embedding layer; None: each backbone's default
        (:func:`bioaug.models.default_embed_layer`).
    batch_size
        Items per forward pass.
    device
        ``auto``, ``cpu``, ``cuda`` …
    raw
        Embed the raw pixels instead of a model's features.
    **kwargs
        Further options of :func:`bioaug.embed.embed`.

    Returns
    -------
    StageResult
        The ``.h5ad`` path, the seconds spent, and whether the file existed already.

    Examples
    --------
    Raw pixels of 32 three-channel 12 px crops, scaled to [0, 1]:

    >>> import tempfile
    >>> from pathlib import Path
    >>> import anndata as ad
    >>> import numpy as np
    >>> import pandas as pd
    >>> from bioaug.data.store import write_store
    >>> from bioaug.study.stages import embed_stage
    >>> folder = Path(tempfile.mkdtemp())
    >>> images = np.random.default_rng(0).integers(0, 255, (32, 3, 12, 12), dtype=np.uint8)
    >>> _ = write_store(folder / "crops", images, pd.DataFrame({"label": ["a", "b"] * 16}),
    ...                 channels=["R", "G", "B"])
    >>> result = embed_stage([], folder / "crops", folder / "raw.h5ad", raw=True, device="cpu")
    >>> cells = ad.read_h5ad(result.path)
    >>> cells.obsm["X_bioaug"].shape, cells.obs["label"].tolist()[:4]
    ((32, 432), ['a', 'b', 'a', 'b'])
    >>> bool(np.allclose(cells.obsm["X_bioaug"][0], images[0].reshape(-1) / 255))
    True
    >>> embed_stage([], folder / "crops", folder / "raw.h5ad", raw=True).skipped
    True
    """
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

    Parameters
    ----------
    h5ad
        The embedding (:func:`embed_stage`).
    out_dir
        The report directory; when its ``report.json`` exists the stage is skipped.
    label
        ``obs`` column of the classes.
    rep
        ``obsm`` key of the representation.
    seed
        Seed of every random step of the evaluation.
    **kwargs
        Further options of :func:`bioaug.evaluate.evaluate` (``plot``, ``profile`` …).

    Returns
    -------
    tuple
        The :class:`StageResult` and the :class:`~bioaug.evaluate.EvaluationReport` (read
        back from ``report.json`` when the stage was done already).

    Examples
    --------
    Two well separated groups of 20 cells are found again by clustering and the probe:

    >>> import tempfile
    >>> from pathlib import Path
    >>> import anndata as ad
    >>> import numpy as np
    >>> import pandas as pd
    >>> from bioaug.study.stages import evaluate_stage
    >>> folder = Path(tempfile.mkdtemp())
    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.normal(0, 0.1, (20, 4)), rng.normal(5, 0.1, (20, 4))])
    >>> obs = pd.DataFrame({"label": ["a"] * 20 + ["b"] * 20}, index=[str(i) for i in range(40)])
    >>> ad.AnnData(obs=obs, obsm={"X_bioaug": x}).write_h5ad(folder / "cells.h5ad")
    >>> result, report = evaluate_stage(folder / "cells.h5ad", folder / "eval", label="label",
    ...                                 plot=False, profiling_mode="off")
    >>> result.path.name, result.skipped
    ('report.json', False)
    >>> report.clustering.leiden.ami, report.clustering.kmeans.ami, report.linear.accuracy
    (1.0, 1.0, 1.0)
    >>> again, same = evaluate_stage(folder / "cells.h5ad", folder / "eval", label="label")
    >>> again.skipped, same.clustering.leiden.ami
    (True, 1.0)
    """
    from bioaug.evaluate import EvaluationReport, evaluate

    out_dir = Path(out_dir)
    report_path = out_dir / "report.json"
    if report_path.is_file():
        return StageResult(report_path, 0.0, True), EvaluationReport.read(report_path)
    t0 = time.perf_counter()
    report = evaluate(str(h5ad), label=label, rep=rep, out=str(out_dir), seed=seed, **kwargs)
    return StageResult(report_path, time.perf_counter() - t0, False), report
