"""``bioaug data {info,fetch,prepare,merge,synth}``: datasets in, crop stores out."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from bioaug.errors import ConfigError

NATURAL = ("cifar10", "cifar100", "mnist", "imagenet100", "digits")
PREPARE_DATASETS = ("bbbc021", "images", "crops", *NATURAL)


def register(sub: argparse._SubParsersAction) -> None:
    """``bioaug data ACTION``: one parser per action of :data:`ACTIONS`."""
    p = sub.add_parser("data", help="fetch, inspect and prepare datasets",
                       description="Fetch, inspect and prepare datasets into crop stores.")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True
    for add in ACTIONS:
        add(dsub)


def _add_info(dsub: argparse._SubParsersAction) -> None:
    info = dsub.add_parser("info", help="summarise a store or a BBBC021 folder",
                           description="Summarise a store (`bioaug data info STORE`) or a "
                           "BBBC021 folder (`bioaug data info bbbc021 --root DIR`; the two "
                           "CSVs alone are enough).")
    info.add_argument("target", help="a store directory, or 'bbbc021'")
    info.add_argument("--root", help="the BBBC021 folder (with `info bbbc021`)")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.add_argument("--examples", type=int, default=5, help="missing files to list")
    info.set_defaults(func=cmd_info)


def _add_fetch(dsub: argparse._SubParsersAction) -> None:
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


def _add_screen_arguments(prep: argparse.ArgumentParser) -> None:
    """The flags of screens: cells and crops (bbbc021, images) and the LoadData columns."""
    g = prep.add_argument_group("cells and crops (bbbc021, images)")
    add_prepare_options(g)
    g.add_argument("--workers", type=int, default=1,
                   help="processes (default: 1, in this process)")
    g.add_argument("--strict", action="store_true",
                   help="stop at the first missing or unusable image")
    g.add_argument("--plates", nargs="+", help="only these plates")
    g.add_argument("--shard", metavar="I/N",
                   help="prepare only the I-th of N blocks of plates (0-based), e.g. one task "
                   "of a cluster array job; join the stores with `bioaug data merge`")
    g.add_argument("--moa-only", action="store_true",
                   help="bbbc021: only MoA-annotated treatments and DMSO")
    gi = prep.add_argument_group("images (a CellProfiler LoadData CSV)")
    gi.add_argument("--load-data", metavar="CSV",
                    help="FileName_<Ch>/PathName_<Ch> per channel, Metadata_* columns")
    gi.add_argument("--channels", nargs="+", metavar="CH",
                    help="channels in store order (default: the FileName_* column order)")
    gi.add_argument("--label", metavar="COLUMN", help="the label column (e.g. Metadata_MoA)")
    gi.add_argument("--batch", metavar="COLUMN", help="the batch column, stored as `batch`")
    gi.add_argument("--group", metavar="COLUMN",
                    help="the treatment column, stored as `compound` (NSC groups by it)")
    gi.add_argument("--nuclei-channel", metavar="CH",
                    help="channel to find nuclei on (default: DNA/DAPI/Hoechst, else the first)")
    gi.add_argument("--locations", metavar="CSV", help="cell centres instead of nucleus "
                    "detection (CellProfiler Nuclei_Location_Center_X/Y, ImageNumber)")
    gi.add_argument("--x-col", metavar="COLUMN", help="x column of --locations")
    gi.add_argument("--y-col", metavar="COLUMN", help="y column of --locations")
    gi.add_argument("--masks-column", metavar="NAME",
                    help="a FileName_<NAME> channel or column of label masks; cells are "
                    "their objects")


def _add_prepare(dsub: argparse._SubParsersAction) -> None:
    prep = dsub.add_parser("prepare", help="build a crop store from a dataset",
                           description="Build a store: single-cell crops of a screen "
                           "(illumination correction and percentile scaling per plate and "
                           "channel, nuclei or given cell centres, crops) from BBBC021 or any "
                           "CellProfiler LoadData CSV (`images`), or a natural-image "
                           "benchmark. Interrupted builds resume when run again.")
    prep.add_argument("dataset", help=", ".join(PREPARE_DATASETS))
    prep.add_argument("--root", help="dataset folder (not needed for digits); for images: "
                      "the folder relative image paths are resolved against (default: the "
                      "LoadData CSV's folder)")
    prep.add_argument("--out", required=True, help="the store directory to write (not a "
                      "name ending in .partial: OUT.partial holds a build in progress)")
    prep.add_argument("--overwrite", action="store_true",
                      help="replace an existing store (never anything that is not a store)")
    _add_screen_arguments(prep)
    g2 = prep.add_argument_group("natural images")
    g2.add_argument("--size", type=int, help="image side (imagenet100: 64, digits: 28)")
    add_crops_arguments(prep)
    prep.set_defaults(func=cmd_prepare)


def _add_merge(dsub: argparse._SubParsersAction) -> None:
    merge = dsub.add_parser("merge", help="join stores prepared separately (shards)",
                            description="Join stores with the same channels, crop size, pixel "
                            "type and preparation settings into one. The shards of `prepare "
                            "--shard I/N` are put in order and must all be given (0 … N-1); "
                            "provenance is kept. Written atomically: an interrupted merge "
                            "leaves only OUT.partial, and resumes when run again.")
    merge.add_argument("stores", nargs="+", metavar="STORE", help="stores to join")
    merge.add_argument("--out", required=True, help="the merged store to write")
    merge.add_argument("--overwrite", action="store_true", help="replace an existing store")
    merge.set_defaults(func=cmd_merge)


def _add_synth(dsub: argparse._SubParsersAction) -> None:
    syn = dsub.add_parser("synth", help="write a synthetic screen (BBBC021 or Cell Painting)",
                          description="Write a synthetic screen: `bbbc021`, a twin in the "
                          "published BBBC021 layout (real plate design, MoA-dependent "
                          "morphology, screen nuisance), or `cellpainting`, a small "
                          "5-channel Cell Painting screen (DNA, ER, RNA, AGP, Mito) with a "
                          "LoadData CSV and the true cell centres.")
    syn.add_argument("dataset", choices=tuple(SYNTH))
    syn.add_argument("--out", required=True, help="destination folder")
    syn.add_argument("--plates", type=int, help="plates (bbbc021: 6 cover all 12 MoAs; "
                     "cellpainting: 2)")
    syn.add_argument("--sites", type=int, help="fields per well (2)")
    syn.add_argument("--wells", type=int, help="wells per plate (bbbc021: 12, cellpainting: 9)")
    syn.add_argument("--size", help="field size HxW (bbbc021: 256x320, real 1024x1280; "
                     "cellpainting: 256x256); a field must fit in memory")
    syn.add_argument("--cells-per-field", type=int,
                     help="mean cells per field (bbbc021: 15, cellpainting: 12)")
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--workers", type=int, default=1,
                     help="bbbc021: processes (default: 1, in this process)")
    syn.add_argument("--masks", action="store_true",
                     help="cellpainting: also write a nuclei label mask per field")
    syn.add_argument("--overwrite", action="store_true")
    syn.set_defaults(func=cmd_synth)


def add_prepare_options(group: Any) -> None:
    """One flag per :class:`~bioaug.data.prepare.PrepareOptions` field (names, defaults,
    help); unset flags are left out so the model's defaults apply."""
    from bioaug.data.prepare import PrepareOptions

    for name, field in PrepareOptions.model_fields.items():
        flag = "--" + name.replace("_", "-")
        default = field.get_default(call_default_factory=True)
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
        kw: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS,
                              "help": f"{field.description}" +
                              (f" (default: {shown})" if default is not None else "")}
        base = _base_type(field.annotation)
        if isinstance(base, tuple) and base[0] == "choices":
            group.add_argument(flag, choices=base[1], **kw)
        elif isinstance(base, tuple):
            group.add_argument(flag, type=base[1], nargs=base[2],
                               metavar=("LOW", "HIGH") if base[2] == 2 else None, **kw)
        else:
            group.add_argument(flag, type=base, metavar=name.split("_")[-1].upper(), **kw)


