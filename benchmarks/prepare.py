"""Benchmark ``bioaug data prepare`` on full-size twin fields: BBBC021 (1280×1024×3, 16-bit)
and Cell Painting through the LoadData path (1080×1080×5, 16-bit, as JUMP-CP's fields).

Prints, side by side in one run, for each screen:

- prepare throughput (fields/s, wall and per CPU-second) with 1 worker and with 2 workers;
- peak resident memory (RSS) of each prepare run (the parent and its largest worker — a
  forked worker counts the pages it shares with the parent), for one plate and for all
  plates (memory must not grow with the number of plates);
- random access: reading 256 random crops from the store vs decoding them from the TIFFs
  (three files per crop's field, then cutting the crop) — ratio.

Targets: ≥ 4 fields/s per core (BBBC021; Cell Painting fields hold 5/3 × 0.9 the pixels),
peak RSS < 3 GiB and the same for one plate as for all, store reads ≥ 50× faster than TIFF
decoding.

    python benchmarks/prepare.py [--screen bbbc021|cellpainting|both] [--plates 2]
                                 [--wells 4] [--sites 4] [--cells 110]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("BIOAUG_PROGRESS", "0")

CHILD = r"""
import json, resource, sys, time
import cv2, skimage.filters, tifffile, torch  # imported before timing (provenance needs torch)
from bioaug.data.prepare import prepare_bbbc021, prepare_images
root, out, workers, plates, kind = (sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4],
                                    sys.argv[5])
plates = plates.split(",") if plates else None
t0, c0 = time.perf_counter(), time.process_time()
if kind == "bbbc021":
    s = prepare_bbbc021(root, out, workers=workers, plates=plates, overwrite=True)
else:
    s = prepare_images(root + "/load_data.csv", out, workers=workers, plates=plates,
                       overwrite=True, label="moa", batch="batch", group="compound")
wall = time.perf_counter() - t0
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
me = resource.getrusage(resource.RUSAGE_SELF)
parent_cpu = time.process_time() - c0
print(json.dumps({"wall": wall, "cpu": parent_cpu + kids.ru_utime + kids.ru_stime,
                  "parent_cpu": parent_cpu, "worker_cpu": kids.ru_utime + kids.ru_stime,
                  "fields": s.header["report"]["fields_used"], "crops": len(s),
                  "rss_self_mb": me.ru_maxrss / 1024, "rss_child_mb": kids.ru_maxrss / 1024}))
