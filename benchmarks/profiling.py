"""Benchmark: ``bioaug profile`` + ``bioaug evaluate --profile`` on 100,000 cells × 512.

Synthetic cells on 10 plates (10 % DMSO controls), 12 MoAs, each plate distorting the
features by its own affine map. Timed, with peak RSS:

1. ``bioaug.profile.profile`` — cells → wells, per-plate centring and per-plate ZCA (TVN)
   fitted on the control cells (the ``bioaug profile`` command);
2. ``bioaug.evaluate.evaluate(..., profile=…)`` — clustering, linear probe, and NSC / NSCB /
   mAP with p-values before and after the same correction.

Target: both together < 180 s and < 4 GiB on 2 CPU cores.
Run: ``python benchmarks/profiling.py [--n 100000] [--dims 512] [--plates 10]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

os.environ.setdefault("BIOAUG_PROGRESS", "0")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np
import pandas as pd

RECIPE = {"correct_at": "cell", "control": "moa=DMSO",
          "steps": ["center", {"sphere": {"scope": "plate", "method": "zca"}}]}


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: KiB


def synthetic_cells(n: int, dims: int, plates: int, n_labels: int = 12, seed: int = 0):
    """Cells in wells on plates; DMSO wells on every plate; a per-plate affine distortion."""
    import anndata as ad

    rng = np.random.default_rng(seed)
    n_compounds = n_labels * 4
    rows = []
    n_weeks = max(1, plates // 2)
    for p in range(plates):
        week = p * n_weeks // plates  # two plates a week
        for w in range(8):
            rows.append((f"P{p:02d}", f"D{w}", "DMSO", 0.0, f"Week{week + 1}", "DMSO"))
        for c in range(n_compounds):
            if week in (c % n_weeks, (c + 1) % n_weeks):  # every compound in two weeks
                rows.append((f"P{p:02d}", f"C{c:02d}", f"cmp{c:02d}", 1.0, f"Week{week + 1}",
                             f"moa{c % n_labels:02d}"))
    wells = pd.DataFrame(rows, columns=["plate", "well", "compound", "concentration", "batch",
                                        "moa"])
    ctrl = (wells["moa"] == "DMSO").to_numpy()
    # 10 % of the cells in control wells
    p_well = np.where(ctrl, 0.10 / ctrl.sum(), 0.90 / (~ctrl).sum())
    cell_well = rng.choice(len(wells), size=n, p=p_well)
    obs = wells.iloc[cell_well].reset_index(drop=True)
    obs.index = obs.index.astype(str)
    codes = pd.factorize(obs["moa"], sort=True)[0]
    centres = rng.normal(size=(codes.max() + 1, dims)).astype(np.float32) * 0.3
    centres[list(np.unique(obs["moa"])).index("DMSO")] = 0.0
    x = rng.standard_normal((n, dims), dtype=np.float32) + centres[codes]
    plate_codes = pd.factorize(obs["plate"], sort=True)[0]
    for p in range(plates):
        rows_p = plate_codes == p
        scale = rng.uniform(0.5, 2.0, size=dims).astype(np.float32)
        x[rows_p] = x[rows_p] * scale + rng.normal(size=dims).astype(np.float32)
    for col in obs.columns:
        if col != "concentration":
            obs[col] = obs[col].astype("category")
    adata = ad.AnnData(obs=obs)
    adata.obsm["X_bioaug"] = x
    return adata


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dims", type=int, default=512)
    ap.add_argument("--plates", type=int, default=10)
    args = ap.parse_args()

    from bioaug.evaluate import evaluate, format_table, summary_rows
    from bioaug.evaluate.report import before_after_rows
    from bioaug.profile import profile

    t0 = time.perf_counter()
    adata = synthetic_cells(args.n, args.dims, args.plates)
    print(f"[profile] synthetic {args.n} × {args.dims} on {args.plates} plates built in "
          f"{time.perf_counter() - t0:.1f} s; RSS so far {peak_rss_gib():.2f} GiB")
    t0, c0 = time.perf_counter(), cpu_seconds()
    profiled = profile(adata, RECIPE)
    t_profile, c_profile = time.perf_counter() - t0, cpu_seconds() - c0
    print(f"[profile] bioaug profile: {adata.n_obs} cells → {profiled.n_obs} well profiles in "
          f"{t_profile:.1f} s; peak RSS {peak_rss_gib():.2f} GiB")
    del profiled
    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), cpu_seconds()
        report = evaluate(adata, label="moa", out=Path(tmp) / "report", seed=0,
                          profile=RECIPE, plot=False)
        t_eval, c_eval = time.perf_counter() - t0, cpu_seconds() - c0
    print(format_table(summary_rows(report)))
    print("[profile] before → after:")
    print(format_table([(m, f"{b} → {a}", "") for m, b, a in before_after_rows(report)]))
    print("[profile] evaluate seconds per stage:")
    for k, v in report.timings.items():
        print(f"  {k:<11} {v:8.1f}")
    total = t_profile + t_eval
    rss = peak_rss_gib()
    print(f"[profile] profile {t_profile:.1f} s + evaluate --profile {t_eval:.1f} s = "
          f"{total:.1f} s (target < 180 s: {'OK' if total < 180 else 'MISSED'}); peak RSS "
          f"{rss:.2f} GiB (target < 4 GiB: {'OK' if rss < 4 else 'MISSED'}); process CPU "
          f"{c_profile:.1f} s + {c_eval:.1f} s; load average "
          + " ".join(f"{v:.1f}" for v in os.getloadavg())
          + " (the machine is shared: wall time grows with the load)")


if __name__ == "__main__":
    main()