def _base_type(annotation: Any) -> Any:
    """``int | None`` → int; ``Literal[...]`` → ("choices", [...]); ``tuple[float, float]``
    → ("tuple", float, 2)."""
    import types
    import typing

    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return _base_type(next(a for a in args if a is not type(None)))
    if origin is typing.Literal:
        return ("choices", list(args))
    if origin is tuple:
        return ("tuple", args[0], len(args))
    return annotation


def prepare_options(args: argparse.Namespace) -> dict[str, Any]:
    """The PrepareOptions fields given on the command line."""
    from bioaug.data.prepare import PrepareOptions

    return {k: (tuple(getattr(args, k)) if isinstance(getattr(args, k), list)
                else getattr(args, k))
            for k in PrepareOptions.model_fields if hasattr(args, k)}


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


def _check_workers(workers: int) -> None:
    from bioaug.data.parallel import check_workers

    check_workers(workers, "--workers")


def _report_store(store: Any) -> None:
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


IMAGES_ONLY = ("load_data", "channels", "label", "batch", "group", "nuclei_channel",
               "locations", "x_col", "y_col", "masks_column")


def _prepare_bbbc021(args: argparse.Namespace) -> Any:
    from bioaug.data.prepare import prepare_bbbc021

    if not args.root:
        raise ConfigError("`bioaug data prepare bbbc021` needs --root DIR")
    given = [k for k in IMAGES_ONLY if getattr(args, k) is not None]
    if given:
        raise ConfigError(f"--{given[0].replace('_', '-')} applies to `data prepare images`, "
                          "not bbbc021")
    return prepare_bbbc021(args.root, args.out, moa_only=args.moa_only, workers=args.workers,
                           strict=args.strict, overwrite=args.overwrite, plates=args.plates,
                           shard=args.shard, **prepare_options(args))


