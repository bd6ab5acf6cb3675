"""MNIST transformation sets: which augmentations make a useful digit representation?

Reproduces: the MNIST study of Bendidi et al. 2023 ("No Free Lunch in Self-Supervised
Representation Learning"): MoCo v2 with a small VGG encoder trained with several
transformation sets — crop only, affine, blur/noise, rotation, all of them, and none (a
control) — compared by the silhouette of the digit classes, the AMI of Leiden / k-means
clusters against the digit and linear-probe accuracy, plus raw pixels as the floor.

Data: MNIST when ``--mnist-root DIR`` points at the idx files (``bioaug data fetch mnist``);
otherwise scikit-learn's bundled 8×8 digits upsampled to 28 px (1,797 images, offline) —
the same protocols and encoder, a much smaller and easier dataset.

Time: ``--quick`` ≈ 3–4 min on a 2-core CPU (digits, 3 epochs, one seed); the default
(digits, 20 epochs, 3 seeds) ≈ 30 min on CPU; MNIST with ``--epochs 100 --seeds 0 1 2`` is
a GPU job (a few minutes per model on one GPU).

    python examples/digits_transformation_sets.py --quick --out runs/digits-quick
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bioaug.study.compare import compare_protocols, format_summary, summarize

SETS = ["mnist-crop", "mnist-affine", "mnist-blur", "mnist-rotation", "mnist-all", "none"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/digits-transformation-sets"))
    ap.add_argument("--mnist-root", type=Path, help="folder with the MNIST idx files")
    ap.add_argument("--quick", action="store_true", help="3 epochs, one seed")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--seeds", type=int, nargs="+")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)

    from bioaug.data.natural import prepare_natural
    from bioaug.data.store import is_store

    store = args.out / ("mnist-store" if args.mnist_root else "digits-store")
    if not is_store(store):
        if args.mnist_root:
            prepare_natural("mnist", args.mnist_root, store)
        else:
            prepare_natural("digits", None, store, size=28)
    epochs = args.epochs or (3 if args.quick else 20)
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    train = {"method": "moco_v2", "backbone": "vgg_mnist", "width": 0.5, "crop": 28,
             "epochs": epochs, "batch_size": 128, "lr": 0.06, "num_workers": 0,
             "tensorboard": False}
    table = compare_protocols(store, SETS, args.out / "comparison", labels=["label"],
                              train=train, seeds=seeds, device=args.device, raw=True,
                              evaluate_kwargs={"plot": False})
    print(f"\n{'MNIST' if args.mnist_root else 'sklearn digits (28 px)'}, MoCo v2 + vgg_mnist, "
          f"{epochs} epochs, {len(seeds)} seed(s); mean ± std over seeds\n")
    print(format_summary(summarize(table), ["silhouette", "leiden_ami", "kmeans_ami",
                                            "linear_accuracy"]))
    print(f"\ntables: {args.out / 'comparison'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
