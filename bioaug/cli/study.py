"""``bioaug sweep``, ``bioaug sweep report``, ``bioaug invariance``, ``bioaug demo``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bioaug.errors import ConfigError
from bioaug.io import check_output
from bioaug.seeds import check_seed


def register(sub: argparse._SubParsersAction) -> None:
    _register_sweep(sub)
    _register_invariance(sub)
    _register_demo(sub)


# -- sweep ------------------------------------------------------------------------------
def _register_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep", help="train → embed → evaluate over a grid of protocol parameters",
        description="Run a parameter sweep (resumable). `bioaug sweep --config SWEEP.yaml "
        "--out DIR` runs every point; `bioaug sweep report DIR` writes the class-bias report; "
        "`bioaug sweep status DIR` shows the progress of every point.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="On a cluster: `bioaug sweep --config S --out D --print-commands > cmds.txt`, "
        "then run line K+1 as job K (e.g. `sed -n \"$((SLURM_ARRAY_TASK_ID+1))p\" cmds.txt | "
        "bash`), then `bioaug sweep report D`.")
    p.add_argument("--config", type=Path, help="the sweep file (YAML)")
    p.add_argument("--out", type=Path, help="the sweep directory")
    p.add_argument("--print-commands", action="store_true",
                   help="print one shell command per point (line k runs point k) and exit")
    p.add_argument("--point", type=int, metavar="K", help="run only point K")
    p.set_defaults(func=_sweep)
    actions = p.add_subparsers(dest="sweep_action", metavar="ACTION")
    r = actions.add_parser("report", help="gather results.csv and write DIR/report/ (per-class "
                           "table, trends, inter-class bias heatmap)")
    r.add_argument("dir", type=Path, help="a sweep directory")
    r.set_defaults(func=_sweep_report)
    s = actions.add_parser("status", help="show the state of every point of a sweep")
    s.add_argument("dir", type=Path, help="a sweep directory")
    s.set_defaults(func=_sweep_status)


def _sweep(args: argparse.Namespace) -> int:
    from bioaug.study.sweep import Sweep

    if args.config is None or args.out is None:
        raise ConfigError("`bioaug sweep` needs --config SWEEP.yaml and --out DIR",
                          hint="or use `bioaug sweep report DIR` / `bioaug sweep status DIR`")
    # a sweep directory is always resumed (Sweep.create refuses one of another sweep)
    check_output(args.out, "sweep", inputs=[args.config], replace=True)
    sweep = Sweep.create(args.config, args.out)
    if args.print_commands:
        print("\n".join(sweep.commands(args.config)))
        return 0
    results = sweep.run(only=args.point)
    done, n = sweep.n_done(), len(sweep.points)
    if results is not None:
        print(f"all {n} points done; results: {results}")
        print(f"next: bioaug sweep report {sweep.out}")
    else:
        print(f"{done}/{n} points done; rerun the same command (or the other --point jobs) to "
              "finish, then `bioaug sweep report DIR`")
    return 0


def _sweep_report(args: argparse.Namespace) -> int:
    from bioaug.study.sweep import Sweep

    paths = Sweep.open(args.dir).report()
    print(f"report: {paths['report.md']}")
    for name in ("per_class.csv", "bias_matrix.csv", "bias_heatmap.png",
                 "per_class_vs_param.png", "overall_vs_per_class.png"):
        print(f"  {paths[name]}")
    return 0


def _sweep_status(args: argparse.Namespace) -> int:
    from bioaug.study.sweep import Sweep

    sweep = Sweep.open(args.dir)
    table = sweep.status_table()
    print(table.to_string(index=False, na_rep=""))
    print(f"{sweep.n_done()}/{len(sweep.points)} points done")
    return 0


# -- invariance -------------------------------------------------------------------------
def _register_invariance(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "invariance", help="measure a trained model's invariance to transformations",
        description="The invariance metric of Ericsson et al. (BMVC 2022): cosine similarity "
        "of Mahalanobis-whitened features of x and T(x), per transformation and amplitude.")
    p.add_argument("--checkpoint", type=Path, action="append",
                   help="a run directory or checkpoint file (repeat to compare models)")
    p.add_argument("--data", type=Path, help="a crop store")
    p.add_argument("--out", type=Path, help="output directory")
    p.add_argument("--protocol", help="also measure each step of this protocol (file or "
                   "shipped name)")
    p.add_argument("--ops", nargs="+", metavar="NAME",
                   help="transformations of the library to measure (default: every one the "
                   "data's channel count supports; see --list)")
    p.add_argument("--list", action="store_true", help="list the transformation library")
    p.add_argument("--n-images", type=int, default=512, help="images measured (default 512)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the results of an earlier invariance study in --out")
    p.set_defaults(func=_invariance)


def _invariance(args: argparse.Namespace) -> int:
    from bioaug.study.invariance import run_invariance
    from bioaug.study.invariance_library import describe_library

    if args.list:
        print(describe_library())
        return 0
    missing = [f"--{k.replace('_', '-')}" for k in ("checkpoint", "data", "out")
               if getattr(args, k) is None]
    if missing:
        raise ConfigError(f"`bioaug invariance` needs {', '.join(missing)}",
                          hint="e.g. bioaug invariance --checkpoint RUN_DIR --data STORE --out DIR")
    check_seed(args.seed, "--seed")
    check_output(args.out, "invariance", inputs=[*args.checkpoint, args.data],
                 replace=args.overwrite)
    result = run_invariance(args.checkpoint, args.data, args.out, protocol=args.protocol,
                            ops=args.ops, n_images=args.n_images, batch_size=args.batch_size,
                            seed=args.seed, device=args.device)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    print(result.summary_text())
    print(f"wrote {args.out}")
    return 0


# -- demo -------------------------------------------------------------------------------
def _register_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="end to end on the synthetic BBBC021 twin: expert vs default protocol",
        description="synth → prepare → train MoCo v2 (VGG13) with bbbc021-expert and "
        "moco-v2-default → embed (+ raw pixels, + fusion) → evaluate → summary table. "
        "Resumable: a rerun skips finished stages.")
    p.add_argument("--out", type=Path, default=Path("demo-out"), help="output directory "
                   "(default demo-out)")
    p.add_argument("--quick", action="store_true", help="smaller plan (under 3 min on a "
                   "2-core CPU)")
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--seed", "--seeds", dest="seeds", type=int, nargs="+", default=[0],
                   metavar="SEED", help="seed of training and evaluation (default 0); give "
                   "several (--seeds 0 1 2) to run the demo once per seed and write mean ± sd "
                   "and the claims checked to OUT/summary_seeds.md")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from bioaug.study.demo import check_seeds, plan_for, run_demo, run_demo_seeds

    size = "tiny" if args.tiny else "quick" if args.quick else "full"
    seeds = check_seeds(args.seeds)
    check_output(args.out, "demo", replace=True)  # a demo directory is resumed
    plan = plan_for(size, args.device)
    if len(seeds) == 1:
        run_demo(args.out, plan, seed=seeds[0])
    else:
        run_demo_seeds(args.out, plan, seeds=seeds)
    return 0