def _prepare_images(args: argparse.Namespace) -> Any:
    from bioaug.data.prepare import prepare_images

    if not args.load_data:
        raise ConfigError("`bioaug data prepare images` needs --load-data CSV",
                          hint="a CellProfiler LoadData CSV: FileName_<Ch>, PathName_<Ch>, "
                          "Metadata_* columns")
    if args.moa_only:
        raise ConfigError("--moa-only applies to bbbc021; filter the LoadData CSV instead")
    channels = [c for part in (args.channels or []) for c in part.split(",") if c.strip()]
    return prepare_images(args.load_data, args.out, channels=channels or None, root=args.root,
                          label=args.label, batch=args.batch, group=args.group,
                          nuclei_channel=args.nuclei_channel, locations=args.locations,
                          x_col=args.x_col, y_col=args.y_col, masks_column=args.masks_column,
                          plates=args.plates, shard=args.shard, workers=args.workers,
                          strict=args.strict, overwrite=args.overwrite, **prepare_options(args))


#: Screens prepared into single-cell crops: name → preparation from the parsed flags.
SCREENS = {"bbbc021": _prepare_bbbc021, "images": _prepare_images}


def cmd_prepare(args: argparse.Namespace) -> int:
    from bioaug.data.store import check_out_name
    from bioaug.errors import unknown_choice
    from bioaug.io import check_output

    check_out_name(args.out)
    _check_workers(args.workers)

    check_output(args.out, "store", replace=args.overwrite,
                 inputs=[args.root, getattr(args, "load_data", None),
                         getattr(args, "locations", None), *crops_inputs(args)])
    if args.dataset == "crops":
        return _prepare_crops(args)
    check_no_crops_flags(args)
    if args.dataset in SCREENS:
        if args.size is not None:
            raise ConfigError(f"--size applies to natural images; for {args.dataset} use "
                              "--crop-size / --resize")
        _report_store(SCREENS[args.dataset](args))
        return 0
    if args.dataset in NATURAL:
        from bioaug.data.natural import prepare_natural

        screen_only = [k for k in (*prepare_options(args), *IMAGES_ONLY)
                       if getattr(args, k, None) is not None] + \
            [k for k in ("shard", "plates") if getattr(args, k) is not None]
        if screen_only:
            raise ConfigError(f"--{screen_only[0].replace('_', '-')} applies to screens "
                              f"({', '.join(SCREENS)}), not {args.dataset}")
        store = prepare_natural(args.dataset, args.root, args.out, overwrite=args.overwrite,
                                size=args.size)
        print(f"wrote {store.path}: {len(store)} images {store.n_channels}×"
              f"{store.image_size[0]}×{store.image_size[1]} "
              f"({', '.join(f'{k} {v}' for k, v in store.header.get('splits', {}).items())})")
        for note in store.header.get("notes", []):
            print(f"note: {note}")
        return 0
    raise ConfigError(unknown_choice("dataset", args.dataset, PREPARE_DATASETS))


# -- crops: pre-cut single-cell crops ---------------------------------------------------
CROPS_ONLY = ("images", "obs", "layout", "key", "index_column", "pad")
#: LoadData options that do not apply to pre-cut crops.
FIELDS_ONLY = ("load_data", "nuclei_channel", "locations", "x_col", "y_col", "masks_column")


def add_crops_arguments(prep: argparse.ArgumentParser) -> None:
    """The flags of `bioaug data prepare crops` (it also takes --channels, --label,
    --batch, --group, --root, --plates, --shard, --crop-size, --resize, --percentiles)."""
    from bioaug.data.crops import LAYOUTS, PAD_MODES

    gc = prep.add_argument_group(
        "crops (pre-cut single-cell crops)",
        "Also takes --channels (names, or a selection of the file's named channels), --label, "
        "--batch, --group, --root (for a CSV of per-cell files), --plates, --shard, "
        "--percentiles, --resize and --crop-size (here: default the native size).")
    gc.add_argument("--images", metavar="FILE", help=".npy / .npz array (N,C,H,W or N,H,W,C), "
                    "TIFF / OME-TIFF stack, or a CSV naming one image file per cell")
    gc.add_argument("--obs", metavar="CSV", help="one row per crop (label, plate, well …), "
                    "in order or matched by --index-column; a plate column scales per plate")
    gc.add_argument("--layout", choices=LAYOUTS, help="axis order of the array (default: "
                    "inferred when unambiguous)")
    gc.add_argument("--key", help="the array of an .npz to read (default: the first 4-D one)")
    gc.add_argument("--index-column", metavar="COLUMN",
                    help="obs column holding each row's crop (row in --images, from 0)")
    gc.add_argument("--pad", choices=PAD_MODES, help="padding for crops smaller than "
                    "--crop-size: reflect (mirror), edge (repeat the border), constant (0); "
                    "default reflect")


