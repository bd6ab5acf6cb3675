"""Benchmark: evaluation at scale, and embedding throughput against a pure forward pass.

1. ``bioaug.evaluate.evaluate`` on 100,000 × 512 synthetic embeddings with 12 labels and
   fake plate / well / compound / concentration / batch metadata (so NSC/NSCB runs too):
   seconds per stage and peak RSS. Target: < 180 s and < 4 GiB on 2 CPU cores.
2. ``bioaug.embed.embed`` throughput for a vgg13_bn checkpoint-free backbone at 64 px on a
   store, side by side with the same model's forward on pre-made tensors. Target ≥ 0.9×.
3. ``--cold N``: a cold ``bioaug evaluate`` (a fresh process each, pictures on) of an
   ``N × dims`` ``.h5ad``, next to the same command on scanpy's numba neighbours and
   umap-learn pictures (the reference path). Target for 700 × 50: < 10 s.

Run: ``python benchmarks/evaluate.py [--n 100000] [--dims 512] [--skip-embed]`` or
``python benchmarks/evaluate.py --cold 700 --dims 50``.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("BIOAUG_PROGRESS", "0")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np
import pandas as pd


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def load_average() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: KiB


def synthetic_adata(n: int, dims: int, n_labels: int, seed: int = 0):
    """Gaussian class clusters (overlapping) with BBBC021-like plate/well/compound metadata."""
    import anndata as ad

    rng = np.random.default_rng(seed)
    n_compounds = n_labels * 4
    compound_moa = np.arange(n_compounds) % n_labels
    n_conc = 3
    n_batches = 10
    n_plates = 30
    # each (compound, concentration) treatment sits in 3 wells on plates of one or two batches
    treatments = [(c, k) for c in range(n_compounds) for k in range(n_conc)]
    wells = []
    for t, (c, k) in enumerate(treatments):
        for r in range(3):
            plate = (t * 3 + r) % n_plates
            wells.append((f"P{plate:02d}", f"W{t:03d}_{r}", f"cmp{c:02d}", [0.1, 1.0, 10.0][k],
                          f"Week{plate % n_batches + 1}", f"moa{compound_moa[c]:02d}"))
    wells_df = pd.DataFrame(wells, columns=["plate", "well", "compound", "concentration",
                                            "batch", "moa"])
    cell_well = rng.integers(0, len(wells_df), n)
    obs = wells_df.iloc[cell_well].reset_index(drop=True)
    obs.index = obs.index.astype(str)
    for col in obs.columns:
        if col != "concentration":
            obs[col] = obs[col].astype("category")
    y = obs["moa"].cat.codes.to_numpy()
    centres = rng.normal(size=(n_labels, dims)).astype(np.float32) * 0.1
    x = rng.standard_normal((n, dims), dtype=np.float32)
    x += centres[y]
    adata = ad.AnnData(obs=obs)
    adata.obsm["X_bioaug"] = x
    return adata


def bench_evaluate(n: int, dims: int, n_labels: int) -> None:
    from bioaug.evaluate import evaluate, format_table, summary_rows

    t0 = time.perf_counter()
    adata = synthetic_adata(n, dims, n_labels)
    print(f"[evaluate] synthetic {n} × {dims}, {n_labels} labels built in "
          f"{time.perf_counter() - t0:.1f} s; RSS so far {peak_rss_gib():.2f} GiB")
    load_before = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        c0 = cpu_seconds()
        report = evaluate(adata, label="moa", out=Path(tmp) / "report", seed=0)
        total = time.perf_counter() - t0
        cpu = cpu_seconds() - c0
    print(format_table(summary_rows(report)))
    print("[evaluate] seconds per stage:")
    for k, v in report["timings"].items():
        print(f"  {k:<11} {v:8.1f}")
    rss = peak_rss_gib()
    print(f"[evaluate] whole report {total:.1f} s (target < 180 s: "
          f"{'OK' if total < 180 else 'MISSED'}); peak RSS {rss:.2f} GiB (target < 4 GiB: "
          f"{'OK' if rss < 4 else 'MISSED'})")
    print(f"[evaluate] process CPU time {cpu:.1f} s over {total:.1f} s wall "
          f"({cpu / total:.2f} cores busy); load average before {load_before}, after "
          f"{load_average()} (the machine is shared: wall time grows with the load)")


def bench_embed(n_items: int, batch_size: int, size: int, repeats: int = 3) -> None:
    import torch

    from bioaug.data.store import write_store
    from bioaug.embed.embed import embed_with_module
    from bioaug.models import build_backbone

    torch.manual_seed(0)
    model = build_backbone("vgg13_bn", 3).eval()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 65535, size=(n_items, 3, size, size), dtype=np.uint16)
    obs = pd.DataFrame({"label": [f"c{i % 4}" for i in range(n_items)]})
    with tempfile.TemporaryDirectory() as tmp:
        store = write_store(Path(tmp) / "store", images, obs, channels=["a", "b", "c"],
                            label_column="label")
        tensors = [torch.from_numpy(store.read_float(slice(s, s + batch_size)))
                   for s in range(0, n_items, batch_size)]

        def pure_forward() -> float:
            with torch.inference_mode():
                t0 = time.perf_counter()
                for t in tensors:
                    model(t)
                return n_items / (time.perf_counter() - t0)

        def from_store() -> float:
            t0 = time.perf_counter()
            embed_with_module(model, store, batch_size=batch_size, crop=size)
            return n_items / (time.perf_counter() - t0)

        pure_forward()
        from_store()  # warm-up
        pures, rates = [], []
        for _ in range(repeats):  # interleaved, best of each (the machine is shared)
            pures.append(pure_forward())
            rates.append(from_store())
        pure, rate = max(pures), max(rates)
        pair_ratios = sorted(r / p for r, p in zip(rates, pures, strict=True))
    print(f"[embed] vgg13_bn @ {size} px, batch {batch_size}, {n_items} items, "
          f"{torch.get_num_threads()} threads, best of {repeats} interleaved runs")
    print(f"  pure forward on pre-made tensors  {pure:8.1f} items/s")
    print(f"  bioaug embed from the store       {rate:8.1f} items/s")
    print(f"  ratio {rate / pure:.3f}× (target ≥ 0.9×: {'OK' if rate / pure >= 0.9 else 'MISSED'}); "
          f"per-pair ratios {', '.join(f'{r:.2f}' for r in pair_ratios)}")


#: Runs ``bioaug evaluate`` with the kNN graph from ``sc.pp.neighbors`` and umap-learn pictures.
_REFERENCE = ("import sys\n"
              "from bioaug.evaluate import neighbors, plots\n"
              "neighbors.EXACT_MAX_ITEMS = 0\n"
              "plots.UMAP_ENGINES['numpy'] = plots.UMAP_ENGINES['umap-learn']\n"
              "from bioaug.cli import main\n"
              "sys.exit(main(sys.argv[1:]))\n")


def bench_cold(n: int, dims: int, n_labels: int, repeats: int) -> None:
    import subprocess

    env = {**os.environ, "BIOAUG_PROGRESS": "0", "MPLBACKEND": "Agg",
           "NO_ALBUMENTATIONS_UPDATE": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "emb.h5ad"
        synthetic_adata(n, dims, n_labels).write_h5ad(path)
        plain = "import sys\nfrom bioaug.cli import main\nsys.exit(main(sys.argv[1:]))\n"
        paths = {"bioaug": [sys.executable, "-c", plain],
                 "reference (scanpy numba + umap-learn)": [sys.executable, "-c", _REFERENCE]}
        times: dict[str, list[float]] = {k: [] for k in paths}
        for r in range(repeats):  # interleaved: the machine is shared
            for name, cmd in paths.items():
                out = Path(tmp) / f"report_{r}_{len(times[name])}_{name[:3]}"
                t0 = time.perf_counter()
                subprocess.run([*cmd, "evaluate", str(path), "--label", "moa", "--out",
                                str(out)], check=True, env=env, stdout=subprocess.DEVNULL)
                times[name].append(time.perf_counter() - t0)
    print(f"[cold evaluate] {n} × {dims}, {n_labels} labels, pictures on, fresh process each, "
          f"load average {load_average()}")
    for name, ts in times.items():
        print(f"  {name:<40} " + "  ".join(f"{t:6.1f} s" for t in ts))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dims", type=int, default=512)
    p.add_argument("--labels", type=int, default=12)
    p.add_argument("--embed-items", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--skip-embed", action="store_true")
    p.add_argument("--skip-evaluate", action="store_true")
    p.add_argument("--cold", type=int, default=None, metavar="N",
                   help="only time cold `bioaug evaluate` runs on N items (with --dims)")
    p.add_argument("--cold-repeats", type=int, default=2)
    a = p.parse_args(argv)
    if a.cold is not None:
        bench_cold(a.cold, a.dims, a.labels, a.cold_repeats)
        return 0
    if not a.skip_evaluate:
        bench_evaluate(a.n, a.dims, a.labels)
    if not a.skip_embed:
        bench_embed(a.embed_items, a.batch_size, 64, a.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