"""


def run_prepare(root: Path, out: Path, workers: int, plates: list[str] | None,
                kind: str = "bbbc021") -> dict:
    cmd = [sys.executable, "-c", CHILD, str(root), str(out), str(workers), ",".join(plates or []),
           kind]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(res.stderr)
    return json.loads(res.stdout.strip().splitlines()[-1])


def random_access(store_path: Path, root: Path, n: int = 256, seed: int = 0) -> dict:
    import tifffile

    from bioaug.data.bbbc021 import load_metadata
    from bioaug.data.store import Store

    s = Store.open(store_path)
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(s), size=min(n, len(s)), replace=False)
    t0 = time.perf_counter()
    crops = s.read(idx)
    t_store = time.perf_counter() - t0
    meta = load_metadata(root).fields.set_index(["plate", "well", "site"])
    half = s.image_size[0] // 2
    t0 = time.perf_counter()
    for i in idx:
        row = s.obs.iloc[i]
        f = meta.loc[(row["plate"], row["well"], int(row["site"]))]
        planes = [tifffile.imread(root / f["path"] / f[f"file_{c}"])
                  for c in ("DAPI", "Tubulin", "Actin")]
        cy, cx = round(row["center_y"]), round(row["center_x"])
        _ = np.stack([p[cy - half:cy + half, cx - half:cx + half] for p in planes])
    t_tiff = time.perf_counter() - t0
    assert crops.shape[0] == len(idx)
    return {"n": len(idx), "store_s": t_store, "tiff_s": t_tiff, "ratio": t_tiff / t_store}


def twin(kind: str, tmp: Path, args: argparse.Namespace) -> tuple[Path, list[str], str]:
    """Write (or reuse) a full-size twin; its root, plates and a one-line description."""
    t0 = time.perf_counter()
    if kind == "bbbc021":
        from bioaug.data.bbbc021 import load_metadata
        from bioaug.data.synth import synth_bbbc021

        root = tmp / "twin"
        if not (root / "BBBC021_v1_image.csv").exists():
            synth_bbbc021(root, plates=args.plates, sites=args.sites, size=(1024, 1280),
                          cells_per_field=args.cells, wells_per_plate=args.wells, workers=2)
        meta = load_metadata(root)
        plates, n, shape = meta.plates, len(meta.fields), "1280×1024×3"
    else:
        import pandas as pd

        from bioaug.data.synth_cellpainting import synth_cellpainting

        root = tmp / "cellpainting"
        if not (root / "load_data.csv").exists():
            synth_cellpainting(root, plates=args.plates, sites=args.sites, size=(1080, 1080),
                               cells_per_field=args.cells, wells_per_plate=args.wells)
        ld = pd.read_csv(root / "load_data.csv")
        plates, n, shape = sorted(ld["Metadata_Plate"].unique()), len(ld), "1080×1080×5"
    return root, plates, (f"{kind} twin: {len(plates)} plates, {n} fields of {shape} uint16 "
                          f"({time.perf_counter() - t0:.1f} s to write or find)")


def bench(kind: str, tmp: Path, args: argparse.Namespace) -> None:
    root, plates, line = twin(kind, tmp, args)
    print(f"\n{line}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    results = {}
    for label, workers, subset in (("1 worker, 1 plate", 1, plates[:1]),
                                   ("1 worker, all plates", 1, None),
                                   ("2 workers, all plates", 2, None)):
        out = tmp / f"store-{kind}-{workers}-{'one' if subset else 'all'}"
        r = run_prepare(root, out, workers, subset, kind)
        results[label] = r
        import shutil

        if subset is not None or workers == 2:
            shutil.rmtree(out, ignore_errors=True)
    print(f"{'prepare':<24}{'fields':>7}{'crops':>7}{'wall s':>8}{'fields/s':>10}"
          f"{'fields/CPU-s':>14}{'CPU parent/workers':>20}{'RSS parent MB':>15}"
          f"{'RSS worker MB':>15}")
    for label, r in results.items():
        print(f"{label:<24}{r['fields']:>7}{r['crops']:>7}{r['wall']:>8.1f}"
              f"{r['fields'] / r['wall']:>10.2f}{r['fields'] / r['cpu']:>14.2f}"
              f"{r['parent_cpu']:>12.1f} / {r['worker_cpu']:<5.1f}"
              f"{r['rss_self_mb']:>15.0f}{r['rss_child_mb']:>15.0f}")
    one, two = results["1 worker, all plates"], results["2 workers, all plates"]
    print(f"speed-up with 2 workers: {one['wall'] / two['wall']:.2f}× (wall)")
    peak = max(max(r["rss_self_mb"], r["rss_child_mb"]) for r in results.values())
    rss_one = results["1 worker, 1 plate"]["rss_self_mb"]
    print(f"peak RSS {peak:.0f} MB (target < 3072); RSS all plates / one plate "
          f"{one['rss_self_mb'] / rss_one:.2f}× (target ≈ 1); per-core rate "
          f"{one['fields'] / one['cpu']:.2f} fields/CPU-s")
    if kind == "bbbc021":
        ra = random_access(tmp / f"store-{kind}-1-all", root)
        print(f"random access, {ra['n']} crops: store {ra['store_s'] * 1000:.1f} ms, "
              f"TIFF decode {ra['tiff_s'] * 1000:.0f} ms → {ra['ratio']:.0f}× (target ≥ 50×)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--screen", choices=("bbbc021", "cellpainting", "both"), default="both")
    ap.add_argument("--plates", type=int, default=2)
    ap.add_argument("--wells", type=int, default=4)
    ap.add_argument("--sites", type=int, default=4)
    ap.add_argument("--cells", type=int, default=110, help="cells per field")
    ap.add_argument("--dir", help="work folder, kept (default: a temporary one, removed)")
    args = ap.parse_args()
    tmp = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bioaug-bench-"))
    for kind in (("bbbc021", "cellpainting") if args.screen == "both" else (args.screen,)):
        bench(kind, tmp, args)
    if args.dir:
        print(f"\nwork folder kept: {tmp}")
    else:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
