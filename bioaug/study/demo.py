"""``bioaug demo``: the whole pipeline on the synthetic BBBC021 twin, in minutes.

synth (the twin in the published BBBC021 layout) → prepare (illumination correction,
nuclei, single-cell crops) → the protocol comparison of :mod:`bioaug.study.compare`:
MoCo v2 (He et al. 2020; Chen et al. 2020) with a VGG13 encoder trained twice — with the
expert microscopy protocol ``bbbc021-expert`` and with the natural image recipe
``moco-v2-default`` —, each model, their fusion (concatenated L2-normalised features;
Ericsson et al. 2022) and raw pixels (the floor any method must beat) embedded and
evaluated (Leiden and k-means AMI against the MoA, NSC/NSCB 1-NN MoA accuracy and mAP on
treatment profiles, before and after per-plate correction against the DMSO wells, linear
probe) → a summary table, printed and written to ``summary.md``/``summary.csv`` with links
to the UMAP pictures. Training uses each method's own optimiser recipe.

This is the experiment behind the "expert transformations act as supervision" claim of
Bendidi et al. (2023), at a size that fits the machine. Every number is computed by the
run; none is written in.

Plans (:data:`PLANS`): without a GPU the demo shrinks the data, the encoder width, the crop
and the epochs so that ``--quick`` runs in under 3 minutes and the full demo in under 10 on
a 2-core CPU; with CUDA the full demo uses the paper's sizes (VGG13 at full width, 96 px
crops, more data and epochs). Output layout::

    OUT/<plan>/data/twin, OUT/<plan>/data/store    shared by every seed
    OUT/<plan>/seed-<S>/                           the comparison (bioaug.study.compare):
        <protocol>/seed-<S>/run, cells.h5ad, eval-moa/   per protocol
        fused/<a+b>/seed-<S>/…, raw/…                    fusion and raw pixels
        comparison.csv, summary.{md,csv}, timings.json
    OUT/summary.md, OUT/summary.csv                copy of the latest summary

Every stage is skipped when its output is complete, so a rerun (or a killed demo started
again) only does what is missing.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from bioaug.errors import ConfigError
from bioaug.evaluate.metrics import metric_title
from bioaug.io import atomic_path, atomic_write_json, atomic_write_text, provenance
from bioaug.seeds import check_seed
from bioaug.study import stages
from bioaug.study.stages import log

PROTOCOLS = ("bbbc021-expert", "moco-v2-default")


@dataclass(frozen=True)
class DemoPlan:
    """Sizes of every stage of the demo (see :data:`PLANS`)."""

    name: str
    description: str
    # synth: the twin
    plates: int = 6
    sites: int = 2
    field_size: tuple[int, int] = (256, 320)
    cells_per_field: int = 15
    wells_per_plate: int = 12
    # prepare: single-cell crops
    crop_size: int = 64
    resize: int | None = None
    # train: MoCo v2 + VGG13-BN
    protocols: tuple[str, ...] = PROTOCOLS
    method: str = "moco_v2"
    backbone: str = "vgg13_bn"
    width: float = 0.25
    view_crop: int = 48
    epochs: int = 10
    batch_size: int = 64
    method_kwargs: dict[str, Any] = field(default_factory=dict)
    num_workers: int = 0
    # embed / evaluate
    embed_batch: int = 256
    umap_points: int = 5000
    device: str = "cpu"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["field_size"] = list(self.field_size)
        d["protocols"] = list(self.protocols)
        return d


#: The plans; ``gpu`` replaces ``full`` when CUDA is available.
PLANS: dict[str, DemoPlan] = {
    "tiny": DemoPlan(
        name="tiny", description="smoke-test size (seconds): 3 plates, width 1/16, 1 epoch",
        plates=3, sites=1, field_size=(160, 200), cells_per_field=10, wells_per_plate=8,
        crop_size=40, width=0.0625, view_crop=32, epochs=1, batch_size=32,
        umap_points=500),
    "quick": DemoPlan(
        name="quick", description="CPU, under 3 minutes: 6 plates, width 1/8, 32 px crops",
        plates=6, sites=2, field_size=(256, 320), cells_per_field=15, crop_size=64,
        width=0.125, view_crop=32, epochs=10, batch_size=64),
    "full": DemoPlan(
        name="full", description="CPU, under 10 minutes: 6 plates × 3 sites, width 1/4, "
        "48 px crops",
        plates=6, sites=3, field_size=(256, 320), cells_per_field=18, crop_size=64,
        width=0.25, view_crop=48, epochs=16, batch_size=64),
    "gpu": DemoPlan(
        name="gpu", description="CUDA, the paper's sizes: VGG13-BN full width, 96 px crops",
        plates=12, sites=4, field_size=(512, 640), cells_per_field=25, wells_per_plate=16,
        crop_size=96, resize=None, width=1.0, view_crop=96, epochs=100, batch_size=256,
        num_workers=4, device="cuda"),
}


def plan_for(size: str = "full", device: str = "auto") -> DemoPlan:
    """The plan for ``size`` (tiny, quick, full) on ``device`` (auto picks CUDA if present).

    Parameters
    ----------
    size
        ``tiny``, ``quick`` or ``full`` (see :data:`PLANS`); ``full`` on CUDA is the
        ``gpu`` plan.
    device
        ``auto``, ``cpu``, ``cuda`` …

    Returns
    -------
    DemoPlan
        The plan, with ``device`` set to the device it runs on.

    Examples
    --------
    >>> from bioaug.study.demo import plan_for
    >>> plan = plan_for("quick", device="cpu")
    >>> plan.name, plan.device, plan.width, plan.view_crop
    ('quick', 'cpu', 0.125, 32)
    >>> plan_for("huge")
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: unknown demo size 'huge'; use tiny, quick or full
    """
    from bioaug.device import pick_device

    if size not in ("tiny", "quick", "full"):
        raise ConfigError(f"unknown demo size '{size}'; use tiny, quick or full")
    dev = pick_device(device)
    if dev.type == "cuda" and size == "full":
        return replace(PLANS["gpu"], device=str(dev))
    return replace(PLANS[size], device=str(dev))


class Timer:
    """Records the seconds of each stage (and whether it was skipped) in ``timings.json``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.previous: dict[str, Any] = (json.loads(path.read_text(encoding="utf-8"))
                                         if path.is_file() else {})
        self.stages: dict[str, dict[str, Any]] = {}

    def record(self, name: str, result: stages.StageResult) -> None:
        """Stage hook of the comparison: note the seconds of a stage it ran or skipped."""
        if result.skipped:
            prev = self.previous.get(name, {}).get("seconds")
            self.stages[name] = {"seconds": 0.0, "skipped": True, "previous_seconds": prev}
            log(f"  {name:<28} done already, skipped" + (f" (took {prev:.1f}s)" if prev else ""))
            return
        self.stages[name] = {"seconds": round(result.seconds, 2), "skipped": False}
        log(f"  {name:<28} {result.seconds:7.1f}s")
        self.save()

    def run(self, name: str, fn: Callable[[], Any], done: Callable[[], bool]) -> Any:
        if done():
            prev = self.previous.get(name, {}).get("seconds")
            self.stages[name] = {"seconds": 0.0, "skipped": True, "previous_seconds": prev}
            log(f"  {name:<28} done already, skipped"
                 + (f" (took {prev:.1f}s)" if prev else ""))
            return None
        log(f"  {name:<28} running …")
        t0 = time.perf_counter()
        result = fn()
        sec = time.perf_counter() - t0
        self.stages[name] = {"seconds": round(sec, 2), "skipped": False}
        log(f"  {name:<28} {sec:7.1f}s")
        self.save()
        return result

    def save(self) -> None:
        merged = {**self.previous}
        for k, v in self.stages.items():
            if not v["skipped"]:
                merged[k] = v
        atomic_write_json(self.path, merged)
        self.previous = merged

    def table(self) -> list[tuple[str, str]]:
        rows = []
        for k, v in self.stages.items():
            if v["skipped"]:
                prev = v.get("previous_seconds")
                rows.append((k, f"skipped (earlier: {prev:.1f}s)" if prev else "skipped"))
            else:
                rows.append((k, f"{v['seconds']:.1f}s"))
        return rows


