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
from dataclasses import dataclass, field
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

    Examples
    --------
    One protocol (2 SimCLR steps of a quarter-width VGG on 32 random 12 px crops) against
    raw pixels:

    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> import pandas as pd
    >>> from bioaug.data.store import write_store
    >>> from bioaug.study.compare import compare_protocols
    >>> folder = tempfile.mkdtemp()
    >>> images = np.random.default_rng(0).integers(0, 255, (32, 3, 12, 12), dtype=np.uint8)
    >>> _ = write_store(f"{folder}/crops", images, pd.DataFrame({"label": ["a", "b"] * 16}),
    ...                 channels=["R", "G", "B"])
    >>> train = {"method": "simclr", "backbone": "vgg_mnist", "width": 0.25, "crop": 12,
    ...          "batch_size": 8, "epochs": 1, "max_steps": 2, "num_workers": 0,
    ...          "tensorboard": False, "preview_views": 0,
    ...          "method_kwargs": {"proj_hidden_dim": 16, "proj_output_dim": 8}}
    >>> options = {"plot": False, "profiling_mode": "off"}
    >>> table = compare_protocols(f"{folder}/crops", ["none"], f"{folder}/out",
    ...                           labels=["label"], train=train, device="cpu",
    ...                           evaluate_kwargs=options)
    >>> table["embedding"].tolist(), table["kind"].tolist(), table["report"].tolist()
    (['none', 'raw pixels'], ['protocol', 'raw'], ['none/seed-0/eval-label', 'raw/eval-label'])
    >>> bool(table["linear_accuracy"].between(0, 1).all())
    True
    >>> sorted(p.name for p in Path(folder, "out").glob("*.csv"))
    ['comparison.csv', 'comparison_summary.csv']

    The same call again finds every stage done and reads the reports back:

    >>> skipped = []
    >>> again = compare_protocols(f"{folder}/crops", ["none"], f"{folder}/out",
    ...                           labels=["label"], train=train, device="cpu",
    ...                           evaluate_kwargs=options,
    ...                           on_stage=lambda name, result: skipped.append(result.skipped))
    >>> len(skipped), all(skipped), again.equals(table)
    (5, True, True)
    """
    # 80+ lines only through its documentation (parameters and a running example), not its code.
    store, out = Path(store), Path(out)
    configs = train_configs(store, protocols, out, train=train, seeds=seeds, device=device)
    for group in fuse:
        unknown = [p for p in group if p not in protocols]
        if unknown:
            raise BioaugError(f"fusion group {list(group)} names protocols that are not "
                              f"compared: {unknown}")
    out.mkdir(parents=True, exist_ok=True)
    run = _Comparison(store, out, labels, seeds, device, embed_batch,
                      dict(evaluate_kwargs or {}), on_stage or log_stage)
    for protocol in protocols:
        run.protocol(protocol, configs, (names or {}).get(protocol, _key(protocol)))
    for group in fuse:
        run.fused(group)
    if raw:
        run.raw()
    for name in backbones:
        run.backbone(name)
    return run.write()


@dataclass
class _Comparison:
    """The stages of one :func:`compare_protocols` call and the table rows they add."""

    store: Path
    out: Path
    labels: Sequence[str]
    seeds: Sequence[int]
    device: str
    embed_batch: int
    evaluate_kwargs: dict[str, Any]
    hook: StageHook
    rows: list[dict[str, Any]] = field(default_factory=list)
    runs: dict[tuple[str, int], Path] = field(default_factory=dict)

    def protocol(self, protocol: str, configs: Mapping[tuple[str, int], Any],
                 name: str) -> None:
        """Train, embed and evaluate one protocol at every seed."""
        key = _key(protocol)
        for seed in self.seeds:
            d = self.out / key / f"seed-{seed}"
            tr = stages.train_stage(configs[(protocol, seed)])
            self.hook(f"train {key}" + (f" (seed {seed})" if len(self.seeds) > 1 else ""), tr)
            self.runs[(protocol, seed)] = tr.path
            self._embed(f"embed {key}", d, [tr.path])
            self._evaluate(name, "protocol", seed, d, "X_bioaug", key)

    def fused(self, group: Sequence[str]) -> None:
        """Embed with the models of ``group`` concatenated, and evaluate, at every seed."""
        tag = "+".join(_key(p) for p in group)
        for seed in self.seeds:
            d = self.out / "fused" / tag / f"seed-{seed}"
            self._embed(f"embed fused {tag}", d, [self.runs[(p, seed)] for p in group])
            self._evaluate(f"fused {tag}", "fused", seed, d, "X_bioaug_fused", "fused")

    def raw(self) -> None:
        """Raw pixels: the floor every model must beat."""
        d = self.out / "raw"
        self._embed("embed raw pixels", d, [], raw=True)
        self._evaluate("raw pixels", "raw", None, d, "X_bioaug", "raw")

    def backbone(self, name: str) -> None:
        """A pretrained backbone as it is; skipped with a note when its weights are absent."""
        d = self.out / name
        try:
            self._embed(f"embed {name}", d, [], backbone=name)
        except BioaugError as exc:
            log(f"  {name}: skipped — {exc.message}")
            return
        self._evaluate(name, "pretrained", None, d, "X_bioaug", name)

    def write(self) -> pd.DataFrame:
        """The table, written to ``comparison.csv`` (and its summary) and returned."""
        table = pd.DataFrame(self.rows)
        with atomic_path(self.out / "comparison.csv") as tmp:
            table.to_csv(tmp, index=False)
        with atomic_path(self.out / "comparison_summary.csv") as tmp:
            summarize(table).to_csv(tmp, index=False)
        return table

    def _embed(self, stage: str, folder: Path, runs: list[Path], **kwargs: Any) -> None:
        result = stages.embed_stage(runs, self.store, folder / "cells.h5ad",
                                    batch_size=self.embed_batch, device=self.device, **kwargs)
        self.hook(stage, result)

    def _evaluate(self, embedding: str, kind: str, seed: int | None, folder: Path, rep: str,
                  name: str) -> None:
        """Evaluate ``folder/cells.h5ad`` against every label; one table row each."""
        for label in self.labels:
            res, report = stages.evaluate_stage(
                folder / "cells.h5ad", folder / f"eval-{label}", label=label, rep=rep,
                seed=0 if seed is None else seed, **self.evaluate_kwargs)
            self.hook(f"evaluate {name}" + (f" ({label})" if len(self.labels) > 1 else ""), res)
            self.rows.append({"embedding": embedding, "kind": kind, "seed": seed,
                              "label": label, **metrics_row(report),
                              "report": (folder / f"eval-{label}").relative_to(self.out)
                              .as_posix()})


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds per (embedding, label).

    Parameters
    ----------
    table
        A comparison table (:func:`compare_protocols`): ``embedding``, ``label``, ``seed``
        and metric columns.

    Returns
    -------
    pandas.DataFrame
        One row per (embedding, label): ``n_seeds``, then ``<metric>_mean`` and
        ``<metric>_std`` for every registered metric the table measured (std 0 for one
        seed); metrics that are empty everywhere are left out.

    Examples
    --------
    Two seeds of one protocol and the raw-pixel floor (NSC not measured):

    >>> import pandas as pd
    >>> from bioaug.study.compare import summarize
    >>> table = pd.DataFrame({"embedding": ["expert", "expert", "raw pixels"],
    ...                       "label": ["moa"] * 3, "seed": [0, 1, None],
    ...                       "leiden_ami": [0.5, 0.7, 0.2], "nsc": [None, None, None]})
    >>> summary = summarize(table)
    >>> summary.columns.tolist()
    ['embedding', 'label', 'n_seeds', 'leiden_ami_mean', 'leiden_ami_std']
    >>> summary.round(3).to_numpy().tolist()
    [['expert', 'moa', 2, 0.6, 0.141], ['raw pixels', 'moa', 1, 0.2, 0.0]]
    """
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
    """``mean ± std`` text table for the terminal.

    Parameters
    ----------
    summary
        A table of :func:`summarize`.
    metrics
        Metric names to show, in column order; one the summary lacks is shown as ``—``.

    Returns
    -------
    str
        A header, a rule and one line per (embedding, label); a single seed prints the
        mean alone.

    Examples
    --------
    >>> import pandas as pd
    >>> from bioaug.study.compare import format_summary, summarize
    >>> table = pd.DataFrame({"embedding": ["expert", "expert", "raw pixels"],
    ...                       "label": ["moa"] * 3, "seed": [0, 1, None],
    ...                       "leiden_ami": [0.5, 0.7, 0.2]})
    >>> print(format_summary(summarize(table), ["leiden_ami", "nsc"]))
    embedding   label     leiden_ami  nsc
    ----------  -----  -------------  ---
    expert      moa    0.600 ± 0.141    —
    raw pixels  moa            0.200    —
    """
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
