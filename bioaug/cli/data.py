"""``bioaug data {info,fetch,prepare,synth}``: datasets in, crop stores out."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from bioaug.errors import ConfigError

NATURAL = ("cifar10", "cifar100", "mnist", "imagenet100", "digits")
PREPARE_DATASETS = ("bbbc021", *NATURAL)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="fetch, inspect and prepare datasets",
                       description="Fetch, inspect and prepare datasets into crop stores.")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True

    info = dsub.add_parser("info", help="summarise a store or a BBBC021 folder",
                           description="Summarise a store (`bioaug data info STORE`) or a "
                           "BBBC021 folder (`bioaug data info bbbc021 --root DIR`; the two "
                           "CSVs alone are enough).")
    info.add_argument("target", help="a store directory, or 'bbbc021'")
    info.add_argument("--root", help="the BBBC021 folder (with `info bbbc021`)")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.add_argument("--examples", type=int, default=5, help="missing files to list")
    info.set_defaults(func=cmd_info)

    fetch = dsub.add_parser("fetch", help="download a dataset from its dataset card",
                            description="Download a dataset listed in datasets/*.yaml, "
                            "resuming partial downloads, verifying checksums where the card "
                            "has them and extracting archives safely.")
    fetch.add_argument("dataset", help="bbbc021, cifar10, cifar100 or mnist")
    fetch.add_argument("--out", required=True, help="destination folder")
    fetch.add_argument("--plates", nargs="+", help="BBBC021 plates (e.g. Week1_22123); "
                       "default: metadata only; 'all' for every plate")
    fetch.add_argument("--base-url", help="replace the card's base URL (mirrors; env "
                       "BIOAUG_DATA_BASE_URL)")
    fetch.add_argument("--card", help="a dataset card YAML to use instead of the shipped one")
    fetch.add_argument("--keep-archives", action="store_true",
                       help="keep downloaded zips after extracting")
    fetch.add_argument("--json", action="store_true", help="print a JSON summary")
    fetch.set_defaults(func=cmd_fetch)

    prep = dsub.add_parser("prepare", help="build a crop store from a dataset",
                           description="Build a store: BBBC021 single-cell crops (illumination "
                           "correction, percentile scaling, nuclei, crops) or a natural-image "
                           "benchmark. Interrupted builds resume when run again.")
    prep.add_argument("dataset", help=", ".join(PREPARE_DATASETS))
    prep.add_argument("--root", help="dataset folder (not needed for digits)")
    prep.add_argument("--out", required=True, help="the store directory to write")
    prep.add_argument("--overwrite", action="store_true", help="replace an existing store")
    g = prep.add_argument_group("BBBC021")
    g.add_argument("--crop-size", type=int, default=96, help="crop side in pixels (96)")
    g.add_argument("--resize", type=int, help="resize crops to this side")
    g.add_argument("--moa-only", action="store_true",
                   help="only MoA-annotated treatments and DMSO")
    g.add_argument("--workers", type=int, default=1, help="processes (1)")
    g.add_argument("--strict", action="store_true",
                   help="stop at the first missing or unusable image")
    g.add_argument("--plates", nargs="+", help="only these plates")
    g.add_argument("--edge", choices=("skip", "reflect"), default="skip",
                   help="cells near the border: drop them (skip) or mirror-pad (reflect)")
    g.add_argument("--percentiles", type=float, nargs=2, default=(0.1, 99.9),
                   metavar=("LOW", "HIGH"), help="intensity scaling percentiles (0.1 99.9)")
    g.add_argument("--min-area", type=int, default=50, help="smallest nucleus in pixels (50)")
    g.add_argument("--max-area", type=int, default=4000, help="largest nucleus (4000)")
    g2 = prep.add_argument_group("natural images")
    g2.add_argument("--size", type=int, help="image side (imagenet100: 64, digits: 28)")
    prep.set_defaults(func=cmd_prepare)

    syn = dsub.add_parser("synth", help="write a synthetic BBBC021 twin",
                          description="Write a synthetic BBBC021 in the published layout: real "
                          "plate design, rendered cells with MoA-dependent morphology and "
                          "screen nuisance (vignetting, stain batches, blur, noise).")
    syn.add_argument("dataset", choices=("bbbc021",))
    syn.add_argument("--out", required=True, help="destination folder")
    syn.add_argument("--plates", type=int, default=6, help="plates (6 cover all 12 MoAs)")
    syn.add_argument("--sites", type=int, default=2, help="fields per well (2)")
    syn.add_argument("--wells", type=int, default=12, help="wells per plate (12)")
    syn.add_argument("--size", default="256x320", help="field size HxW (256x320; real 1024x1280)")
    syn.add_argument("--cells-per-field", type=int, default=15, help="mean cells per field (15)")
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--workers", type=int, default=1, help="processes (1)")
    syn.add_argument("--overwrite", action="store_true")
    syn.set_defaults(func=cmd_synth)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list):
        if not v:
            return "-"
        if all(not isinstance(x, (dict, list)) for x in v):
            head = ", ".join(_fmt(x) for x in v[:12])
            return head + (f" … ({len(v)})" if len(v) > 12 else "")
        return f"{len(v)} entries"
    return "-" if v in ("", None) else str(v)


def _print(obj: dict[str, Any], as_json: bool, indent: int = 0) -> None:
    """Print a summary as JSON or as an indented ``key: value`` outline."""
    if as_json:
        print(json.dumps(obj, indent=2, default=str))
        return
    pad = "  " * indent
    for k, v in obj.items():
        if isinstance(v, dict) and v:
            print(f"{pad}{k}:")
            _print(v, False, indent + 1)
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            print(f"{pad}{k}:")
            for x in v[:10]:
                print(f"{pad}  - " + ", ".join(f"{kk}={_fmt(vv)}" for kk, vv in x.items()))
            if len(v) > 10:
                print(f"{pad}  … ({len(v)})")
        else:
            print(f"{pad}{k}: {_fmt(v) if not isinstance(v, dict) else '-'}")


def cmd_info(args: argparse.Namespace) -> int:
    from bioaug.data.info import info_bbbc021, info_store

    if args.examples < 0:
        raise ConfigError(f"--examples must be 0 or more, got {args.examples}")
    if args.target == "bbbc021":
        if not args.root:
            raise ConfigError("`bioaug data info bbbc021` needs --root DIR")
        _print(info_bbbc021(args.root, examples=args.examples), args.json)
    else:
        _print(info_store(args.target), args.json)
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from bioaug.data.fetch import fetch_dataset

    base = args.base_url or os.environ.get("BIOAUG_DATA_BASE_URL")
    summary = fetch_dataset(args.dataset, Path(args.out), plates=args.plates, base_url=base,
                            card=args.card, keep_archives=args.keep_archives)
    _print(summary, args.json)
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from bioaug.errors import unknown_choice

    if args.dataset == "bbbc021":
        from bioaug.data.prepare import prepare_bbbc021

        if not args.root:
            raise ConfigError("`bioaug data prepare bbbc021` needs --root DIR")
        store = prepare_bbbc021(args.root, args.out, crop_size=args.crop_size,
                                resize=args.resize, moa_only=args.moa_only,
                                workers=args.workers, strict=args.strict,
                                overwrite=args.overwrite, plates=args.plates, edge=args.edge,
                                percentiles=tuple(args.percentiles), min_area=args.min_area,
                                max_area=args.max_area)
        rep = store.header.get("report", {})
        print(f"wrote {store.path}: {len(store)} crops "
              f"{store.image_size[0]}×{store.image_size[1]} from {rep.get('fields_used')} of "
              f"{rep.get('fields_listed')} fields")
        skipped = rep.get("fields_skipped") or {}
        if skipped:
            print("skipped fields: " + ", ".join(f"{k} {v}" for k, v in skipped.items()))
            for ex in rep.get("skipped_examples", [])[:5]:
                print(f"  e.g. {ex}")
        if rep.get("empty_plates"):
            print("plates without crops: " + ", ".join(rep["empty_plates"]))
        return 0
    if args.dataset in NATURAL:
        from bioaug.data.natural import prepare_natural

        store = prepare_natural(args.dataset, args.root, args.out, overwrite=args.overwrite,
                                size=args.size)
        print(f"wrote {store.path}: {len(store)} images {store.n_channels}×"
              f"{store.image_size[0]}×{store.image_size[1]} "
              f"({', '.join(f'{k} {v}' for k, v in store.header.get('splits', {}).items())})")
        return 0
    raise ConfigError(unknown_choice("dataset", args.dataset, PREPARE_DATASETS))


def cmd_synth(args: argparse.Namespace) -> int:
    from bioaug.data.synth import parse_size, synth_bbbc021

    out = synth_bbbc021(args.out, plates=args.plates, sites=args.sites,
                        size=parse_size(args.size), cells_per_field=args.cells_per_field,
                        seed=args.seed, wells_per_plate=args.wells, workers=args.workers,
                        overwrite=args.overwrite)
    print(f"wrote a BBBC021 twin to {out}")
    return 0
