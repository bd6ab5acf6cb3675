"""``bioaug evaluate``: score an ``.h5ad`` embedding; report.json, report.md and pictures."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate", help="score an embedding: Leiden/k-means AMI, NSC/NSCB, linear probe",
        description="Evaluate obsm[REP] of an .h5ad against an obs label column: clustering "
        "(Leiden at the class count, k-means; AMI/ARI, silhouette), BBBC021 NSC/NSCB when "
        "plate/well/compound/concentration/batch columns exist, and a linear probe with "
        "per-class accuracy. Writes report.json, report.md and PNGs into --out.")
    p.add_argument("h5ad", help="AnnData file made by `bioaug embed`")
    p.add_argument("--label", default="moa", help="obs column with the classes (default moa; "
                   "natural-image stores: label)")
    p.add_argument("--out", required=True, metavar="REPORT_DIR", help="report directory")
    p.add_argument("--rep", default="X_bioaug", help="obsm key to evaluate (default X_bioaug)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random step (default 0)")
    p.add_argument("--profiling", choices=["auto", "on", "off"], default="auto",
                   help="BBBC021 NSC/NSCB (auto: when the metadata columns exist)")
    p.add_argument("--exclude", action="append", default=[], metavar="LABEL",
                   help="leave items of this label out of clustering and the probe, e.g. "
                        "DMSO (repeatable)")
    p.add_argument("--no-plots", action="store_true", help="skip the pictures")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bioaug.evaluate import evaluate, format_table, summary_rows
    from bioaug.io import require_dir_path

    require_dir_path(args.out, what="report directory")
    report = evaluate(args.h5ad, label=args.label, rep=args.rep, out=args.out, seed=args.seed,
                      profiling_mode=args.profiling, plot=not args.no_plots,
                      exclude=args.exclude)
    print(format_table(summary_rows(report)))
    print(f"report: {args.out}/report.md (total {report['timings']['total']:.1f} s)")
    return 0