def _check_plan(plan_dir: Path, plan: DemoPlan) -> None:
    """A plan directory is only reused by the same plan (sizes decide every output)."""
    f = plan_dir / "plan.json"
    current = {k: v for k, v in plan.to_dict().items() if k not in ("device", "description")}
    if f.is_file():
        old = json.loads(f.read_text(encoding="utf-8"))
        old = {k: v for k, v in old.items() if k not in ("device", "description")}
        if old != current:
            diffs = [f"{k}: {old.get(k)!r} → {current.get(k)!r}"
                     for k in sorted(set(old) | set(current)) if old.get(k) != current.get(k)]
            raise ConfigError(f"{plan_dir} was made with other demo sizes: " + "; ".join(diffs),
                              hint="choose another --out, or delete that folder to start over")
    else:
        atomic_write_json(f, plan.to_dict())


def train_settings(plan: DemoPlan) -> dict[str, Any]:
    """The :class:`TrainConfig` fields the plan sets; the optimiser is the method's recipe.

    Parameters
    ----------
    plan
        A demo plan (:data:`PLANS`, :func:`plan_for`).

    Returns
    -------
    dict
        ``method``, ``backbone``, ``width``, ``crop`` (the view crop), ``epochs``,
        ``batch_size``, ``num_workers``, ``method_kwargs`` and ``tensorboard``; no
        optimiser setting.

    Examples
    --------
    >>> from bioaug.study.demo import PLANS, train_settings
    >>> settings = train_settings(PLANS["tiny"])
    >>> settings["method"], settings["backbone"], settings["width"], settings["crop"]
    ('moco_v2', 'vgg13_bn', 0.0625, 32)
    >>> settings["epochs"], settings["batch_size"], "lr" in settings
    (1, 32, False)
    """
    return {"method": plan.method, "backbone": plan.backbone, "width": plan.width,
            "crop": plan.view_crop, "epochs": plan.epochs, "batch_size": plan.batch_size,
            "num_workers": plan.num_workers, "method_kwargs": dict(plan.method_kwargs),
            "tensorboard": False}


