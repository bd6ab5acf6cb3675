"""BBBC021: expert vs default augmentation vs a supervised ImageNet ResNet-101.

Reproduces: Bendidi et al. 2023, "No Free Lunch in Self-Supervised Representation
Learning", research questions 3 and 4 — on microscopy, transformation choice matters, and
expert-designed transformations act as supervision, matching or beating a supervised
ImageNet ResNet-101. MoCo v2 + VGG13-BN trained with ``bbbc021-expert``, with the natural
image recipe ``moco-v2-default`` and with no augmentation (``none``, a control); embedded
alongside raw pixels (the floor), the fusion of the expert and default models, and the
supervised ResNet-101 (only when its torchvision weights are already on disk: bioaug never
downloads). Scored by AMI of Leiden / k-means clusters against the MoA, NSC and NSCB 1-NN
MoA accuracy of treatment profiles, and a linear probe.

Data: the synthetic BBBC021 twin, made on the fly (no download), or the real BBBC021 with
``--root DIR`` (the published layout: the two CSVs and the WeekN folders; fetch it with
``bioaug data fetch bbbc021``).

Sizes: ``--quick`` uses the sizes of ``bioaug demo --quick``, the default those of
``bioaug demo`` on a CPU (see ``bioaug.study.demo.PLANS``), ``--paper`` those of the GPU demo.
Training uses the method's optimiser recipe, as the demo does. ``bioaug demo --seeds 0 1 2``
runs the demo's own comparison (without the ``none`` control and ResNet-101) over seeds.

Time: ``--quick`` ≈ 2 min on an otherwise idle 2-core CPU (one seed; ``--seeds 0 1 2`` ≈ 4
min); the default (3 seeds) ≈ 15–20 min on a 2-core CPU; ``--paper`` (VGG13 full width, 96 px, 100 epochs, 3
seeds) is for a GPU — about 1 h per model on real BBBC021 with one recent GPU.

    python examples/bbbc021_expert_vs_default.py --quick --out runs/bbbc021-quick
    python examples/bbbc021_expert_vs_default.py --root /data/BBBC021 --paper --out runs/b
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bioaug.study.compare import compare_protocols, format_summary, summarize
from bioaug.study.demo import PLANS, train_settings

PROTOCOLS = ["bbbc021-expert", "moco-v2-default", "none"]

#: Sizes: ``--quick`` and the default are the demo's ``quick`` and ``full`` plans, ``--paper``
#: its ``gpu`` plan; the seeds are this study's.
SEEDS = {"quick": [0], "full": [0, 1, 2], "gpu": [0, 1, 2]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/bbbc021-expert-vs-default"))
    ap.add_argument("--root", type=Path, help="real BBBC021 folder (default: the twin)")
    ap.add_argument("--quick", action="store_true", help="one seed, tiny sizes")
    ap.add_argument("--paper", action="store_true", help="the paper's sizes (use a GPU)")
    ap.add_argument("--seeds", type=int, nargs="+", help="override the seeds")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)

    from bioaug.data.prepare import prepare_bbbc021
    from bioaug.data.store import is_store
    from bioaug.data.synth import synth_bbbc021

    name = "gpu" if args.paper else "quick" if args.quick else "full"
    plan = PLANS[name]
    seeds = args.seeds or SEEDS[name]
    root = args.root
    if root is None:
        root = args.out / "twin"
        if not (root / "BBBC021_v1_image.csv").is_file():
            synth_bbbc021(root, plates=plan.plates, sites=plan.sites, size=plan.field_size,
                          cells_per_field=plan.cells_per_field,
                          wells_per_plate=plan.wells_per_plate, seed=0)
    store = args.out / "store"
    if not is_store(store):
        prepare_bbbc021(root, store, crop_size=plan.crop_size, resize=plan.resize,
                        moa_only=True)

    train = train_settings(plan)  # no optimiser settings: the method's recipe applies
    table = compare_protocols(
        store, PROTOCOLS, args.out / "comparison", labels=["moa"], train=train, seeds=seeds,
        device=args.device, raw=True, backbones=["resnet101_supervised"],
        fuse=[["bbbc021-expert", "moco-v2-default"]],
        evaluate_kwargs={"plot": not args.quick})
    summary = summarize(table)
    print(f"\nBBBC021 ({'real' if args.root else 'synthetic twin'}), {len(seeds)} seed(s); "
          "mean ± std over seeds\n")
    print(format_summary(summary, ["leiden_ami", "kmeans_ami", "nsc", "nscb",
                                   "linear_accuracy"]))
    print(f"\ntables: {args.out / 'comparison' / 'comparison.csv'} and comparison_summary.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