def crops_inputs(args: argparse.Namespace) -> list[Any]:
    return [getattr(args, "images", None), getattr(args, "obs", None)]


def check_no_crops_flags(args: argparse.Namespace) -> None:
    given = [k for k in CROPS_ONLY if getattr(args, k, None) is not None]
    if given:
        raise ConfigError(f"--{given[0].replace('_', '-')} applies to `data prepare crops`, "
                          f"not {args.dataset}")


def _prepare_crops(args: argparse.Namespace) -> int:
    from bioaug.data.crops import CropOptions, prepare_crops

    if not args.images:
        raise ConfigError("`bioaug data prepare crops` needs --images FILE",
                          hint="a .npy / .npz array, a TIFF stack or a CSV of per-cell files")
    given = [k for k in prepare_options(args) if k not in CropOptions.model_fields] + \
        [k for k in FIELDS_ONLY if getattr(args, k, None) is not None] + \
        [k for k in ("moa_only",) if getattr(args, k)] + \
        [k for k in ("size",) if getattr(args, k) is not None]
    if given:
        raise ConfigError(f"--{given[0].replace('_', '-')} does not apply to pre-cut crops")
    if args.workers != 1:
        raise ConfigError("--workers does not apply to pre-cut crops (they are read in one "
                          "process)")
    options = prepare_options(args)
    if args.pad is not None:
        options["pad"] = args.pad
    channels = [c for part in (args.channels or []) for c in part.split(",") if c.strip()]
    store = prepare_crops(args.images, args.out, obs=args.obs, channels=channels or None,
                          layout=args.layout, key=args.key, index_column=args.index_column,
                          label=args.label, batch=args.batch, group=args.group,
                          root=args.root, plates=args.plates, shard=args.shard,
                          overwrite=args.overwrite, **options)
    h, w = store.image_size
    print(f"wrote {store.path}: {len(store)} crops {h}×{w}, channels "
          f"{', '.join(store.channels)}, {store.header['report']['plates']} plate(s)"
          + (f", label {store.label_column}" if store.label_column else ""))
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from bioaug.data.merge import merge_stores
    from bioaug.data.store import check_out_name

    check_out_name(args.out)
    store = merge_stores(args.stores, args.out, overwrite=args.overwrite)
    order = store.header.get("merge", {})
    print(f"wrote {store.path}: {len(store)} items from {len(args.stores)} stores"
          + (f" (shards of {order['shards']})" if order.get("ordered_by") == "shard" else ""))
    return 0


def _synth_bbbc021(args: argparse.Namespace) -> str:
    from bioaug.data.synth import parse_size, synth_bbbc021

    if args.masks:
        raise ConfigError("--masks applies to the cellpainting twin")
    given = {"plates": args.plates, "sites": args.sites, "wells_per_plate": args.wells,
             "cells_per_field": args.cells_per_field}
    kw = {k: v for k, v in given.items() if v is not None}
    if args.size is not None:
        kw["size"] = parse_size(args.size)
    out = synth_bbbc021(args.out, seed=args.seed, workers=args.workers,
                        overwrite=args.overwrite, **kw)
    return f"wrote a BBBC021 twin to {out}"


def _synth_cellpainting(args: argparse.Namespace) -> str:
    from bioaug.data.synth import parse_size
    from bioaug.data.synth_cellpainting import synth_cellpainting

    given = {"plates": args.plates, "sites": args.sites, "wells_per_plate": args.wells,
             "cells_per_field": args.cells_per_field}
    kw = {k: v for k, v in given.items() if v is not None}
    if args.size is not None:
        kw["size"] = parse_size(args.size)
    out = synth_cellpainting(args.out, seed=args.seed, masks=args.masks,
                             overwrite=args.overwrite, **kw)
    return (f"wrote a Cell Painting twin to {out}; prepare it with `bioaug data prepare "
            f"images --load-data {out / 'load_data.csv'} --label moa --batch batch "
            f"--group compound --out STORE`")


#: Synthetic screens: name → writer from the parsed flags.
SYNTH = {"bbbc021": _synth_bbbc021, "cellpainting": _synth_cellpainting}


def cmd_synth(args: argparse.Namespace) -> int:
    from bioaug.data.store import check_out_name

    check_out_name(args.out)
    _check_workers(args.workers)
    print(SYNTH[args.dataset](args))
    return 0


#: The actions of ``bioaug data``, in the order ``--help`` lists them.
ACTIONS = (_add_info, _add_fetch, _add_prepare, _add_merge, _add_synth)
