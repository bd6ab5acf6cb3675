"""``bioaug demo``: the whole pipeline on the synthetic BBBC021 twin, in minutes.

synth (the twin in the published BBBC021 layout) → prepare (illumination correction,
nuclei, single-cell crops) → train MoCo v2 (He et al. 2020; Chen et al. 2020) with a VGG13
encoder twice — with the expert microscopy protocol ``bbbc021-expert`` and with the natural
image recipe ``moco-v2-default`` — → embed the store with each model, with their fusion
(concatenated L2-normalised features; Ericsson et al. 2022) and with raw pixels (the floor
any method must beat) → evaluate (Leiden and k-means AMI against the MoA, NSC/NSCB 1-NN
MoA accuracy on treatment profiles, linear probe) → a summary table, printed and written to
``summary.md``/``summary.csv`` with links to the UMAP pictures.

This is the experiment behind the "expert transformations act as supervision" claim of
Bendidi et al. (2023), at a size that fits the machine. Every number is computed by the
run; none is written in.

Plans (:data:`PLANS`): without a GPU the demo shrinks the data, the encoder width, the crop
and the epochs so that ``--quick`` runs in under 3 minutes and the full demo in under 10 on
a 2-core CPU; with CUDA the full demo uses the paper's sizes (VGG13 at full width, 96 px
crops, more data and epochs). Output layout::

    OUT/<plan>/data/twin, OUT/<plan>/data/store    shared by every seed
    OUT/<plan>/seed-<S>/runs/<protocol>/           training runs
    OUT/<plan>/seed-<S>/embeddings/{models,raw}.h5ad
    OUT/<plan>/seed-<S>/eval/<embedding>/          evaluation reports and pictures
    OUT/<plan>/seed-<S>/summary.{md,csv}, timings.json
    OUT/summary.md, OUT/summary.csv                copy of the latest summary

Every stage is skipped when its output is complete, so a rerun (or a killed demo started
again) only does what is missing.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from bioaug.errors import ConfigError
from bioaug.io import atomic_path, atomic_write_json, atomic_write_text, provenance
from bioaug.study import stages
from bioaug.study.results import dig

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
    lr: float = 0.06
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
        lr=0.03, num_workers=4, device="cuda"),
}


def plan_for(size: str = "full", device: str = "auto") -> DemoPlan:
    """The plan for ``size`` (tiny, quick, full) on ``device`` (auto picks CUDA if present)."""
    from bioaug.device import pick_device

    if size not in ("tiny", "quick", "full"):
        raise ConfigError(f"unknown demo size '{size}'; use tiny, quick or full")
    dev = pick_device(device)
    if dev.type == "cuda" and size == "full":
        return replace(PLANS["gpu"], device=str(dev))
    return replace(PLANS[size], device=str(dev))


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Timer:
    """Records the seconds of each stage (and whether it was skipped) in ``timings.json``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.previous: dict[str, Any] = (json.loads(path.read_text(encoding="utf-8"))
                                         if path.is_file() else {})
        self.stages: dict[str, dict[str, Any]] = {}

    def run(self, name: str, fn: Callable[[], Any], done: Callable[[], bool]) -> Any:
        if done():
            prev = self.previous.get(name, {}).get("seconds")
            self.stages[name] = {"seconds": 0.0, "skipped": True, "previous_seconds": prev}
            _log(f"  {name:<28} done already, skipped"
                 + (f" (took {prev:.1f}s)" if prev else ""))
            return None
        _log(f"  {name:<28} running …")
        t0 = time.perf_counter()
        result = fn()
        sec = time.perf_counter() - t0
        self.stages[name] = {"seconds": round(sec, 2), "skipped": False}
        _log(f"  {name:<28} {sec:7.1f}s")
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


@dataclass
class DemoPaths:
    root: Path
    plan_dir: Path
    run_dir: Path

    @property
    def twin(self) -> Path:
        return self.plan_dir / "data" / "twin"

    @property
    def store(self) -> Path:
        return self.plan_dir / "data" / "store"

    def run(self, protocol: str) -> Path:
        return self.run_dir / "runs" / protocol

    @property
    def models_h5ad(self) -> Path:
        return self.run_dir / "embeddings" / "models.h5ad"

    @property
    def raw_h5ad(self) -> Path:
        return self.run_dir / "embeddings" / "raw.h5ad"

    def eval_dir(self, name: str) -> Path:
        return self.run_dir / "eval" / name


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


def _train_config(plan: DemoPlan, paths: DemoPaths, protocol: str, seed: int) -> Any:
    from bioaug.train.config import make_config

    return make_config({
        "data": str(paths.store), "protocol": protocol, "out": str(paths.run(protocol)),
        "method": plan.method, "backbone": plan.backbone, "width": plan.width,
        "crop": plan.view_crop, "epochs": plan.epochs, "batch_size": plan.batch_size,
        "lr": plan.lr, "seed": seed, "device": plan.device, "num_workers": plan.num_workers,
        "method_kwargs": dict(plan.method_kwargs), "tensorboard": False,
    }, source=f"demo plan '{plan.name}'")


