"""Nucleus finding against CellProfiler on real fields (``nf1-cellpainting``).

Five real Cell Painting fields (Schwann cells, 904×1224, 16-bit DAPI) with the nucleus
masks CellProfiler wrote for them (IdentifyPrimaryObjects: global three-class Otsu,
diameters 30–90 px, border objects discarded, no declumping; saved as binary 0/255 masks).
The fields go through ``bioaug data prepare images`` exactly as a user's would (a LoadData
CSV, per-plate illumination, scaling and Otsu threshold, :func:`find_nuclei`), and the
centres it stores are compared with the centroids of CellProfiler's objects (the connected
components of each binary mask).

Prints per field and in total: CellProfiler's nucleus count, bioaug's, the share of
CellProfiler nuclei with a bioaug centre within ``--radius`` px (recall), the share of
bioaug centres with a CellProfiler centroid within it (precision), the one-to-one pairs and
their median distance.

    python benchmarks/nuclei.py [--data ../shared/data/real/nf1-cellpainting] [--radius 5]
                                [--min-area 50] [--max-area 8000] [--nucleus-sigma 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("BIOAUG_PROGRESS", "0")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "real" / "nf1-cellpainting"


def nf1_fields(data: Path) -> pd.DataFrame:
    """One row per field: well, site, DAPI file and CellProfiler's nucleus mask file."""
    rows = []
    for f in sorted((data / "Plate_2_images").glob("*_DAPI_001.tif")):
        well, _, _, site = f.name.split("_")[:4]
        mask = data / "Plate_2_masks" / f.name.replace(".tif", "_MaskNuclei.tiff")
        rows.append({"well": well, "site": int(site), "dapi": f, "mask": mask})
    return pd.DataFrame(rows)


def bioaug_centres(fields: pd.DataFrame, work: Path, **options: float) -> list[np.ndarray]:
    """bioaug's nucleus centres (y, x) per field, through ``prepare_images``."""
    from bioaug.data.prepare import prepare_images

    table = pd.DataFrame({"FileName_DAPI": [p.name for p in fields["dapi"]],
                          "PathName_DAPI": [f"{p.parent}/" for p in fields["dapi"]],
                          "Metadata_Plate": "Plate_2", "Metadata_Well": fields["well"],
                          "Metadata_Site": fields["site"]})
    table.to_csv(work / "load_data.csv", index=False)
    # every nucleus gets a crop (edge reflect): the store's centres are all that were found
    store = prepare_images(work / "load_data.csv", work / "store", edge="reflect",
                           crop_size=8, overwrite=True, **options)
    obs = store.obs
    return [obs.loc[obs["image_number"] == k + 1, ["center_y", "center_x"]].to_numpy()
            for k in range(len(fields))]


def cellprofiler_centres(fields: pd.DataFrame) -> list[np.ndarray]:
    """Centroids (y, x) of CellProfiler's objects: connected components of each mask."""
    from bioaug.data.images import label_centres, read_labels

    return [label_centres(read_labels(p))[0] for p in fields["mask"]]


def report(fields: pd.DataFrame, ref: list[np.ndarray], det: list[np.ndarray],
           radius: float) -> str:
    """The per-field table and the totals."""
    from bioaug.data.segmentation import match_centres, total

    res = [match_centres(r, d, radius) for r, d in zip(ref, det, strict=True)]
    head = (f"{'field':<10}{'CellProfiler':>13}{'bioaug':>8}{'recall':>8}{'precision':>10}"
            f"{'pairs':>7}{'median px':>10}")
    lines = [f"within {radius:g} px", head, "-" * len(head)]
    names = [f"{w} s{s}" for w, s in zip(fields["well"], fields["site"], strict=True)]
    for name, r in [*zip(names, res, strict=True), ("total", total(res))]:
        if name == "total":
            lines.append("-" * len(head))
        lines.append(f"{name:<10}{r.n_reference:>13}{r.n_detected:>8}{r.recall:>8.3f}"
                     f"{r.precision:>10.3f}{r.pairs:>7}{r.median_offset:>10.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--radius", type=float, default=5.0)
    ap.add_argument("--min-area", type=int)
    ap.add_argument("--max-area", type=int)
    ap.add_argument("--nucleus-sigma", type=float)
    args = ap.parse_args(argv)
    fields = nf1_fields(args.data) if args.data.is_dir() else pd.DataFrame()
    if fields.empty:
        print(f"nf1-cellpainting fields not found under {args.data} (expected "
              "Plate_2_images/*_DAPI_001.tif and Plate_2_masks/*_MaskNuclei.tiff); give "
              "--data", file=sys.stderr)
        return 2
    options = {k: v for k, v in (("min_area", args.min_area), ("max_area", args.max_area),
                                 ("nucleus_sigma", args.nucleus_sigma)) if v is not None}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        det = bioaug_centres(fields, Path(tmp), **options)
        seconds = time.perf_counter() - t0
    print(f"bioaug data prepare images ({len(fields)} fields, options {options or 'default'}):"
          f" {seconds:.1f} s")
    print(report(fields, cellprofiler_centres(fields), det, args.radius))
    return 0


if __name__ == "__main__":
    sys.exit(main())
