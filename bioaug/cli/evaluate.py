"""``bioaug evaluate``: score an ``.h5ad`` embedding or a profile table; report + pictures."""

from __future__ import annotations

import argparse

from bioaug.evaluate.inputs import PROFILING_MODES


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate", help="score an embedding: Leiden/k-means AMI, NSC/NSCB, mAP, linear probe",
        description="Evaluate obsm[REP] of an .h5ad (or a Metadata_* + features .parquet/"
        ".csv table) against an obs label column: clustering (Leiden at the class count, "
        "k-means; AMI/ARI, silhouette), BBBC021 NSC/NSCB and retrieval mAP with permutation "
        "p-values when plate/well/compound/concentration/batch columns exist, and a linear "
        "probe with per-class accuracy. With --profile (or on a `bioaug profile` output) "
        "profiling is reported before and after correction. Writes report.json, report.md "
        "and PNGs into --out. An .h5ad from `bioaug embed --layer all` is scored at every layer: "
        "a metric-per-layer table (printed and in report.md) and layers.png.")
    p.add_argument("h5ad", help="AnnData file made by `bioaug embed` / `bioaug profile`, or a "
                   "profile table (.parquet, .csv)")
    p.add_argument("--label", default="moa", help="obs column with the classes (default moa; "
                   "natural-image stores: label)")
    p.add_argument("--out", required=True, metavar="REPORT_DIR", help="report directory")
    p.add_argument("--rep", default="X_bioaug", help="obsm key to evaluate (default X_bioaug)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random step (default 0)")
    p.add_argument("--profiling", choices=list(PROFILING_MODES), default="auto",
                   help="BBBC021 NSC/NSCB and mAP (auto: when the metadata columns exist; on: "
                   "an error, before any work, when they cannot be scored)")
    p.add_argument("--profile", metavar="STEPS|RECIPE.yaml", default=None,
                   help="also profile after these corrections, side by side: step names "
                   "(e.g. center,sphere) or a recipe YAML (see `bioaug profile`)")
    p.add_argument("--exclude", action="append", default=[], metavar="LABEL",
                   help="leave items of this label out of clustering and the probe, e.g. "
                        "DMSO (repeatable)")
    p.add_argument("--null-size", type=int, default=None, metavar="N",
                   help="permutations of the mAP null distribution (default 1000); drawn in "
                   "chunks, so memory stays bounded at any N while the time grows with it")
    p.add_argument("--no-plots", action="store_true", help="skip the pictures")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bioaug.evaluate import evaluate, format_table, summary_rows
    from bioaug.evaluate.render import before_after_rows, format_layer_table
    from bioaug.evaluate.retrieval import DEFAULT_NULL_SIZE

    report = evaluate(args.h5ad, label=args.label, rep=args.rep, out=args.out, seed=args.seed,
                      profiling_mode=args.profiling, plot=not args.no_plots,
                      exclude=args.exclude, profile=args.profile,
                      null_size=DEFAULT_NULL_SIZE if args.null_size is None
                      else args.null_size)
    print(format_table(summary_rows(report)))
    missing = report.input.n_items_without_label
    if missing:
        print(f"{missing} item(s) without a '{args.label}' left out of the label-based metrics")
    layers = format_layer_table(report)
    if layers:
        print("\nper layer:")
        print(layers)
    side = before_after_rows(report)
    if side:
        print("\nprofiling before → after correction:")
        print(format_table([(m, f"{b} → {a}", "") for m, b, a in side]))
    print(f"report: {args.out}/report.md (total {report.timings['total']:.1f} s)")
    return 0
