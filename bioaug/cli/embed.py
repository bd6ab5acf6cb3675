"""``bioaug embed``: a store → an ``.h5ad`` of embeddings (and well/treatment profiles);
``bioaug embed merge``: join the ``.h5ad`` shards of ``bioaug embed --shard I/N``."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from bioaug.device import DEVICE_FORMS, parse_device
from bioaug.errors import ConfigError
from bioaug.methods.base import ALL_LAYERS, EMBED_LAYERS

LEVELS = ("well", "treatment")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "embed", help="embed a store with trained checkpoints into an .h5ad (AnnData)",
        description="Embed every item of a crop store into an AnnData .h5ad file: "
        "obs = the store's metadata, obsm['X_bioaug'] = the embedding (with several "
        "checkpoints also X_bioaug_0.. and the fused X_bioaug_fused), uns['bioaug'] = "
        "provenance. A large screen can be embedded as N parallel jobs with --shard I/N "
        "and the shards joined with `bioaug embed merge`.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="On a cluster (SLURM array of 8 jobs):\n"
        "  bioaug embed --checkpoint RUN --data STORE --shard $SLURM_ARRAY_TASK_ID/8 \\\n"
        "      --out cells.$SLURM_ARRAY_TASK_ID.h5ad\n"
        "then: bioaug embed merge cells.*.h5ad --out cells.h5ad --aggregate well")
    p.add_argument("--checkpoint", action="append", default=[], metavar="RUN_DIR",
                   help="a training run directory or checkpoint.pt (repeat to fuse models)")
    p.add_argument("--data", metavar="STORE", help="the crop store to embed (required)")
    p.add_argument("--out", metavar="CELLS.h5ad", help="output .h5ad file (required)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an .h5ad that bioaug wrote earlier at --out")
    p.add_argument("--layer", default=None, metavar="LAYER", help=_layer_help())
    p.add_argument("--aggregate", choices=LEVELS, action="append", default=[],
                   help="also write OUT.well.h5ad / OUT.treatment.h5ad profiles (repeatable; "
                        "treatment implies the well means first)")
    p.add_argument("--shard", metavar="I/N", default=None,
                   help="embed only the I-th of N equal blocks of items (I = 0 … N-1), for "
                        "array jobs; join the shards with `bioaug embed merge`")
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
    p.add_argument("--device", default="auto", type=device_option, metavar="DEVICE",
                   help=f"compute device: {DEVICE_FORMS} (default auto: CUDA, then MPS, "
                        "then CPU)")
    p.set_defaults(func=run)
    actions = p.add_subparsers(dest="embed_action", metavar="ACTION", required=False)
    m = actions.add_parser(
        "merge", help="join the .h5ad shards of `bioaug embed --shard I/N` into one file",
        description="Join the shards written by `bioaug embed --shard I/N` into the .h5ad one "
        "full run would have written. The shards must come from the same store, models and "
        "options, and cover every item once.")
    m.add_argument("shards", nargs="+", metavar="SHARD.h5ad", help="the shard files")
    m.add_argument("--out", required=True, metavar="CELLS.h5ad", help="the merged .h5ad")
    m.add_argument("--overwrite", action="store_true",
                   help="replace an .h5ad that bioaug wrote earlier at --out")
    m.add_argument("--aggregate", choices=LEVELS, action="append", default=[],
                   help="also write OUT.well.h5ad / OUT.treatment.h5ad profiles")
    m.set_defaults(func=run_merge)


def device_option(text: str) -> str:
    """``--device``: the device's name (:func:`bioaug.device.parse_device`); any other
    spelling is argparse's usage error with the valid forms."""
    try:
        return parse_device(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _layer_help() -> str:
    """The layers, and each backbone's default layer (from the backbone registry)."""
    from bioaug.models import BACKBONES

    layers = "; ".join(f"{k}: {v}" for k, v in EMBED_LAYERS.items())
    defaults = ", ".join(f"{name} → {BACKBONES[name].embed_layer}" for name in BACKBONES)
    return (f"{layers}; or an intermediate layer of the backbone, pooled to a vector: "
            "stage1 … stageN (VGG, ResNet; global average pool), block1 … block12 (ViT; "
            f"class token after the block); {ALL_LAYERS}: the default layer in X_bioaug and "
            "every intermediate layer in X_bioaug_<layer>. An unknown layer is an error "
            f"listing the model's layers. Default: the layer the model's backbone declares "
            f"({defaults})")


def describe_layer(prov: dict) -> str:
    """``" at layer feature_map (default of backbone vgg_mnist)"`` from an embed's
    provenance; empty for raw pixels."""
    if prov.get("kind") == "raw":
        return ""
    text = f" at layer {prov.get('layer')} ({prov.get('layer_source', 'given')})"
    probed = list(prov.get("layers", []))
    if probed:
        text += f", and layers {', '.join(probed)} in X_bioaug_<layer>"
    return text


def aggregate_path(out: Path, level: str) -> Path:
    """``cells.h5ad`` → ``cells.well.h5ad`` / ``cells.treatment.h5ad``."""
    return out.with_name(f"{out.stem}.{level}{out.suffix or '.h5ad'}")


def _check_outputs(out_arg: str, levels: list[str], inputs: list[str | None],
                   overwrite: bool) -> tuple[Path, list[Path]]:
    """The main output and the aggregate outputs, each checked before any work."""
    from bioaug.embed.io import check_h5ad_path
    from bioaug.io import check_output

    out = check_h5ad_path(check_output(out_arg, "h5ad", inputs=inputs, replace=overwrite))
    extra = [check_output(aggregate_path(out, level), "h5ad", inputs=inputs,
                          replace=overwrite, flag=f"--aggregate {level} output")
             for level in dict.fromkeys(levels)]
    return out, extra


def run(args: argparse.Namespace) -> int:
    from bioaug.data.store import Store
    from bioaug.embed import aggregate, embed, write_h5ad
    from bioaug.embed.aggregate import check_aggregatable
    from bioaug.embed.embed import parse_shard
    from bioaug.errors import BioaugError

    missing = [flag for flag, value in (("--data", args.data), ("--out", args.out))
               if value is None]
    if missing:
        raise ConfigError(f"`bioaug embed` needs {' and '.join(missing)}",
                          hint="e.g. bioaug embed --checkpoint RUN_DIR --data STORE "
                               "--out cells.h5ad (or `bioaug embed merge SHARDS… --out F`)")
    if args.weights and not args.backbone:
        raise BioaugError("--weights is for a named --backbone; a checkpoint carries its "
                          "own weights and --raw needs none",
                          hint=f"e.g. --backbone resnet101_supervised --weights {args.weights}")
    shard = parse_shard(args.shard) if args.shard is not None else None
    if shard is not None and args.aggregate:
        raise ConfigError("--aggregate cannot be used with --shard: wells may span shards",
                          hint="aggregate when merging: bioaug embed merge SHARDS… --out F "
                               "--aggregate well")
    inputs = [args.data, *args.checkpoint, args.weights]
    out, _ = _check_outputs(args.out, args.aggregate, inputs, args.overwrite)
    store = Store.open(args.data)
    for level in dict.fromkeys(args.aggregate):  # before the embed, not after it
        check_aggregatable(store.obs.columns, level, where=store.path)
    work_dir = out.with_name(f".{out.name}.partial")  # resumable progress; removed at the end
    kwargs = {"weights": args.weights} if args.weights else None
    adata = embed(args.checkpoint, store, layer=args.layer, batch_size=args.batch_size,
                  backbone=args.backbone, raw=args.raw, device=args.device,
                  preprocess=args.preprocess, backbone_kwargs=kwargs, work_dir=work_dir,
                  shard=shard)
    written = [write_h5ad(adata, out)]
    for level in dict.fromkeys(args.aggregate):
        written.append(write_h5ad(aggregate(adata, level), aggregate_path(out, level)))
    shutil.rmtree(work_dir, ignore_errors=True)
    keys = ", ".join(f"{k} {adata.obsm[k].shape[1]}-d" for k in adata.obsm)
    what = f" (shard {shard[0]}/{shard[1]})" if shard is not None else ""
    print(f"embedded {adata.n_obs} items{what} ({keys}){describe_layer(adata.uns['bioaug'])}",
          file=sys.stdout)
    for path in written:
        print(f"wrote {path}")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    from bioaug.embed import aggregate, merge_files, write_h5ad
    from bioaug.embed.aggregate import check_aggregatable

    out, _ = _check_outputs(args.out, args.aggregate, list(args.shards), args.overwrite)
    merged = merge_files(args.shards)
    for level in dict.fromkeys(args.aggregate):
        check_aggregatable(merged.obs.columns, level, where=args.shards[0])
    written = [write_h5ad(merged, out)]
    for level in dict.fromkeys(args.aggregate):
        written.append(write_h5ad(aggregate(merged, level), aggregate_path(out, level)))
    print(f"merged {len(args.shards)} shards: {merged.n_obs} items")
    for path in written:
        print(f"wrote {path}")
    return 0
