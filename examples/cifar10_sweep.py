"""CIFAR-10 colour-jitter probability sweep and its class-level bias.

Reproduces: Bendidi et al. 2023 ("No Free Lunch in Self-Supervised Representation
Learning"), research question 1 — sweeping the probability of colour jitter barely moves
overall linear accuracy but moves per-class accuracy a lot, in opposite directions for
different classes. Runs ``bioaug sweep`` over ``views[*].steps.color_jitter.p`` of the
``cifar-default`` protocol (MoCo v2), then ``bioaug sweep report``: per-class accuracy
against p with seed spread, which classes gain / lose, the inter-class bias matrix
(correlation of per-class accuracies across runs) and overall vs per-class.

Data: CIFAR-10 when ``--cifar-root DIR`` holds ``cifar-10-batches-py`` (``bioaug data fetch
cifar10``), trained with ResNet-18 (CIFAR stem) as in the paper; otherwise an offline
stand-in: scikit-learn's digits as 32 px RGB images (same protocol, a small VGG13).

Time: ``--quick`` (stand-in, p ∈ {0, 0.5, 1}, one seed, 3 epochs) ≈ 3 min on a 2-core CPU;
the default stand-in sweep (p in steps of 0.25, 2 seeds) ≈ 15 min on CPU; the paper's sweep
(p in steps of 0.05 × 3 seeds × 1000 epochs on CIFAR-10) is 63 GPU runs — submit it with
``--print-commands`` to a cluster.

    python examples/cifar10_sweep.py --quick --out runs/cifar-sweep-quick
    python examples/cifar10_sweep.py --cifar-root /data/cifar --paper --out runs/cifar \
        --print-commands > jobs.txt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import yaml

AXIS = "views[*].steps.color_jitter.p"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/cifar10-sweep"))
    ap.add_argument("--cifar-root", type=Path, help="folder with cifar-10-batches-py")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--paper", action="store_true", help="the paper's grid and schedule")
    ap.add_argument("--print-commands", action="store_true",
                    help="only print one command per sweep point (for a cluster)")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)

    from bioaug.data.natural import prepare_natural
    from bioaug.data.store import is_store
    from bioaug.study.standins import rgb_digits_store
    from bioaug.study.sweep import Sweep

    args.out.mkdir(parents=True, exist_ok=True)
    if args.cifar_root:
        store = args.out / "cifar10-store"
        if not is_store(store):
            prepare_natural("cifar10", args.cifar_root, store)
        model = {"backbone": "resnet18", "backbone_kwargs": {"cifar_stem": True}}
    else:
        store = rgb_digits_store(args.out / "digits-rgb-store", size=32)
        model = {"backbone": "vgg13_bn", "width": 0.125}

    if args.paper:
        values = [round(v, 2) for v in np.arange(0.0, 1.0001, 0.05)]
        seeds, train = [0, 1, 2], {"epochs": 1000, "batch_size": 512, "lr": 0.3,
                                   "warmup_epochs": 10, "num_workers": 4}
    elif args.quick:
        values, seeds = [0.0, 0.5, 1.0], [0]
        train = {"epochs": 3, "batch_size": 128, "lr": 0.06, "num_workers": 0}
    else:
        values, seeds = [0.0, 0.25, 0.5, 0.75, 1.0], [0, 1]
        train = {"epochs": 15, "batch_size": 128, "lr": 0.06, "num_workers": 0}
    backbone = model.pop("backbone")
    sweep_cfg = {
        "bioaug_sweep": 1, "name": "colour-jitter probability",
        "description": "Bendidi et al. 2023, RQ1: class-level bias of colour-jitter p",
        "protocol": "cifar-default", "data": str(store.resolve()), "label": "label",
        "method": "moco_v2", "backbone": backbone,
        "train": {**train, **model, "crop": 32, "tensorboard": False},
        "evaluate": {"plot": False}, "axes": {AXIS: values}, "seeds": seeds,
        "device": args.device}
    cfg_path = args.out / "sweep.yaml"
    cfg_path.write_text(yaml.safe_dump(sweep_cfg, sort_keys=False))

    sweep = Sweep.create(cfg_path, args.out / "sweep")
    if args.print_commands:
        print("\n".join(sweep.commands(cfg_path)))
        return 0
    sweep.run()
    paths = sweep.report()
    import pandas as pd

    trends = pd.read_csv(paths["trends.csv"])
    overall = pd.read_csv(paths["overall.csv"])
    print("\noverall linear accuracy against p:")
    print(overall[[AXIS, "linear_accuracy_mean", "linear_accuracy_std"]].to_string(index=False))
    print("\nper class, low p → high p:")
    print(trends[["class", "change", "direction"]].to_string(index=False))
    print(f"\nreport: {paths['report.md']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
