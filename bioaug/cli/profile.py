"""``bioaug profile`` (aggregate + correct cell embeddings) and ``bioaug export`` (tables)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bioaug.profile.config import NONE, STANDARD, ProfileConfig, parse_steps
from bioaug.profile.standard import MIN_PLATE_CONTROLS
from bioaug.profile.steps import STEPS
from bioaug.profile.table import FORMATS

#: Flags that set parameters of explicitly named steps.
STEP_FLAGS = ("sphere", "sphere_method", "scope", "batch_key")


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
        f"Steps: {steps}. Without --steps the field's standard correction is applied: "
        "standardize per plate on the controls (pycytominer's normalize(method="
        "'standardize', samples=controls)), then sphere (ZCA) on all controls together "
        f"(TVN, Ando et al. 2017); with fewer than {MIN_PLATE_CONTROLS} control profiles "
        "on a plate, or no controls, each plate is standardised on all its profiles; with "
        "no more control profiles than features, sphering is skipped. The summary says "
        "which steps were applied and why. Every step and its fitted transform is recorded "
        "in uns['bioaug']['profile'] of the output.")
    p.add_argument("h5ad", help="cells .h5ad made by `bioaug embed`")
    p.add_argument("--out", required=True, help="profiles .h5ad to write")
    p.add_argument("--config", metavar="RECIPE.yaml", help="a profiling recipe (flags below "
                   "override its keys)")
    p.add_argument("--steps", metavar="STEP,STEP", help="correction steps in order, e.g. "
                   "center,sphere (parameters: --sphere, --sphere-method, or a recipe); "
                   f"'{STANDARD}' (default): the field's standard correction, chosen for "
                   f"the data; '{NONE}': no correction")
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
                   "per-plate steps fitted on each new plate's controls. The features (--rep) "
                   "must be those it was fitted on: the same layer, feature count and model")
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
    p.add_argument("--format", choices=list(FORMATS), default=None,
                   help="table format (default: from the --out suffix; when given, the "
                   "--out suffix must agree: "
                   + ", ".join(f"{k} {' or '.join(v)}" for k, v in FORMATS.items()) + ")")
    p.add_argument("--out", default=None, help="table to write (default: next to the input, "
                   "with the format's suffix)")
    p.add_argument("--rep", default="X_bioaug", help="obsm key of the features")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=run_export)


def recipe_from_args(args: argparse.Namespace) -> ProfileConfig:
    """The recipe: ``--config`` with the flags given on top."""
    from bioaug.profile import make_profile_config
    from bioaug.profile.config import read_profile_config

    values: dict[str, Any] = (read_profile_config(args.config).model_dump(exclude_unset=True)
                              if args.config else {})
    for name in ("rep", "correct_at", "output", "aggregate", "control", "plate"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    if args.steps is not None:
        values["steps"] = parse_steps(args.steps)
    if isinstance(values.get("steps", STANDARD), str):
        _check_no_step_flags(args, values.get("steps", STANDARD))
        return make_profile_config(values, source=args.config or "<command line>")
    steps = []
    for spec in values["steps"]:
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


def _check_no_step_flags(args: argparse.Namespace, steps: str) -> None:
    """The step-parameter flags need named steps: the standard correction picks its own."""
    from bioaug.errors import ConfigError

    given = [f"--{n.replace('_', '-')}" for n in STEP_FLAGS if getattr(args, n, None)]
    if given:
        raise ConfigError(f"{', '.join(given)} set(s) parameters of the steps named in "
                          f"--steps; with steps '{steps}' there are none to set",
                          hint="name the steps, e.g. --steps standardize,sphere --sphere "
                               "global")


#: Flags that set the recipe, which --reuse takes from the earlier profiles instead.
RECIPE_FLAGS = ("config", "steps", "correct_at", "output", "aggregate", "control", "plate",
                *STEP_FLAGS)


def _check_no_recipe_flags(args: argparse.Namespace) -> None:
    """--reuse applies the earlier profiles' recipe: a flag that sets the recipe would be
    ignored, so it is refused (--rep, which features to read, is honoured)."""
    from bioaug.errors import ConfigError

    given = [f"--{n.replace('_', '-')}" for n in RECIPE_FLAGS if getattr(args, n, None)]
    if given:
        raise ConfigError(f"--reuse takes the recipe of the earlier profiles; leave out "
                          f"{', '.join(given)}",
                          hint="profile without --reuse to give a recipe of your own")


def summary_lines(info: dict[str, Any]) -> list[str]:
    """The printed summary of a profile's provenance: counts, steps and why."""
    records = info["steps"].values() if isinstance(info["steps"], dict) else info["steps"]
    steps = " → ".join(s["step"] for s in records) or "(none)"
    source = str(info.get("steps_source", ""))
    why = {"standard": f" (the standard correction; --steps {NONE} for none)",
           "given": " (as given)", "none": " (as asked)",
           "reused": " (reused from the earlier profiles)"}.get(source, "")
    lines = [f"{info['n_input_items']} items → {info['n_profiles']} {info['level']} profiles; "
             f"{info['n_controls']} control profiles ({info['config']['control']}); "
             f"steps: {steps}{why}"]
    standard = info.get("standard")
    if isinstance(standard, dict):
        notes = standard.get("notes", [])
        lines += [f"  {n}" for n in (notes.values() if isinstance(notes, dict) else notes)]
    return lines


def _check_out(out: Path, inputs: list[Path], overwrite: bool, kind: str) -> None:
    """``--out`` is new, or a ``kind`` output of bioaug replaced with --overwrite; never an input."""
    from bioaug.io import check_output

    check_output(out, kind, inputs=inputs, replace=overwrite)


def run_profile(args: argparse.Namespace) -> int:
    from bioaug.embed import write_h5ad
    from bioaug.embed.io import check_h5ad_path
    from bioaug.evaluate.inputs import load_adata
    from bioaug.profile import profile

    reuse = None
    if args.reuse:
        _check_no_recipe_flags(args)
        reuse, _ = load_adata(args.reuse)
        config = None
    else:
        config = recipe_from_args(args)
    out = check_h5ad_path(args.out)
    _check_out(out, [Path(args.h5ad), *([Path(args.reuse)] if args.reuse else [])],
               args.overwrite, "h5ad")
    adata, path = load_adata(args.h5ad)
    result = profile(adata, config, rep=args.rep, seed=args.seed, where=path, reuse=reuse)
    write_h5ad(result, out)
    for line in summary_lines(result.uns["bioaug"]["profile"]):
        print(line)
    print(f"wrote {out}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from bioaug.evaluate.inputs import load_adata
    from bioaug.profile.table import FORMATS, format_of, write_table

    src = Path(args.h5ad)
    out = Path(args.out) if args.out else src.with_suffix(FORMATS[args.format or "parquet"][0])
    fmt = format_of(out, args.format)  # the suffix and the format agree, before any work
    _check_out(out, [src], args.overwrite, "table")
    adata, _ = load_adata(src)
    write_table(adata, out, fmt, rep=args.rep)
    print(f"wrote {out} ({adata.n_obs} rows, {adata.obsm[args.rep].shape[1]} features)")
    return 0