#: Metric columns of the summary (names from :data:`bioaug.evaluate.metrics.METRICS`).
SUMMARY_METRICS: tuple[str, ...] = ("leiden_ami", "kmeans_ami", "nsc", "nscb", "moa_map",
                                    "linear_accuracy")
#: Profiling metrics also shown after per-plate correction (when the twin has controls).
CORRECTED_METRICS: tuple[str, ...] = ("nsc_corrected", "nscb_corrected", "moa_map_corrected")
#: The correction the demo applies before profiling again (a ``bioaug profile`` recipe):
#: per-plate centring on the DMSO cells, then whitening fitted on every DMSO cell (PCA, so
#: it stays defined for raw pixels, wider than the twin has control cells).
DEMO_PROFILE: dict[str, Any] = {
    "correct_at": "cell", "control": "moa=DMSO",
    "steps": ["center", {"sphere": {"scope": "global", "method": "pca"}}]}


def summary_frame(table: pd.DataFrame) -> pd.DataFrame:
    """The demo's summary: one row per embedding, the summary metrics and the report link."""
    metrics = [m for m in (*SUMMARY_METRICS, *CORRECTED_METRICS) if m in table.columns]
    df = table[["embedding", *metrics, "report"]].copy()
    df["report"] = [f"{r}/report.md" for r in df["report"]]
    return df.reset_index(drop=True)


def _fmt(v: Any) -> str:
    return "—" if v is None or (isinstance(v, float) and v != v) else f"{v:.3f}"


def _metric_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c not in ("embedding", "report")]


def summary_text(df: pd.DataFrame) -> str:
    """Fixed-width table for the terminal."""
    cols = _metric_columns(df)
    head = ["embedding", *[metric_title(c) for c in cols]]
    rows = [[str(r["embedding"]), *[_fmt(r[c]) for c in cols]] for _, r in df.iterrows()]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(  # noqa: E731
        c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths,
                                                                              strict=True)))
    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])