#: Summary rows: (label, h5ad attribute, obsm key, evaluation folder name).
def _embeddings(plan: DemoPlan) -> list[tuple[str, str, str, str]]:
    rows = [(p, "models", f"X_bioaug_{i}", p) for i, p in enumerate(plan.protocols)]
    if len(plan.protocols) > 1:
        rows.append(("fused (" + " + ".join(plan.protocols) + ")", "models", "X_bioaug_fused",
                     "fused"))
    rows.append(("raw pixels", "raw", "X_bioaug", "raw"))
    return rows


SUMMARY_COLUMNS = {
    "leiden_ami": ("clustering", "leiden", "ami"),
    "kmeans_ami": ("clustering", "kmeans", "ami"),
    "nsc": ("profiling", "nsc", "accuracy"),
    "nscb": ("profiling", "nscb", "accuracy"),
    "linear_accuracy": ("linear", "accuracy"),
}


def summary_frame(reports: dict[str, dict[str, Any]], folders: dict[str, str]) -> pd.DataFrame:
    rows = []
    for label, report in reports.items():
        row: dict[str, Any] = {"embedding": label}
        for col, keys in SUMMARY_COLUMNS.items():
            v = dig(report, keys)
            row[col] = float(v) if v is not None else None
        prof = report.get("profiling") or {}
        row["nsc_treatments"] = (prof.get("nsc") or {}).get("n_scored")
        row["nscb_treatments"] = (prof.get("nscb") or {}).get("n_scored")
        row["n_cells"] = (report.get("input") or {}).get("n_items")
        row["n_classes"] = (report.get("input") or {}).get("n_classes")
        row["report"] = f"eval/{folders[label]}/report.md"
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt(v: Any) -> str:
    return "—" if v is None or (isinstance(v, float) and v != v) else f"{v:.3f}"


def summary_text(df: pd.DataFrame) -> str:
    """Fixed-width table for the terminal."""
    head = ["embedding", "Leiden AMI", "k-means AMI", "NSC", "NSCB", "linear acc"]
    cols = ["leiden_ami", "kmeans_ami", "nsc", "nscb", "linear_accuracy"]
    rows = [[str(r["embedding"]), *[_fmt(r[c]) for c in cols]] for _, r in df.iterrows()]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(  # noqa: E731
        c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths,
                                                                              strict=True)))
    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])


