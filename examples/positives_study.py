"""Positives across cells of one treatment: does learning ignore the plate?

Reproduces: the weak-label idea of WS-DINO (Cross et al. 2022, "Weakly supervised DINO
for profiling cell images": the compound as a label, scored by NSC / NSCB) within a
self-supervised method. MoCo v2 + VGG13-BN with the expert protocol is trained three
ways on the BBBC021 twin — ``plain`` (two views of one crop), ``same_treatment`` (the
second view from another cell of the same treatment) and ``same_treatment_other_plate``
(from another plate whenever the treatment is on several; controls always pair across
plates) — and compared with raw pixels by NSC, NSCB, NSC after per-plate correction and
MoA mAP (mean ± sd over seeds). Training only sees the compound and concentration, never
the MoA, and NSC / NSCB leave the compound out, so the scores are not told the answer.

The per-plate analysis asks how much of each plate the features still carry: a
logistic-regression probe predicts the plate from the cell features (5-fold
cross-validated accuracy, on every cell and on the DMSO cells alone, where the plate is
the only thing that differs; chance is one over the number of plates).

Data: the synthetic BBBC021 twin, made on the fly (no download).

Sizes: the default uses the sizes of ``bioaug demo --quick`` (6 plates, width 1/8, 32 px
views, 10 epochs) over seeds 0, 1, 2; ``--quick`` the demo's ``tiny`` sizes and one seed.

Time: ``--quick`` ≈ 1 min on a 2-core CPU; the default ≈ 15–20 min on a 2-core CPU.

    python examples/positives_study.py --quick --out runs/positives-quick
    python examples/positives_study.py --out runs/positives
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: condition → ``--positives``
CONDITIONS = {"plain": "same_cell", "same_treatment": "same_treatment",
              "same_treatment_other_plate": "same_treatment_other_plate"}
METRICS = ("nsc", "nscb", "nsc_corrected", "nscb_corrected", "moa_map")
PLATE_METRICS = ("plate_acc_all", "plate_acc_dmso")
TITLES = {"nsc": "NSC", "nscb": "NSCB", "nsc_corrected": "NSC (corr.)",
          "nscb_corrected": "NSCB (corr.)", "moa_map": "MoA mAP",
          "plate_acc_all": "plate acc. (all)", "plate_acc_dmso": "plate acc. (DMSO)"}


def plate_predictability(x: np.ndarray, obs: pd.DataFrame, seed: int = 0) -> dict[str, float]:
    """5-fold accuracy of a logistic regression predicting the plate from the features, on
    every cell and on the DMSO cells only (standardised features, PCA to 50 dims)."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def score(mask: np.ndarray) -> float:
        xs, ys = x[mask], obs["plate"].astype(str).to_numpy()[mask]
        dims = min(50, xs.shape[1], len(xs) // 2)
        model = make_pipeline(StandardScaler(), PCA(dims, random_state=seed),
                              LogisticRegression(max_iter=500))
        folds = StratifiedKFold(5, shuffle=True, random_state=seed)
        return float(cross_val_score(model, xs, ys, cv=folds).mean())

    dmso = obs["compound"].astype(str).str.lower().eq("dmso").to_numpy()
    return {"plate_acc_all": score(np.ones(len(x), bool)), "plate_acc_dmso": score(dmso)}


def evaluate_one(h5ad: Path, folder: Path, seed: int) -> dict[str, Any]:
    """The study's metrics of one embedding (the evaluation stage is resumable)."""
    import anndata as ad

    from bioaug.evaluate.metrics import metric_values
    from bioaug.study import stages
    from bioaug.study.demo import DEMO_PROFILE

    with warnings.catch_warnings():  # the leakage note is in each report.md
        warnings.simplefilter("ignore", UserWarning)
        _, report = stages.evaluate_stage(h5ad, folder, label="moa", seed=seed, plot=False,
                                          profile=dict(DEMO_PROFILE), profiling_mode="auto")
    row: dict[str, Any] = dict(metric_values(report, list(METRICS)))
    adata = ad.read_h5ad(h5ad)
    row.update(plate_predictability(np.asarray(adata.obsm["X_bioaug"]), adata.obs, seed))
    return row


def run_condition(name: str, store: Path, out: Path, train: dict[str, Any], seed: int,
                  device: str) -> dict[str, Any]:
    """Train (or resume), embed and evaluate one condition and seed."""
    from bioaug.study import stages
    from bioaug.train.config import make_config

    folder = out / name / f"seed-{seed}"
    cfg = make_config({**train, "data": str(store), "protocol": "bbbc021-expert",
                       "out": str(folder / "run"), "seed": seed, "device": device,
                       "positives": CONDITIONS[name]}, source=f"study ({name})")
    stages.train_stage(cfg)
    stages.embed_stage([folder / "run"], store, folder / "cells.h5ad", device=device)
    return {"condition": name, "seed": seed, **evaluate_one(folder / "cells.h5ad",
                                                            folder / "eval", seed)}


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd over seeds per condition."""
    cols = [*METRICS, *PLATE_METRICS]
    agg = rows.groupby("condition", sort=False)[cols].agg(["mean", "std"])
    agg.columns = [f"{m}_{s}" for m, s in agg.columns]
    agg.insert(0, "n_seeds", rows.groupby("condition", sort=False).size())
    return agg.reset_index()


def markdown(summary: pd.DataFrame, n_plates: int) -> str:
    cols = [*METRICS, *PLATE_METRICS]
    lines = ["| condition | " + " | ".join(TITLES[c] for c in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    for _, r in summary.iterrows():
        cells = []
        for c in cols:
            mean, sd = r[f"{c}_mean"], r[f"{c}_std"]
            cells.append("—" if mean != mean else f"{mean:.3f}" if r["n_seeds"] < 2 or
                         sd != sd else f"{mean:.3f} ± {sd:.3f}")
        lines.append(f"| {r['condition']} | " + " | ".join(cells) + " |")
    lines.append(f"\nPlate accuracy: chance = {1 / n_plates:.3f} ({n_plates} plates); lower "
                 "means the features carry less of the plate.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/positives-study"))
    ap.add_argument("--quick", action="store_true", help="one seed, the demo's tiny sizes")
    ap.add_argument("--seeds", type=int, nargs="+", help="override the seeds")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)

    from bioaug.data.prepare import prepare_bbbc021
    from bioaug.data.store import Store, is_store
    from bioaug.data.synth import synth_bbbc021
    from bioaug.study import stages
    from bioaug.study.demo import PLANS, train_settings

    plan = PLANS["tiny" if args.quick else "quick"]
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    out = args.out.resolve()
    twin, store = out / "data" / "twin", out / "data" / "store"
    if not (twin / "BBBC021_v1_image.csv").is_file():
        synth_bbbc021(twin, plates=plan.plates, sites=plan.sites, size=plan.field_size,
                      cells_per_field=plan.cells_per_field,
                      wells_per_plate=plan.wells_per_plate, seed=0)
    if not is_store(store):
        prepare_bbbc021(twin, store, crop_size=plan.crop_size, resize=plan.resize,
                        moa_only=True)
    train = train_settings(plan)
    rows = [run_condition(name, store, out, train, seed, args.device)
            for seed in seeds for name in CONDITIONS]
    stages.embed_stage([], store, out / "raw" / "cells.h5ad", raw=True, device=args.device)
    rows.append({"condition": "raw pixels", "seed": 0,
                 **evaluate_one(out / "raw" / "cells.h5ad", out / "raw" / "eval", 0)})
    table = pd.DataFrame(rows)
    table.to_csv(out / "results.csv", index=False)
    summary = summarise(table)
    summary.to_csv(out / "summary.csv", index=False)
    n_plates = Store.open(store).obs["plate"].nunique()
    text = (f"# Positives study ({plan.name} sizes, seeds {', '.join(map(str, seeds))})\n\n"
            + markdown(summary, n_plates))
    (out / "summary.md").write_text(text, encoding="utf-8")
    print(text)
    print(f"tables: {out / 'results.csv'}, {out / 'summary.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
