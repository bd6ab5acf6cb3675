"""``bioaug profile`` (aggregate + correct cell embeddings) and ``bioaug export`` (tables)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bioaug.profile.config import ProfileConfig
from bioaug.profile.steps import STEPS


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_profile(subparsers)
    _register_export(subparsers)


def _field_help(name: str) -> str:
    f = ProfileConfig.model_fields[name]
    return f"{f.description} (default {f.default})"


def _register_profile(sub: argparse._SubParsersAction) -> None:
    steps = "; ".join(f"{k}: {v.description}" for k, v in STEPS.items())
    p = sub.add_parser(
        "profile", help="aggregate cells to wells/treatments and correct them (TVN, …)",
        description="Aggregate a cell embedding to well (and treatment) profiles and apply "
        "ordered correction steps fitted on the control wells, per plate or globally. "
        f"Steps: {steps}. Every step and its fitted transform is recorded in "
        "uns['bioaug']['profile'] of the output.")
    p.add_argument("h5ad", help="cells .h5ad made by `bioaug embed`")
    p.add_argument("--out", required=True, help="profiles .h5ad to write")
    p.add_argument("--config", metavar="RECIPE.yaml", help="a profiling recipe (flags below "
                   "override its keys)")
    p.add_argument("--steps", metavar="STEP,STEP", help="correction steps in order, e.g. "
                   "center,sphere (parameters: --sphere, --sphere-method, or a recipe)")
    for name in ("rep", "correct_at", "output", "aggregate", "control", "plate"):
        field = ProfileConfig.model_fields[name]
        choices = getattr(field.annotation, "__args__", None)
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None,
                       choices=list(choices) if choices and all(isinstance(c, str)
                                                                for c in choices) else None,
                       help=_field_help(name))
    p.add_argument("--sphere", choices=["plate", "global"], default=None,
                   help="scope of the sphere step (default plate = TVN)")
    p.add_argument("--sphere-method", choices=["zca", "pca"], default=None,
                   help="whitening of the sphere step (default zca)")
    p.add_argument("--scope", choices=["plate", "global"], default=None,
                   help="scope of center/standardize/robust (default plate)")
    p.add_argument("--batch-key", default=None, help="obs column of the harmony step "
                   "(default batch)")
    p.add_argument("--reuse", metavar="PROFILES.h5ad", default=None,
                   help="correct these (new) plates the way an earlier `bioaug profile` output "
                   "was: its recipe, its global transforms and feature selection as fitted, "
                   "per-plate steps fitted on each new plate's controls")
    p.add_argument("--seed", type=int, default=0, help="seed of the stochastic steps")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out made "
                   "by bioaug profile")
    p.set_defaults(func=run_profile)


def _register_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="write profiles as a Parquet/CSV table (Metadata_* + features)",
        description="Write an .h5ad of profiles (or cells) as a table in pycytominer's "
        "layout: Metadata_<column> for every obs column, then one column per feature.")
    p.add_argument("h5ad", help="profiles .h5ad (e.g. from `bioaug profile`)")
    p.add_argument("--format", choices=["parquet", "csv"], default=None,
                   help="table format (default: from the --out suffix)")
    p.add_argument("--out", default=None, help="table to write (default: next to the input, "
                   "with the format's suffix)")
    p.add_argument("--rep", default="X_bioaug", help="obsm key of the features")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=run_export)


def recipe_from_args(args: argparse.Namespace) -> ProfileConfig:
    """The recipe: ``--config`` with the flags given on top."""
    from bioaug.profile import make_profile_config
    from bioaug.profile.config import read_profile_config

    values: dict[str, Any] = (read_profile_config(args.config).model_dump()
                              if args.config else {})
    for name in ("rep", "correct_at", "output", "aggregate", "control", "plate"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    if args.steps is not None:
        values["steps"] = [s.strip() for s in args.steps.split(",") if s.strip()]
    steps = []
    for spec in values.get("steps", []):
        name, params = ((spec["name"], dict(spec.get("params") or {}))
                        if isinstance(spec, dict) and "name" in spec else
                        (spec, {}) if isinstance(spec, str) else next(iter(spec.items())))
        params = dict(params or {})
        if name == "sphere":
            if args.sphere:
                params["scope"] = args.sphere
            if args.sphere_method:
                params["method"] = args.sphere_method
        if name in ("center", "standardize", "robust") and args.scope:
            params["scope"] = args.scope
        if name == "harmony" and args.batch_key:
            params["batch_key"] = args.batch_key
        steps.append({name: params})
    values["steps"] = steps
    return make_profile_config(values, source=args.config or "<command line>")


def _check_out(out: Path, inputs: list[Path], overwrite: bool, kind: str) -> None:
    """``--out`` is new, or a ``kind`` output of bioaug replaced with --overwrite; never an input."""
    from bioaug.io import check_output

    check_output(out, kind, inputs=inputs, replace=overwrite)


def run_profile(args: argparse.Namespace) -> int:
    from bioaug.embed import write_h5ad
    from bioaug.evaluate.report import load_adata
    from bioaug.profile import profile

    reuse = None
    if args.reuse:
        from bioaug.errors import ConfigError

        if args.config or args.steps:
            raise ConfigError("--reuse takes the recipe of the earlier profiles; leave out "
                              "--config and --steps")
        reuse, _ = load_adata(args.reuse)
        config = None
    else:
        config = recipe_from_args(args)
    out = Path(args.out)
    if out.suffix != ".h5ad":
        from bioaug.errors import ConfigError

        raise ConfigError(f"--out {out} must end in .h5ad")
    _check_out(out, [Path(args.h5ad), *([Path(args.reuse)] if args.reuse else [])],
               args.overwrite, "h5ad")
    adata, path = load_adata(args.h5ad)
    result = profile(adata, config, seed=args.seed, where=path, reuse=reuse)
    write_h5ad(result, out)
    info = result.uns["bioaug"]["profile"]
    steps = " → ".join(s["step"] for s in (info["steps"].values()
                                          if isinstance(info["steps"], dict)
                                          else info["steps"])) or "(none)"
    print(f"{info['n_input_items']} items → {info['n_profiles']} {info['level']} profiles; "
          f"{info['n_controls']} control profiles "
          f"({info['config']['control']}); steps: {steps}")
    print(f"wrote {out}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from bioaug.evaluate.report import load_adata
    from bioaug.profile.table import FORMATS, write_table

    src = Path(args.h5ad)
    fmt = args.format
    out = Path(args.out) if args.out else src.with_suffix(FORMATS[fmt or "parquet"][0])
    _check_out(out, [src], args.overwrite, "table")
    adata, _ = load_adata(src)
    write_table(adata, out, fmt, rep=args.rep)
    print(f"wrote {out} ({adata.n_obs} rows, {adata.obsm[args.rep].shape[1]} features)")
    return 0
