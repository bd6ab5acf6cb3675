"""Compare whole protocols (transformation sets) on one store, over seeds, resumably.

The papers' set-level experiments — MNIST transformation sets (Bendidi et al. 2023),
expert vs default vs supervised on BBBC021, ventral vs dorsal vs fused (Ericsson et al.
2022) — are all "train one model per protocol and seed, embed, evaluate, tabulate".
:func:`compare_protocols` does that, plus the raw-pixel floor, a supervised backbone and
fused embeddings when asked, and returns a tidy table (one row per embedding × seed ×
evaluation label). Every stage is skipped when its output exists
(:mod:`bioaug.study.stages`), so a killed comparison resumes.

Layout of ``out``::

    out/<protocol>/seed-<s>/run/, cells.h5ad, eval-<label>/report.json …
    out/fused/<a+b>/seed-<s>/cells.h5ad, eval-<label>/ …
    out/raw/cells.h5ad, eval-<label>/
    out/<backbone>/cells.h5ad, eval-<label>/
    out/comparison.csv, out/comparison_summary.csv
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from bioaug.errors import BioaugError
from bioaug.io import atomic_path
from bioaug.study import stages
from bioaug.study.results import dig

METRICS: dict[str, tuple[str, ...]] = {
    "leiden_ami": ("clustering", "leiden", "ami"),
    "kmeans_ami": ("clustering", "kmeans", "ami"),
    "silhouette": ("clustering", "silhouette", "value"),
    "linear_accuracy": ("linear", "accuracy"),
    "nsc": ("profiling", "nsc", "accuracy"),
    "nscb": ("profiling", "nscb", "accuracy"),
}


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def metrics_row(report: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for name, keys in METRICS.items():
        v = dig(report, keys)
        out[name] = float(v) if v is not None else None
    return out


def _evaluate_all(h5ad: Path, folder: Path, labels: Sequence[str], rep: str, seed: int,
                  evaluate_kwargs: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    reports = {}
    for label in labels:
        res, report = stages.evaluate_stage(h5ad, folder / f"eval-{label}", label=label,
                                            rep=rep, seed=seed, **dict(evaluate_kwargs))
        if not res.skipped:
            _log(f"    evaluated {folder.parent.name}/{folder.name} on {label!r} in "
                 f"{res.seconds:.1f}s")
        reports[label] = report
    return reports


def compare_protocols(store: str | Path, protocols: Sequence[str], out: str | Path, *,
                      labels: Sequence[str] = ("moa",), train: Mapping[str, Any] | None = None,
                      seeds: Sequence[int] = (0,), device: str = "auto",
                      embed_batch: int = 256, raw: bool = True,
                      backbones: Sequence[str] = (), fuse: Sequence[Sequence[str]] = (),
                      evaluate_kwargs: Mapping[str, Any] | None = None,
                      names: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Train/embed/evaluate every protocol × seed (plus raw, backbones, fusions).

    ``train``: TrainConfig fields shared by every run (method, backbone, width, crop,
    epochs …). ``backbones``: pretrained backbones embedded as they are (e.g.
    ``resnet101_supervised``); one whose weights are not present locally is skipped with a
    note. ``fuse``: groups of protocols whose models' features are concatenated.
    ``names``: display names for protocols (default: the protocol itself).
    Returns one row per (embedding, seed, label) with the :data:`METRICS`.
    """
    from bioaug.train.config import make_config

    store, out = Path(store), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train = dict(train or {})
    evaluate_kwargs = dict(evaluate_kwargs or {})
    names = dict(names or {})
    rows: list[dict[str, Any]] = []

    def add(embedding: str, kind: str, seed: int | None,
            reports: Mapping[str, Mapping[str, Any]]) -> None:
        for label, report in reports.items():
            rows.append({"embedding": embedding, "kind": kind, "seed": seed, "label": label,
                         **metrics_row(report)})

    runs: dict[tuple[str, int], Path] = {}
    for protocol in protocols:
        key = Path(protocol).stem if protocol.endswith((".yaml", ".yml")) else protocol
        for seed in seeds:
            d = out / key / f"seed-{seed}"
            cfg = make_config({**train, "data": str(store), "protocol": protocol,
                               "out": str(d / "run"), "seed": seed, "device": device},
                              source=f"comparison ({protocol})")
            tr = stages.train_stage(cfg)
            _log(f"  {key} seed {seed}: " + ("trained already" if tr.skipped
                                               else f"trained in {tr.seconds:.1f}s"))
            runs[(protocol, seed)] = tr.path
            stages.embed_stage([tr.path], store, d / "cells.h5ad", batch_size=embed_batch,
                               device=device)
            add(names.get(protocol, key), "protocol", seed,
                _evaluate_all(d / "cells.h5ad", d, labels, "X_bioaug", seed, evaluate_kwargs))

    for group in fuse:
        tag = "+".join(Path(p).stem if p.endswith((".yaml", ".yml")) else p for p in group)
        for seed in seeds:
            d = out / "fused" / tag / f"seed-{seed}"
            stages.embed_stage([runs[(p, seed)] for p in group], store, d / "cells.h5ad",
                               batch_size=embed_batch, device=device)
            add(f"fused {tag}", "fused", seed,
                _evaluate_all(d / "cells.h5ad", d, labels, "X_bioaug_fused", seed,
                              evaluate_kwargs))

    if raw:
        d = out / "raw"
        stages.embed_stage([], store, d / "cells.h5ad", raw=True, batch_size=embed_batch,
                           device=device)
        add("raw pixels", "raw", None,
            _evaluate_all(d / "cells.h5ad", d, labels, "X_bioaug", 0, evaluate_kwargs))

    for name in backbones:
        d = out / name
        try:
            stages.embed_stage([], store, d / "cells.h5ad", backbone=name,
                               batch_size=embed_batch, device=device)
        except BioaugError as exc:
            _log(f"  {name}: skipped — {exc.message}")
            continue
        add(name, "pretrained", None,
            _evaluate_all(d / "cells.h5ad", d, labels, "X_bioaug", 0, evaluate_kwargs))

    table = pd.DataFrame(rows)
    with atomic_path(out / "comparison.csv") as tmp:
        table.to_csv(tmp, index=False)
    summary = summarize(table)
    with atomic_path(out / "comparison_summary.csv") as tmp:
        summary.to_csv(tmp, index=False)
    return table


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds per (embedding, label)."""
    present = [m for m in METRICS if m in table.columns and table[m].notna().any()]
    agg: dict[str, Any] = {"n_seeds": ("seed", "size")}
    for m in present:
        agg[f"{m}_mean"] = (m, "mean")
        agg[f"{m}_std"] = (m, "std")
    out = table.groupby(["embedding", "label"], sort=False).agg(**agg).reset_index()
    for m in present:
        out[f"{m}_std"] = out[f"{m}_std"].fillna(0.0)
    return out


def format_summary(summary: pd.DataFrame, metrics: Sequence[str]) -> str:
    """``mean ± std`` text table for the terminal."""
    head = ["embedding", "label", *metrics]
    rows = []
    for _, r in summary.iterrows():
        cells = [str(r["embedding"]), str(r["label"])]
        for m in metrics:
            mean, std = r.get(f"{m}_mean"), r.get(f"{m}_std")
            if mean is None or pd.isna(mean):
                cells.append("—")
            elif r["n_seeds"] > 1:
                cells.append(f"{mean:.3f} ± {std:.3f}")
            else:
                cells.append(f"{mean:.3f}")
        rows.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in rows)) for i, h in enumerate(head)]
    fmt = lambda cells: "  ".join(  # noqa: E731
        c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths,
                                                                             strict=True)))
    return "\n".join([fmt(head), fmt(["-" * w for w in widths]), *map(fmt, rows)])