def summary_markdown(df: pd.DataFrame, plan: DemoPlan, seed: int, timings: list[tuple[str, str]],
                     reports: dict[str, dict[str, Any]], folders: dict[str, str],
                     prefix: str = "") -> str:
    first = next(iter(reports.values()))
    inp = first.get("input") or {}
    prof = first.get("profiling") or {}
    lines = [
        "# bioaug demo: expert vs default augmentation on the synthetic BBBC021 twin", "",
        f"Plan **{plan.name}** ({plan.description}); device `{plan.device}`; seed {seed}.",
        f"MoCo v2 + {plan.backbone} (width {plan.width}), {plan.epochs} epochs, batch "
        f"{plan.batch_size}, {plan.view_crop} px views of {plan.resize or plan.crop_size} px "
        f"single-cell crops; {inp.get('n_items')} cells in {inp.get('n_classes')} classes "
        "(the MoAs present in the twin, and DMSO).", "",
        "| embedding | Leiden AMI | k-means AMI | NSC | NSCB | linear accuracy |",
        "|---|---:|---:|---:|---:|---:|"]
    for _, r in df.iterrows():
        lines.append(f"| [{r['embedding']}]({prefix}{r['report']}) | {_fmt(r['leiden_ami'])} | "
                     f"{_fmt(r['kmeans_ami'])} | {_fmt(r['nsc'])} | {_fmt(r['nscb'])} | "
                     f"{_fmt(r['linear_accuracy'])} |")
    nsc = prof.get("nsc") or {}
    nscb = prof.get("nscb") or {}
    lines += ["",
              "AMI: adjusted mutual information between clusters (Leiden at the resolution "
              "giving as many clusters as classes; k-means with k = classes) and the MoA, per "
              "cell. NSC / NSCB: 1-nearest-neighbour MoA accuracy of treatment profiles, "
              "excluding the same compound (NSC"
              + (f", {nsc.get('n_scored')} treatments in {nsc.get('n_classes')} MoAs"
                 if nsc else "")
              + ") and also the same batch (NSCB"
              + (f", {nscb.get('n_scored')} treatments in {nscb.get('n_classes')} MoAs — "
                 "few on a small twin, so read it with care"
                 if nscb else ", not defined here: the twin has too few batches")
              + "). Linear accuracy: logistic regression on frozen features, split by "
              "compound. Raw pixels are the floor; the fused row concatenates the two "
              "models' L2-normalised features.", "",
              "## UMAP of the cells, coloured by MoA", ""]
    for label, folder in folders.items():
        pic = Path("eval") / folder / "umap_label.png"
        lines += [f"**{label}**", "", f"![{label}]({prefix}{pic})", ""]
    lines += ["## Stage timings", "", "| stage | time |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in timings]
    lines += ["", "Numbers are computed by this run; rerun `bioaug demo` to reproduce them "
              "(finished stages are skipped)."]
    return "\n".join(lines) + "\n"


def run_demo(out: str | Path = "demo-out", plan: DemoPlan | None = None, *,
             seed: int = 0) -> pd.DataFrame:
    """Run (or resume) the demo; returns the summary table."""
    plan = plan or plan_for("full")
    out = Path(out).resolve()
    plan_dir = out / plan.name
    paths = DemoPaths(root=out, plan_dir=plan_dir, run_dir=plan_dir / f"seed-{seed}")
    plan_dir.mkdir(parents=True, exist_ok=True)
    _check_plan(plan_dir, plan)
    paths.run_dir.mkdir(parents=True, exist_ok=True)
    timer = Timer(paths.run_dir / "timings.json")
    t_all = time.perf_counter()
    _log(f"bioaug demo — plan '{plan.name}' ({plan.description}), device {plan.device}, "
         f"seed {seed}\n  output: {paths.run_dir}")

    from bioaug.data.prepare import prepare_bbbc021
    from bioaug.data.store import is_store
    from bioaug.data.synth import synth_bbbc021

    twin_done = lambda: (paths.twin / "BBBC021_v1_image.csv").is_file()  # noqa: E731
    timer.run("synth twin", lambda: synth_bbbc021(
        paths.twin, plates=plan.plates, sites=plan.sites, size=plan.field_size,
        cells_per_field=plan.cells_per_field, wells_per_plate=plan.wells_per_plate, seed=0),
        twin_done)
    timer.run("prepare store", lambda: prepare_bbbc021(
        paths.twin, paths.store, crop_size=plan.crop_size, resize=plan.resize,
        moa_only=True), lambda: is_store(paths.store))

    for protocol in plan.protocols:
        cfg = _train_config(plan, paths, protocol, seed)
        timer.run(f"train {protocol}", lambda cfg=cfg: stages.train_stage(cfg),
                  lambda p=protocol: stages.run_finished(paths.run(p)))

    runs = [paths.run(p) for p in plan.protocols]
    timer.run("embed models (+fusion)", lambda: stages.embed_stage(
        runs, paths.store, paths.models_h5ad, batch_size=plan.embed_batch, device=plan.device),
        paths.models_h5ad.is_file)
    timer.run("embed raw pixels", lambda: stages.embed_stage(
        [], paths.store, paths.raw_h5ad, raw=True, batch_size=plan.embed_batch,
        device=plan.device), paths.raw_h5ad.is_file)

    reports: dict[str, dict[str, Any]] = {}
    folders: dict[str, str] = {}
    for label, source, rep, folder in _embeddings(plan):
        h5ad = paths.models_h5ad if source == "models" else paths.raw_h5ad
        eval_dir = paths.eval_dir(folder)
        timer.run(f"evaluate {folder}", lambda h5ad=h5ad, rep=rep, eval_dir=eval_dir:
                  stages.evaluate_stage(h5ad, eval_dir, label="moa", rep=rep, seed=seed,
                                        umap_points=plan.umap_points),
                  (eval_dir / "report.json").is_file)
        reports[label] = json.loads((eval_dir / "report.json").read_text(encoding="utf-8"))
        folders[label] = folder

    total = time.perf_counter() - t_all
    timings = [*timer.table(), ("total (this invocation)", f"{total:.1f}s")]
    df = summary_frame(reports, folders)
    with atomic_path(paths.run_dir / "summary.csv") as tmp:
        df.to_csv(tmp, index=False)
    atomic_write_text(paths.run_dir / "summary.md",
                      summary_markdown(df, plan, seed, timings, reports, folders))
    rel = paths.run_dir.relative_to(out)
    atomic_write_text(out / "summary.md", summary_markdown(
        df, plan, seed, timings, reports, folders, prefix=f"{rel.as_posix()}/"))
    shutil.copyfile(paths.run_dir / "summary.csv", out / ".summary.csv.tmp")
    (out / ".summary.csv.tmp").replace(out / "summary.csv")
    atomic_write_json(paths.run_dir / "demo.json", {
        "plan": plan.to_dict(), "seed": seed, "timings": dict(timer.table()),
        "total_seconds": round(total, 2), "provenance": provenance(stage="demo")})

    print("\nStage timings:")
    for k, v in timings:
        print(f"  {k:<28} {v}")
    print(f"\nSummary (plan '{plan.name}', seed {seed}):\n")
    print(summary_text(df))
    print(f"\nwritten: {out / 'summary.md'} (pictures and per-embedding reports under "
          f"{paths.run_dir})")
    return df
