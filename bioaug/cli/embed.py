"""``bioaug embed``: a store → an ``.h5ad`` of embeddings (and well/treatment profiles)."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from bioaug.device import DEVICE_CHOICES


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "embed", help="embed a store with trained checkpoints into an .h5ad (AnnData)",
        description="Embed every item of a crop store into an AnnData .h5ad file: "
        "obs = the store's metadata, obsm['X_bioaug'] = the embedding (with several "
        "checkpoints also X_bioaug_0.. and the fused X_bioaug_fused), uns['bioaug'] = "
        "provenance.")
    p.add_argument("--checkpoint", action="append", default=[], metavar="RUN_DIR",
                   help="a training run directory or checkpoint.pt (repeat to fuse models)")
    p.add_argument("--data", required=True, metavar="STORE", help="the crop store to embed")
    p.add_argument("--out", required=True, metavar="CELLS.h5ad", help="output .h5ad file")
    p.add_argument("--layer", choices=["backbone", "projection"], default="backbone",
                   help="backbone features (default) or projection-head output")
    p.add_argument("--aggregate", choices=["well", "treatment"], action="append", default=[],
                   help="also write OUT.well.h5ad / OUT.treatment.h5ad profiles (repeatable; "
                        "treatment implies the well means first)")
    p.add_argument("--batch-size", type=int, default=256, help="items per batch (default 256)")
    p.add_argument("--backbone", default=None, metavar="NAME",
                   help="embed with a named backbone instead of a checkpoint, e.g. "
                        "resnet101_supervised (ImageNet weights from the torch hub cache)")
    p.add_argument("--weights", default=None, metavar="FILE",
                   help="weights file for --backbone resnet101_supervised")
    p.add_argument("--raw", action="store_true",
                   help="embed raw pixels (area-averaged to 16×16 per channel): the floor")
    p.add_argument("--preprocess", choices=["resize", "center_crop", "none"], default="resize",
                   help="how items reach a checkpoint's training crop size (default resize)")
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES,
                   help="compute device (default auto)")
    p.set_defaults(func=run)


def aggregate_path(out: Path, level: str) -> Path:
    """``cells.h5ad`` → ``cells.well.h5ad`` / ``cells.treatment.h5ad``."""
    return out.with_name(f"{out.stem}.{level}{out.suffix or '.h5ad'}")


def run(args: argparse.Namespace) -> int:
    from bioaug.embed import aggregate, embed, write_h5ad
    from bioaug.errors import BioaugError
    from bioaug.io import require_file_path

    out = require_file_path(args.out, "--out", what="the path of an .h5ad file",
                            hint=f"e.g. --out {Path(args.out) / 'cells.h5ad'}")
    if args.weights and not args.backbone:
        raise BioaugError("--weights is for a named --backbone; a checkpoint carries its "
                          "own weights and --raw needs none",
                          hint=f"e.g. --backbone resnet101_supervised --weights {args.weights}")
    work_dir = out.with_name(f".{out.name}.partial")  # resumable progress; removed at the end
    kwargs = {"weights": args.weights} if args.weights else None
    adata = embed(args.checkpoint, args.data, layer=args.layer, batch_size=args.batch_size,
                  backbone=args.backbone, raw=args.raw, device=args.device,
                  preprocess=args.preprocess, backbone_kwargs=kwargs, work_dir=work_dir)
    written = [write_h5ad(adata, out)]
    for level in dict.fromkeys(args.aggregate):
        written.append(write_h5ad(aggregate(adata, level), aggregate_path(out, level)))
    shutil.rmtree(work_dir, ignore_errors=True)
    keys = ", ".join(f"{k} {adata.obsm[k].shape[1]}-d" for k in adata.obsm)
    print(f"embedded {adata.n_obs} items ({keys})", file=sys.stdout)
    for path in written:
        print(f"wrote {path}")
    return 0
