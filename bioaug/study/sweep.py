"""Parameter sweeps: train → embed → evaluate for every point, resumably.

``bioaug sweep --config sweep.yaml --out DIR`` (format: :mod:`bioaug.study.sweep_config`).

Layout of ``DIR``::

    DIR/sweep.yaml            copy of the sweep file as written
    DIR/sweep.json            the normalised sweep (how a rerun recognises its sweep)
    DIR/points/<k>/           one directory per point (k = 0 … N−1)
        protocol.yaml         the point's protocol (base + axis values)
        run/                  the training run (checkpoint, config, metrics)
        cells.h5ad            the embedding of the store
        eval/                 the evaluation (report.json, report.md, pictures)
        done.json             written last: the point is finished
    DIR/results.csv           one row per point × class (when every point is done)
    DIR/report/               the class-bias report (``bioaug sweep report DIR``)

A killed sweep resumes: finished points (``done.json``) are skipped, a point interrupted
mid-way resumes its training run and redoes only the stages that had not finished.
``--print-commands`` prints one command per point so a cluster scheduler can run them as
separate jobs (e.g. a SLURM array); ``--point K`` runs one point; results are gathered once
every point is done (or by ``bioaug sweep report DIR``).
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bioaug.errors import ConfigError, DataError, did_you_mean
from bioaug.io import atomic_path, atomic_write_json, atomic_write_text, provenance
from bioaug.progress import progress
from bioaug.study import results as results_mod
from bioaug.study import stages
from bioaug.study.sweep_config import (
    SweepConfig,
    SweepPoint,
    diff_configs,
    enumerate_points,
    load_sweep_config,
    parse_sweep_config,
    point_protocol,
    validate_axes,
)

SWEEP_COPY = "sweep.yaml"
STATE = "sweep.json"
POINTS = "points"
#: A point's evaluation report directory (inside the point's directory).
EVAL = "eval"
DONE = "done.json"
RESULTS = "results.csv"


_log = stages.log


@dataclass
class Sweep:
    """A sweep bound to its output directory.

    Open one with :meth:`create` (a sweep file and an output folder) or :meth:`open` (an
    existing sweep folder); :meth:`run` runs the points, :meth:`report` writes the
    class-bias report.

    Examples
    --------
    Flip probability 0 and 1, one seed, 2 SimCLR steps per point on 32 random 12 px crops:

    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> import pandas as pd
    >>> from bioaug.data.store import write_store
    >>> from bioaug.study.sweep import Sweep
    >>> folder = Path(tempfile.mkdtemp())
    >>> images = np.random.default_rng(0).integers(0, 255, (32, 3, 12, 12), dtype=np.uint8)
    >>> _ = write_store(folder / "crops", images, pd.DataFrame({"label": ["a", "b"] * 16}),
    ...                 channels=["R", "G", "B"], label_column="label")
    >>> _ = (folder / "flip.yaml").write_text('''
    ... bioaug_protocol: 1
    ... name: flip
    ... views:
    ...   - crop_size: 12
    ...     steps: [{flip: {horizontal: true, p: 0.5}}]
    ...   - same_as: 0
    ... ''')
    >>> _ = (folder / "sweep.yaml").write_text('''
    ... bioaug_sweep: 1
    ... protocol: flip.yaml
    ... data: crops
    ... method: simclr
    ... backbone: vgg_mnist
    ... device: cpu
    ... train: {width: 0.25, crop: 12, batch_size: 8, epochs: 1, max_steps: 2, num_workers: 0,
    ...         tensorboard: false, preview_views: 0,
    ...         method_kwargs: {proj_hidden_dim: 16, proj_output_dim: 8}}
    ... evaluate: {plot: false, profiling_mode: "off"}
    ... axes:
    ...   views[*].steps.flip.p: [0.0, 1.0]
    ... ''')
    >>> sweep = Sweep.create(folder / "sweep.yaml", folder / "out")
    >>> [p.label() for p in sweep.points], sweep.label(), sweep.state(0)
    (['views[*].steps.flip.p=0.0, seed=0', 'views[*].steps.flip.p=1.0, seed=0'], 'label', 'pending')
    >>> sweep.commands(folder / "sweep.yaml")[1].endswith("--point 1")
    True
    >>> results = pd.read_csv(sweep.run())
    >>> sweep.n_done(), sorted(results["class"].unique()), results["point"].unique().tolist()
    (2, ['a', 'b'], [0, 1])

    An axis value the op does not accept fails before anything runs:

    >>> _ = (folder / "bad.yaml").write_text(
    ...     (folder / "sweep.yaml").read_text().replace("[0.0, 1.0]", "[0.5, 2.0]"))
    >>> Sweep.create(folder / "bad.yaml", folder / "bad")
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: ...axes.views[*].steps.flip.p: ...
    """

    config: SweepConfig
    out: Path
    points: list[SweepPoint]
    base_protocol: dict[str, Any] | None = None
    source: str = "<sweep>"

    # -- opening ----------------------------------------------------------------------
    @classmethod
    def create(cls, config_path: str | Path, out: str | Path) -> Sweep:
        """Load and check a sweep file and claim ``out`` for it (or reopen it)."""
        config_path = Path(config_path)
        cfg = load_sweep_config(config_path)
        base = validate_axes(cfg, source=str(config_path))
        _check_train_settings(cfg, str(config_path))
        _check_evaluate_settings(cfg, str(config_path))
        sweep = cls(config=cfg, out=Path(out).resolve(), points=enumerate_points(cfg),
                    base_protocol=base, source=str(config_path))
        try:  # the store must exist and hold the label before any point is planned
            sweep.label()
        except DataError as exc:
            raise ConfigError(f"data: {exc.message}", where=config_path, hint=exc.hint) from None
        out = sweep.out
        state_file = out / STATE
        if state_file.is_file():
            old = json.loads(state_file.read_text(encoding="utf-8"))["config"]
            new = cfg.normalized()
            if old != new:
                diffs = diff_configs(old, new)
                raise ConfigError(
                    f"{out} holds a different sweep; what differs: " + "; ".join(diffs),
                    where=config_path,
                    hint="choose another --out for a new sweep, or delete the directory to "
                         "start this one over")
        elif out.exists() and any(out.iterdir()):
            raise ConfigError(f"{out} exists and is not a sweep directory (no {STATE})",
                              hint="choose an empty or new --out")
        else:
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out / SWEEP_COPY, config_path.read_text(encoding="utf-8"))
            atomic_write_json(state_file, {
                "bioaug_sweep_dir": 1, "config": cfg.normalized(), "sha256": cfg.sha256(),
                "source": str(config_path.resolve()),
                "n_points": len(enumerate_points(cfg)),
                "provenance": provenance(stage="sweep")})
        return sweep

    @classmethod
    def open(cls, out: str | Path) -> Sweep:
        """Reopen an existing sweep directory (for reports and status)."""
        out = Path(out).resolve()
        state_file = out / STATE
        if not state_file.is_file():
            raise ConfigError(f"{out} is not a sweep directory (no {STATE})",
                              hint="run `bioaug sweep --config SWEEP.yaml --out DIR` first")
        state = json.loads(state_file.read_text(encoding="utf-8"))
        cfg = parse_sweep_config(state["config"], source=str(state_file))
        return cls(config=cfg, out=out, points=enumerate_points(cfg),
                   source=state.get("source", str(out / SWEEP_COPY)))

    # -- bookkeeping ------------------------------------------------------------------
    def point_dir(self, k: int) -> Path:
        return self.out / POINTS / str(k)

    def point(self, k: int) -> SweepPoint:
        if not 0 <= k < len(self.points):
            raise ConfigError(f"--point {k} is out of range: this sweep has {len(self.points)} "
                              f"points (0 … {len(self.points) - 1})")
        return self.points[k]

    def is_done(self, k: int) -> bool:
        return (self.point_dir(k) / DONE).is_file()

    def state(self, k: int) -> str:
        """done / evaluated / embedded / trained / training / pending."""
        d = self.point_dir(k)
        if (d / DONE).is_file():
            return "done"
        if (d / EVAL / "report.json").is_file():
            return "evaluated"
        if (d / "cells.h5ad").is_file():
            return "embedded"
        if stages.run_finished(d / "run"):
            return "trained"
        if (d / "run").is_dir():
            return "training"
        return "pending"

    def label(self) -> str:
        """The evaluation label, checked against the store's columns."""
        from bioaug.data.store import Store

        cfg = self.config
        store = Store.open(cfg.data)
        col = cfg.label or store.label_column
        if not col:
            raise ConfigError(f"the store {cfg.data} names no label column; set `label:` in "
                              "the sweep file", where=self.source)
        if col not in store.obs.columns:
            raise ConfigError(f"label '{col}' is not a column of the store {cfg.data}"
                              f"{did_you_mean(col, store.obs.columns)}; columns: "
                              f"{', '.join(map(str, store.obs.columns))}", where=self.source)
        return col

    # -- running ----------------------------------------------------------------------
    def train_config(self, point: SweepPoint) -> Any:
        from bioaug.train.config import make_config

        cfg = self.config
        d = self.point_dir(point.index)
        values = {**cfg.train, "data": cfg.data, "protocol": str(d / "protocol.yaml"),
                  "out": str(d / "run"), "method": cfg.method, "backbone": cfg.backbone,
                  "seed": point.seed, "device": cfg.device}
        return make_config(values, source=f"{self.source} (point {point.index})")

    def run_point(self, k: int) -> dict[str, Any]:
        """Run (or finish, or skip) point ``k``; returns its done record."""
        point = self.point(k)
        d = self.point_dir(k)
        if self.is_done(k):
            return json.loads((d / DONE).read_text(encoding="utf-8"))
        label = self.label()
        d.mkdir(parents=True, exist_ok=True)
        if self.base_protocol is None:
            self.base_protocol = validate_axes(self.config, source=self.source)
        protocol = point_protocol(self.base_protocol, point.params, source=self.source)
        text = protocol.to_yaml()
        proto_file = d / "protocol.yaml"
        if not proto_file.is_file() or proto_file.read_text(encoding="utf-8") != text:
            atomic_write_text(proto_file, text)
        cfg = self.config
        tr = stages.train_stage(self.train_config(point))
        em = stages.embed_stage([tr.path], Path(cfg.data), d / "cells.h5ad",
                                layer=cfg.embed.layer, batch_size=cfg.embed.batch_size,
                                device=cfg.device)
        ev, report = stages.evaluate_stage(d / "cells.h5ad", d / EVAL, label=label, **cfg.evaluate)
        record = {
            "point": k, "seed": point.seed, "params": point.params,
            "seconds": {"train": round(tr.seconds, 2), "embed": round(em.seconds, 2),
                        "evaluate": round(ev.seconds, 2)},
            "metrics": results_mod.overall_metrics(report),
            "provenance": provenance(stage="sweep-point"),
        }
        atomic_write_json(d / DONE, record)
        return record

    def run(self, only: int | None = None) -> Path | None:
        """Run every unfinished point (or only point ``only``); gather when all are done."""
        todo = [self.point(only)] if only is not None else self.points
        n = len(self.points)
        bar = progress(todo, total=len(todo), desc="sweep", unit="point")
        for point in bar:
            k = point.index
            if self.is_done(k):
                _log(f"[{k + 1}/{n}] point {k} ({point.label()}): done already, skipped")
                continue
            t0 = time.perf_counter()
            record = self.run_point(k)
            acc = record["metrics"].get("linear_accuracy")
            ami = record["metrics"].get("leiden_ami")
            sec = record["seconds"]
            _log(f"[{k + 1}/{n}] point {k} ({point.label()}): "
                 f"train {sec['train']:.1f}s, embed {sec['embed']:.1f}s, "
                 f"evaluate {sec['evaluate']:.1f}s (total {time.perf_counter() - t0:.1f}s) — "
                 f"linear acc {_f(acc)}, Leiden AMI {_f(ami)}; "
                 f"{self.n_done()}/{n} points done")
        if self.n_done() == n:
            return self.gather()
        return None

    def n_done(self) -> int:
        return sum(self.is_done(k) for k in range(len(self.points)))

    # -- results ----------------------------------------------------------------------
    def results_frame(self) -> pd.DataFrame:
        finished = [(p.index, p.seed, p.params, self.point_dir(p.index) / EVAL / "report.json")
                    for p in self.points if self.is_done(p.index)]
        if not finished:
            raise ConfigError(f"no point of the sweep in {self.out} has finished yet",
                              hint="run `bioaug sweep --config ... --out DIR` first")
        return results_mod.gather(finished)

    def gather(self) -> Path:
        """Write ``DIR/results.csv`` from every finished point."""
        df = self.results_frame()
        path = self.out / RESULTS
        with atomic_path(path) as tmp:
            df.to_csv(tmp, index=False)
        return path

    def commands(self, config_path: str | Path) -> list[str]:
        """One shell command per point (the k-th line runs point k)."""
        cfg = shlex.quote(str(Path(config_path).resolve()))
        out = shlex.quote(str(self.out))
        return [f"bioaug sweep --config {cfg} --out {out} --point {p.index}"
                for p in self.points]

    def status_table(self) -> pd.DataFrame:
        rows = []
        for p in self.points:
            row: dict[str, Any] = {"point": p.index, **{k: results_mod.cell_value(v)
                                                        for k, v in p.params.items()},
                                   "seed": p.seed, "state": self.state(p.index)}
            if row["state"] == "done":
                rec = json.loads((self.point_dir(p.index) / DONE).read_text(encoding="utf-8"))
                row["linear_accuracy"] = rec["metrics"].get("linear_accuracy")
                row["leiden_ami"] = rec["metrics"].get("leiden_ami")
                row["seconds"] = round(sum(rec["seconds"].values()), 1)
            rows.append(row)
        return pd.DataFrame(rows)

    def report(self) -> dict[str, Path]:
        """Gather results and write the class-bias report into ``DIR/report``."""
        from bioaug.study.bias_report import write_bias_report

        df = self.results_frame()
        missing = len(self.points) - self.n_done()
        if missing:
            _log(f"note: {missing} of {len(self.points)} points are not finished; the report "
                 "covers the finished ones")
        path = self.out / RESULTS
        with atomic_path(path) as tmp:
            df.to_csv(tmp, index=False)
        return write_bias_report(df, self.config.axis_paths, self.out / "report",
                                 title=self.config.name)


