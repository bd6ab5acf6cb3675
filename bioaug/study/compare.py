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

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from bioaug.errors import BioaugError
from bioaug.evaluate.metrics import metric_names, metric_values
from bioaug.io import atomic_path
from bioaug.study import stages
from bioaug.study.stages import StageResult, log

#: Called after every stage with its name (``train bbbc021-expert``) and its result.
StageHook = Callable[[str, StageResult], None]


def log_stage(name: str, result: StageResult) -> None:
    """The default stage hook: one line per stage on stderr."""
    log(f"  {name:<28} " + ("done already, skipped" if result.skipped
                           else f"{result.seconds:7.1f}s"))


def metrics_row(report: Any) -> dict[str, Any]:
    """The registered metrics of one report (:func:`bioaug.evaluate.metrics.metric_values`)."""
    return metric_values(report)


def _key(protocol: str) -> str:
    return Path(protocol).stem if protocol.endswith((".yaml", ".yml")) else protocol


def train_configs(store: str | Path, protocols: Sequence[str], out: str | Path, *,
                  train: Mapping[str, Any] | None = None, seeds: Sequence[int] = (0,),
                  device: str = "auto") -> dict[tuple[str, int], Any]:
    """The validated :class:`TrainConfig` of every protocol × seed (nothing runs).

    A comparison calls this before its first stage, so a bad option fails at once.
    """
    from bioaug.train.config import make_config

    out = Path(out)
    return {(protocol, seed): make_config(
        {**dict(train or {}), "data": str(store), "protocol": protocol,
         "out": str(out / _key(protocol) / f"seed-{seed}" / "run"), "seed": seed,
         "device": device}, source=f"comparison ({protocol})")
        for protocol in protocols for seed in seeds}


def _evaluate_all(h5ad: Path, folder: Path, labels: Sequence[str], rep: str, seed: int,
                  evaluate_kwargs: Mapping[str, Any], name: str, hook: StageHook,
                  root: Path) -> dict[str, tuple[Any, str]]:
    reports = {}
    for label in labels:
        res, report = stages.evaluate_stage(h5ad, folder / f"eval-{label}", label=label,
                                            rep=rep, seed=seed, **dict(evaluate_kwargs))
        hook(f"evaluate {name}" + (f" ({label})" if len(labels) > 1 else ""), res)
        reports[label] = (report, (folder / f"eval-{label}").relative_to(root).as_posix())
    return reports