def summary_markdown(df: pd.DataFrame, plan: DemoPlan, seed: int, timings: list[tuple[str, str]],
                     first: Any, prefix: str = "") -> str:
    """``summary.md``: the table, what each column means, the UMAPs and the timings."""
    inp = first.input
    prof = first.profiling
    cols = _metric_columns(df)
    lines = [
        "# bioaug demo: expert vs default augmentation on the synthetic BBBC021 twin", "",
        f"Plan **{plan.name}** ({plan.description}); device `{plan.device}`; seed {seed}.",
        f"MoCo v2 + {plan.backbone} (width {plan.width}, the method's optimiser recipe), "
        f"{plan.epochs} epochs, batch {plan.batch_size}, {plan.view_crop} px views of "
        f"{plan.resize or plan.crop_size} px single-cell crops; {inp.n_items} cells in "
        f"{inp.n_classes} classes (the MoAs present in the twin, and DMSO).", "",
        "| embedding | " + " | ".join(metric_title(c) for c in cols) + " |",
        "|---|" + "---:|" * len(cols)]
    for _, r in df.iterrows():
        lines.append(f"| [{r['embedding']}]({prefix}{r['report']}) | "
                     + " | ".join(_fmt(r[c]) for c in cols) + " |")
    nsc, nscb = prof.nsc, prof.nscb
    lines += ["",
              "AMI: adjusted mutual information between clusters (Leiden at the resolution "
              "giving as many clusters as classes; k-means with k = classes) and the MoA, per "
              "cell. NSC / NSCB: 1-nearest-neighbour MoA accuracy of treatment profiles, "
              "excluding the same compound (NSC"
              + (f", {nsc.n_scored} treatments in {nsc.n_classes} MoAs" if nsc else "")
              + ") and also the same batch (NSCB"
              + (f", {nscb.n_scored} treatments in {nscb.n_classes} MoAs — "
                 "few on a small twin, so read it with care"
                 if nscb else ", not defined here: the twin has too few batches")
              + "). MoA mAP: mean average precision of retrieving same-MoA treatments of "
              "other compounds (copairs-style). '(corrected)': the same after per-plate "
              "centring on the DMSO cells and whitening fitted on them (`bioaug profile`). "
              "Linear accuracy: logistic regression on frozen features, split by compound. "
              "Raw pixels are the floor; the fused row concatenates the two models' "
              "L2-normalised features.", "",
              "## UMAP of the cells, coloured by MoA", ""]
    for _, r in df.iterrows():
        pic = Path(r["report"]).parent / "umap_label.png"
        lines += [f"**{r['embedding']}**", "", f"![{r['embedding']}]({prefix}{pic.as_posix()})",
                  ""]
    lines += ["## Stage timings", "", "| stage | time |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in timings]
    lines += ["", "Numbers are computed by this run; rerun `bioaug demo` to reproduce them "
              "(finished stages are skipped)."]
    return "\n".join(lines) + "\n"


def check_seeds(seeds: list[int] | tuple[int, ...]) -> list[int]:
    """The demo's seeds: one or more distinct seeds, each by the one seed rule
    (:func:`bioaug.seeds.check_seed`: 0 … 2**32 - 1).

    Parameters
    ----------
    seeds
        The seeds given on the command line.

    Returns
    -------
    list of int
        The seeds, checked.

    Examples
    --------
    >>> from bioaug.study.demo import check_seeds
    >>> check_seeds((0, 1, 2))
    [0, 1, 2]
    >>> check_seeds([3, 3])
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: --seed: give one or more seeds, each seed once; got 3 3
    """
    seeds = [check_seed(s, "--seed") for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seed: give one or more seeds, each seed once; got "
                          f"{' '.join(map(str, seeds)) or 'none'}")
    return seeds


def run_demo(out: str | Path = "demo-out", plan: DemoPlan | None = None, *,
             seed: int = 0) -> pd.DataFrame:
    """Run (or resume) the demo; returns the summary table.

    Parameters
    ----------
    out
        Output folder (layout in the module docstring).
    plan
        Sizes of every stage (default: :func:`plan_for` ``("full")``).
    seed
        Seed of the training runs and the evaluation (0 … 2**32 - 1).

    Returns
    -------
    One row per embedding: the :data:`SUMMARY_METRICS` (and the corrected ones) and the
    path of its report.
    """
    from bioaug.study.compare import compare_protocols, train_configs

    check_seed(seed, "seed")
    plan = plan or plan_for("full")
    out = Path(out).resolve()
    plan_dir = out / plan.name
    twin, store = plan_dir / "data" / "twin", plan_dir / "data" / "store"
    run_dir = plan_dir / f"seed-{seed}"
    train_configs(store, plan.protocols, run_dir, train=train_settings(plan), seeds=(seed,),
                  device=plan.device)  # every option checked before the first stage
    plan_dir.mkdir(parents=True, exist_ok=True)
    _check_plan(plan_dir, plan)
    run_dir.mkdir(parents=True, exist_ok=True)
    timer = Timer(run_dir / "timings.json")
    t_all = time.perf_counter()
    log(f"bioaug demo — plan '{plan.name}' ({plan.description}), device {plan.device}, "
        f"seed {seed}\n  output: {run_dir}")

    _make_data(twin, store, plan, timer)
    table = compare_protocols(
        store, plan.protocols, run_dir, labels=("moa",), train=train_settings(plan),
        seeds=(seed,), device=plan.device, embed_batch=plan.embed_batch, raw=True,
        fuse=[plan.protocols] if len(plan.protocols) > 1 else [],
        evaluate_kwargs={"umap_points": plan.umap_points, "profile": dict(DEMO_PROFILE),
                         "profiling_mode": "auto"},
        on_stage=timer.record)
    total = time.perf_counter() - t_all
    df = summary_frame(table)
    _write_summaries(out, run_dir, df, plan, seed, timer, total)
    return df


def _make_data(twin: Path, store: Path, plan: DemoPlan, timer: Timer) -> None:
    """The synthetic BBBC021 twin and its crop store (skipped when already made)."""
    from bioaug.data.prepare import prepare_bbbc021
    from bioaug.data.store import is_store
    from bioaug.data.synth import synth_bbbc021

    timer.run("synth twin", lambda: synth_bbbc021(
        twin, plates=plan.plates, sites=plan.sites, size=plan.field_size,
        cells_per_field=plan.cells_per_field, wells_per_plate=plan.wells_per_plate, seed=0),
        lambda: (twin / "BBBC021_v1_image.csv").is_file())
    timer.run("prepare store", lambda: prepare_bbbc021(
        twin, store, crop_size=plan.crop_size, resize=plan.resize, moa_only=True),
        lambda: is_store(store))


def _write_summaries(out: Path, run_dir: Path, df: pd.DataFrame, plan: DemoPlan, seed: int,
                     timer: Timer, total: float) -> None:
    """``summary.csv``/``summary.md`` of the seed (and of ``out``), ``demo.json``, and the
    timings and summary on the terminal."""
    from bioaug.evaluate import EvaluationReport

    timings = [*timer.table(), ("total (this invocation)", f"{total:.1f}s")]
    first = EvaluationReport.read(run_dir / df["report"].iloc[0].replace("report.md",
                                                                         "report.json"))
    with atomic_path(run_dir / "summary.csv") as tmp:
        df.to_csv(tmp, index=False)
    atomic_write_text(run_dir / "summary.md", summary_markdown(df, plan, seed, timings, first))
    rel = run_dir.relative_to(out)
    atomic_write_text(out / "summary.md", summary_markdown(
        df, plan, seed, timings, first, prefix=f"{rel.as_posix()}/"))
    shutil.copyfile(run_dir / "summary.csv", out / ".summary.csv.tmp")
    (out / ".summary.csv.tmp").replace(out / "summary.csv")
    atomic_write_json(run_dir / "demo.json", {
        "plan": plan.to_dict(), "seed": seed, "timings": dict(timer.table()),
        "total_seconds": round(total, 2), "provenance": provenance(stage="demo")})
    print("\nStage timings:")
    for k, v in timings:
        print(f"  {k:<28} {v}")
    print(f"\nSummary (plan '{plan.name}', seed {seed}):\n")
    print(summary_text(df))
    print(f"\nwritten: {out / 'summary.md'} (pictures and per-embedding reports under "
          f"{run_dir})")


# -- several seeds ------------------------------------------------------------------------
#: Comparisons the multi-seed summary checks: (claim, embedding expected higher, embedding
#: expected lower, metric) — the claims of Bendidi et al. (2023) at the demo's size.
SEED_CLAIMS: tuple[tuple[str, str, str, str], ...] = (
    ("expert beats default on Leiden AMI", "bbbc021-expert", "moco-v2-default", "leiden_ami"),
    ("expert beats default on k-means AMI", "bbbc021-expert", "moco-v2-default",
     "kmeans_ami"),
    ("expert beats raw pixels on Leiden AMI", "bbbc021-expert", "raw pixels", "leiden_ami"),
    ("expert beats raw pixels on NSC", "bbbc021-expert", "raw pixels", "nsc"),
    ("expert beats raw pixels on NSC (corrected)", "bbbc021-expert", "raw pixels", "nsc_corrected"),
)


def seed_summary(frames: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """Mean, sd and n over seeds of every summary metric, one row per embedding.

    ``frames`` maps a seed to its :func:`summary_frame`; the sd is the sample sd (0 for
    one seed).
    """
    long = pd.concat([f.assign(seed=s) for s, f in frames.items()], ignore_index=True)
    metrics = [c for c in _metric_columns(long) if c != "seed"]
    rows = []
    for emb, g in long.groupby("embedding", sort=False):
        row: dict[str, Any] = {"embedding": emb, "n_seeds": len(g)}
        for m in metrics:
            vals = pd.to_numeric(g[m], errors="coerce").dropna()
            row[f"{m}_mean"] = float(vals.mean()) if len(vals) else float("nan")
            row[f"{m}_sd"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
        rows.append(row)
    return pd.DataFrame(rows)


def _claim_row(summary: pd.DataFrame, better: str, worse: str, metric: str
               ) -> tuple[float, float, str] | None:
    """(difference of means, larger of the two sds, verdict); None when not measured."""
    rows = {str(r["embedding"]): r for _, r in summary.iterrows()}
    if better not in rows or worse not in rows or f"{metric}_mean" not in summary.columns:
        return None
    b, w = rows[better], rows[worse]
    diff = float(b[f"{metric}_mean"] - w[f"{metric}_mean"])
    if diff != diff:  # NaN: the metric is undefined here
        return None
    sd = float(max(b[f"{metric}_sd"], w[f"{metric}_sd"]))
    if b["n_seeds"] < 2:
        verdict = "higher (one seed: no sd)" if diff > 0 else "not higher"
    elif diff > sd:
        verdict = "yes, by more than one sd"
    elif diff > 0:
        verdict = "higher, within one sd"
    else:
        verdict = "no"
    return diff, sd, verdict


def seed_summary_markdown(summary: pd.DataFrame, plan: DemoPlan, seeds: list[int]) -> str:
    """``summary_seeds.md``: mean ± sd per embedding and the papers' claims checked."""
    metrics = [c[:-5] for c in summary.columns if c.endswith("_mean")]
    lines = ["# bioaug demo over several seeds", "",
             f"Plan **{plan.name}** ({plan.description}); seeds {', '.join(map(str, seeds))}; "
             "mean ± sd over seeds (the twin is the same for every seed; training, "
             "embedding and clustering change).", "",
             "| embedding | " + " | ".join(metric_title(m) for m in metrics) + " |",
             "|---|" + "---:|" * len(metrics)]
    for _, r in summary.iterrows():
        cells = []
        for m in metrics:
            mean, sd = r[f"{m}_mean"], r[f"{m}_sd"]
            cells.append("—" if mean != mean else
                         f"{mean:.3f} ± {sd:.3f}" if r["n_seeds"] > 1 else f"{mean:.3f}")
        lines.append(f"| {r['embedding']} | " + " | ".join(cells) + " |")
    lines += ["", "## Claims checked", "",
              "| claim | difference of means | larger sd | verdict |", "|---|---:|---:|---|"]
    for name, better, worse, metric in SEED_CLAIMS:
        row = _claim_row(summary, better, worse, metric)
        if row is not None:
            diff, sd, verdict = row
            lines.append(f"| {name} | {diff:+.3f} | {sd:.3f} | {verdict} |")
    lines += ["", "Computed by this run from each seed's `summary.csv`; nothing is written "
              "in. Read NSCB with care on a small twin (few treatments)."]
    return "\n".join(lines) + "\n"


def run_demo_seeds(out: str | Path = "demo-out", plan: DemoPlan | None = None, *,
                   seeds: list[int] | tuple[int, ...] = (0, 1, 2)) -> pd.DataFrame:
    """Run (or resume) the demo once per seed, then summarise over the seeds.

    Each seed is a full :func:`run_demo` (its own folder ``OUT/<plan>/seed-<S>``; the twin
    and the store are shared). Writes ``OUT/<plan>/summary_seeds.{md,csv}`` and a copy of
    the markdown at ``OUT/summary_seeds.md``: mean ± sd per embedding and the comparisons
    of :data:`SEED_CLAIMS` (is the difference of means larger than one sd?).

    Returns
    -------
    The :func:`seed_summary` table.
    """
    seeds = check_seeds(seeds)
    plan = plan or plan_for("full")
    frames = {s: run_demo(out, plan, seed=s) for s in seeds}
    summary = seed_summary(frames)
    plan_dir = Path(out).resolve() / plan.name
    with atomic_path(plan_dir / "summary_seeds.csv") as tmp:
        summary.to_csv(tmp, index=False)
    text = seed_summary_markdown(summary, plan, seeds)
    atomic_write_text(plan_dir / "summary_seeds.md", text)
    atomic_write_text(Path(out).resolve() / "summary_seeds.md", text)
    print(f"\nOver seeds {', '.join(map(str, seeds))}:\n")
    print(text)
    return summary