def _f(v: Any) -> str:
    return "—" if v is None else f"{v:.3f}"


def _check_train_settings(cfg: SweepConfig, source: str) -> None:
    """Validate the ``train:`` block with TrainConfig before anything runs."""
    from bioaug.train.config import make_config

    try:
        make_config({**cfg.train, "data": cfg.data, "protocol": cfg.protocol, "out": "/tmp/x",
                     "method": cfg.method, "backbone": cfg.backbone, "seed": 0,
                     "device": cfg.device}, source=f"{source} (train:)")
    except ConfigError as exc:
        raise ConfigError(exc.message, where=source, hint=exc.hint) from None


def _check_evaluate_settings(cfg: SweepConfig, source: str) -> None:
    """The ``evaluate:`` block must name keyword arguments of :func:`bioaug.evaluate`."""
    import inspect

    from bioaug.evaluate import evaluate

    params = inspect.signature(evaluate).parameters
    allowed = [n for n, p in params.items() if p.kind == p.KEYWORD_ONLY
               and n not in ("label", "rep", "out")]
    for key in cfg.evaluate:
        if key not in allowed:
            raise ConfigError(f"evaluate.{key}: not an evaluation option"
                              f"{did_you_mean(key, allowed)}; options: {', '.join(allowed)}",
                              where=source)