def compare_protocols(store: str | Path, protocols: Sequence[str], out: str | Path, *,
                      labels: Sequence[str] = ("moa",), train: Mapping[str, Any] | None = None,
                      seeds: Sequence[int] = (0,), device: str = "auto",
                      embed_batch: int = 256, raw: bool = True,
                      backbones: Sequence[str] = (), fuse: Sequence[Sequence[str]] = (),
                      evaluate_kwargs: Mapping[str, Any] | None = None,
                      names: Mapping[str, str] | None = None,
                      on_stage: StageHook | None = None) -> pd.DataFrame:
    """Train/embed/evaluate every protocol × seed (plus raw, backbones, fusions).

    Parameters
    ----------
    store
        The crop store every model is trained on and embeds.
    protocols
        Protocol names or YAML paths; one model per protocol and seed.
    out
        Output folder (layout in the module docstring); a rerun resumes.
    labels
        ``obs`` columns each embedding is evaluated against.
    train
        :class:`TrainConfig` fields shared by every run (method, backbone, width, crop,
        epochs …). Optimiser settings left out take the method's recipe.
    seeds
        One model per protocol and seed.
    device
        ``auto``, ``cpu``, ``cuda`` …
    embed_batch
        Batch size of the embedding.
    raw
        Also evaluate raw pixels (the floor every model must beat).
    backbones
        Pretrained backbones embedded as they are (e.g. ``resnet101_supervised``); one
        whose weights are not present locally is skipped with a note.
    fuse
        Groups of protocols whose models' features are concatenated.
    evaluate_kwargs
        Options of :func:`bioaug.evaluate.evaluate` (``umap_points``, ``profile`` …).
    names
        Display names for protocols (default: the protocol itself).
    on_stage
        Called after each stage with its name and :class:`StageResult` (default: a log
        line on stderr).

    Returns
    -------
    One row per (embedding, seed, label): ``embedding``, ``kind``, ``seed``, ``label``,
    the registered metrics (:data:`bioaug.evaluate.metrics.METRICS`) and ``report`` (the
    evaluation folder, relative to ``out``). Also written to ``comparison.csv`` and, as
    mean ± std over seeds, ``comparison_summary.csv``.
    """
    store, out = Path(store), Path(out)
    hook = on_stage or log_stage
    configs = train_configs(store, protocols, out, train=train, seeds=seeds, device=device)
    for group in fuse:
        unknown = [p for p in group if p not in protocols]
        if unknown:
            raise BioaugError(f"fusion group {list(group)} names protocols that are not "
                              f"compared: {unknown}")
    out.mkdir(parents=True, exist_ok=True)
    evaluate_kwargs = dict(evaluate_kwargs or {})
    names = dict(names or {})
    rows: list[dict[str, Any]] = []

    def add(embedding: str, kind: str, seed: int | None,
            reports: Mapping[str, tuple[Any, str]]) -> None:
        for label, (report, folder) in reports.items():
            rows.append({"embedding": embedding, "kind": kind, "seed": seed, "label": label,
                         **metrics_row(report), "report": folder})

    runs: dict[tuple[str, int], Path] = {}
    for protocol in protocols:
        key = _key(protocol)
        for seed in seeds:
            d = out / key / f"seed-{seed}"
            tr = stages.train_stage(configs[(protocol, seed)])
            hook(f"train {key}" + (f" (seed {seed})" if len(seeds) > 1 else ""), tr)
            runs[(protocol, seed)] = tr.path
            em = stages.embed_stage([tr.path], store, d / "cells.h5ad", batch_size=embed_batch,
                                    device=device)
            hook(f"embed {key}", em)
            add(names.get(protocol, key), "protocol", seed,
                _evaluate_all(d / "cells.h5ad", d, labels, "X_bioaug", seed, evaluate_kwargs,
                              key, hook, out))

    for group in fuse:
        tag = "+".join(_key(p) for p in group)
        for seed in seeds:
            d = out / "fused" / tag / f"seed-{seed}"
            em = stages.embed_stage([runs[(p, seed)] for p in group], store, d / "cells.h5ad",
                                    batch_size=embed_batch, device=device)
            hook(f"embed fused {tag}", em)
            add(f"fused {tag}", "fused", seed,
                _evaluate_all(d / "cells.h5ad", d, labels, "X_bioaug_fused", seed,
                              evaluate_kwargs, "fused", hook, out))

    if raw:
        d = out / "raw"
        em = stages.embed_stage([], store, d / "cells.h5ad", raw=True, batch_size=embed_batch,
                                device=device)
        hook("embed raw pixels", em)
        add("raw pixels", "raw", None,
            _evaluate_all(d / "cells.h5ad", d, labels, "X_bioaug", 0, evaluate_kwargs, "raw",
                          hook, out))

    for name in backbones:
        d = out / name
        try:
            em = stages.embed_stage([], store, d / "cells.h5ad", backbone=name,
                                    batch_size=embed_batch, device=device)
        except BioaugError as exc:
            log(f"  {name}: skipped — {exc.message}")
            continue
        hook(f"embed {name}", em)
        add(name, "pretrained", None,
            _evaluate_all(d / "cells.h5ad", d, labels, "X_bioaug", 0, evaluate_kwargs, name,
                          hook, out))

    table = pd.DataFrame(rows)
    with atomic_path(out / "comparison.csv") as tmp:
        table.to_csv(tmp, index=False)
    summary = summarize(table)
    with atomic_path(out / "comparison_summary.csv") as tmp:
        summary.to_csv(tmp, index=False)
    return table


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds per (embedding, label)."""
    present = [m for m in metric_names(corrected=True)
               if m in table.columns and table[m].notna().any()]
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
