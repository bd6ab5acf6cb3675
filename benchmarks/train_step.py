"""Speed of a full bioaug training step against baselines run in the same process.

Two comparisons: MoCo v2 on CNNs (images/s, against a pure model step and lightly) and
DINO with multi-crop on a Vision Transformer (steps/s, against the bare timm model).

MoCo v2
-------
* **bioaug**: ``bioaug.train.train`` on a store: batched store read (DataLoader workers
  do no per-sample work) → float on the device → the protocol's views in batch on the
  device → MoCo v2 forward/backward → SGD step → momentum update; measured from the
  per-step timestamps in ``metrics.csv`` after a few warm-up steps.

Rates are batch / median step time (wall clock, data waits included). The three are run
back to back in each of several rounds and the ratios are taken within a round (then the
median over rounds), so a shared machine whose load drifts does not bias the comparison.
* **pure model step**: the same method, optimiser and step on pre-made view tensors of the
  same shape — the physical ceiling of that model on this machine.
* **lightly** (if ``lightly`` imports): its ``MoCoV2Transform`` (PIL, per sample) in
  DataLoader workers, its ``MoCoProjectionHead``, ``NTXentLoss`` with a memory bank of the
  same size and ``update_momentum``; the same backbone, batch and optimiser.

Cases (CPU): ``vgg13_bn`` width 0.25 on 64 px RGB crops (``moco-v2-default`` protocol vs
lightly's MoCoV2Transform), and ``vgg_mnist`` on 28 px one-channel images (``mnist-crop``:
random resized crops vs torchvision's RandomResizedCrop in the workers).

DINO multi-crop
---------------
``vit_tiny`` (patch 8, position embeddings for 32 px; a 16 px local crop is then 2 × 2
patches rather than one token) on a synthetic 40 px RGB store, batch 32, the steps of the
shipped ``dino-multicrop`` protocol with 2 global views of 32 px and 6 local views of 16 px,
DINO at its defaults (head 2048 → 256 → K = 4096, AdamW, gradient clipping 3.0);
``--dino-crops 64,32`` times larger crops (the head costs the same per image, the ViT
more with every token). Steps/s (1 / median step time) of

* **bioaug**: ``bioaug.train.train`` as above: store read → the 8 views on the device →
  teacher (backbone + head) on the 2 global views, student (backbone + head) on all 8 →
  DINO loss with centring and sharpening → backward → clipping → AdamW → EMA of the teacher;
* **bare ViT**: timm's ``vit_tiny_patch16_224`` built with the same options (no bioaug code)
  on pre-made random crops of the same number and sizes: the student's forward + backward
  on all 8 crops (one pass per crop size, as DINO does) and a no-grad forward of a copy (the
  teacher) on the 2 global crops, a trivial loss (mean square of the student's outputs),
  gradient clipping at 3.0 and an AdamW step. It does **not** include DINO's projection
  head, its loss, centring, the teacher's EMA update, augmentation or store reads;
* **bare ViT + head**: the bare ViT step plus a plain head of DINO's shape (Linear/GELU MLP
  192 → 2048 → 2048 → 256, L2 normalisation, bias-free Linear to 4096; no weight
  normalisation) on the student's outputs of all crops, and its copy on the teacher's.

``bioaug / bare ViT`` is the ratio against the backbone alone, so it counts the head's
forward and backward as cost; ``bioaug / bare ViT + head`` leaves what bioaug adds beyond
the networks DINO trains: the loss, centring, the EMA update, augmentation, store reads and
the loop.

The three run side by side step for step: after each step of the training loop (at its
metrics row) one step of each bare baseline runs, timed on its own and taken out of the
loop's step time, so all three see the same machine load. Each round is one training run
and the ratios are taken within a round. With ``--clock cpu`` the steps are timed by this
process's CPU time instead of the wall clock, which swings less with the load of other
jobs; it counts every thread's time, so use it with ``--threads 1``. Where other jobs use
the cores too, more torch threads than free cores slow every side down erratically (each
waits on a thread that is not running); ``--threads 1`` keeps the timings steady.

    python benchmarks/train_step.py [--quick] [--cases moco,dino] [--rounds N] [--threads N]
                                    [--clock wall|cpu]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from unittest import mock

os.environ.setdefault("BIOAUG_PROGRESS", "0")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from bioaug.augment.protocols import resolve_protocol
from bioaug.data.store import Store, write_store
from bioaug.methods import build_method
from bioaug.models import build_backbone
from bioaug.train.config import TrainConfig
from bioaug.train.loop import train
from bioaug.train.metrics import MetricsLogger, read_metrics
from bioaug.train.optim import build_optimizer

CASES = [
    # name, backbone, kwargs, channels, stored size, crop, protocol, batch
    ("vgg13_bn w0.25 @64px RGB", "vgg13_bn", {"width": 0.25}, ["red", "green", "blue"], 72, 64,
     "moco-v2-default", 32),
    ("vgg_mnist @28px gray", "vgg_mnist", {}, ["gray"], 28, 28, "mnist-crop", 128),
]
QUEUE = 1024
HEAD = {"proj_hidden_dim": 2048, "proj_output_dim": 128, "queue_size": QUEUE,
        "temperature": 0.2, "momentum": 0.999}


@dataclass(frozen=True)
class MultiCropCase:
    """The DINO comparison: backbone, store, crops and the head's shape (DINO's defaults)."""

    channels: int = 3
    stored: int = 40
    global_crop: int = 32
    n_global: int = 2
    local_crop: int = 16
    n_local: int = 6
    batch: int = 32
    patch: int = 8
    head_hidden: int = 2048
    head_bottleneck: int = 256
    head_out: int = 4096
    lr: float = 5e-4  # DINO's recipe per 256 images, scaled linearly
    weight_decay: float = 0.04
    grad_clip: float = 3.0

    @property
    def backbone_kwargs(self) -> dict[str, int]:
        return {"patch_size": self.patch, "img_size": self.global_crop}


DINO_CASE = MultiCropCase()


def make_store(path: Path, n: int, channels: list[str], size: int, seed: int = 0) -> Store:
    """Smooth random uint8 images (so crops, blur and jitter have something to act on)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, len(channels), size // 4 + 1, size // 4 + 1), dtype=np.uint8)
    images = np.repeat(np.repeat(small, 4, axis=2), 4, axis=3)[:, :, :size, :size].copy()
    obs = pd.DataFrame({"label": rng.integers(0, 10, n).astype(str)})
    return write_store(path, images, obs, channels=channels, label_column="label")


def bioaug_rate(store: Path, out: Path, backbone: str, bkw: dict, protocol: str,
                batch: int, steps: int, warm: int) -> float:
    cfg = TrainConfig(data=store, protocol=protocol, out=out, method="moco_v2",
                      backbone=backbone, backbone_kwargs=bkw, batch_size=batch, epochs=1,
                      max_steps=warm + steps, lr=0.03, device="cpu",
                      tensorboard=False, method_kwargs=HEAD)
    # the run is deliberately short: keep its advice about short runs out of the table
    with contextlib.redirect_stderr(io.StringIO()):
        train(cfg)
    stamps = [r["elapsed_s"] for r in read_metrics(out / "metrics.csv")]
    return batch / statistics.median(np.diff(stamps[warm - 1:]))


def pure_rate(backbone: str, bkw: dict, n_channels: int, crop: int, batch: int, steps: int,
              warm: int) -> float:
    torch.manual_seed(0)
    method = build_method("moco_v2", build_backbone(backbone, n_channels, **bkw), **HEAD)
    method.configure_for_dataset(QUEUE * 4, batch)
    method.train()
    opt = build_optimizer(method, "sgd", 0.03 * batch / 256, 0.9, 1e-4)
    params = [p for p in method.parameters() if p.requires_grad]
    views = [torch.rand(batch, n_channels, crop, crop) for _ in range(2)]
    times = []
    for i in range(warm + steps):
        t = time.perf_counter()
        loss = method.training_loss(views)["loss"]
        loss.item()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, float("inf"))
        opt.step()
        method.after_step((i + 1) / (warm + steps))
        times.append(time.perf_counter() - t)
    return batch / statistics.median(times[warm:])


def lightly_rate(store_path: Path, backbone: str, bkw: dict, n_channels: int, crop: int,
                 batch: int, steps: int, warm: int) -> float | None:
    try:
        from lightly.loss import NTXentLoss
        from lightly.models.modules import MoCoProjectionHead
        from lightly.models.utils import deactivate_requires_grad, update_momentum
        from lightly.transforms import MoCoV2Transform
        from PIL import Image
        from torchvision import transforms as T
    except ImportError:
        return None

    if n_channels == 3:
        transform = MoCoV2Transform(input_size=crop, normalize=None)
        mode = "RGB"
    else:
        one = T.Compose([T.RandomResizedCrop(crop, scale=(0.5, 1.0), ratio=(0.8, 1.25)),
                         T.ToTensor()])

        def transform(img):
            return [one(img), one(img)]
        mode = "L"

    class PILStore(torch.utils.data.Dataset):
        def __init__(self) -> None:
            self.store: Store | None = None

        def __len__(self) -> int:
            return len(Store.open(store_path))

        def __getitem__(self, i: int):
            if self.store is None:
                self.store = Store.open(store_path)
            arr = np.asarray(self.store.images[i])
            img = Image.fromarray(arr.transpose(1, 2, 0) if mode == "RGB" else arr[0], mode)
            return transform(img)

    loader = torch.utils.data.DataLoader(PILStore(), batch_size=batch, shuffle=True,
                                         num_workers=2, drop_last=True, prefetch_factor=2,
                                         persistent_workers=True)

    torch.manual_seed(0)
    enc = build_backbone(backbone, n_channels, **bkw)
    head = MoCoProjectionHead(enc.out_dim, HEAD["proj_hidden_dim"], HEAD["proj_output_dim"])
    enc_k, head_k = copy.deepcopy(enc), copy.deepcopy(head)
    deactivate_requires_grad(enc_k)
    deactivate_requires_grad(head_k)
    criterion = NTXentLoss(temperature=0.2, memory_bank_size=(QUEUE, HEAD["proj_output_dim"]))
    model = nn.ModuleList([enc, head])
    opt = torch.optim.SGD(model.parameters(), lr=0.03 * batch / 256, momentum=0.9,
                          weight_decay=1e-4)
    done, times = 0, []
    t_last = time.perf_counter()
    while done < warm + steps:
        for x_q, x_k in loader:
            update_momentum(enc, enc_k, 0.999)
            update_momentum(head, head_k, 0.999)
            q = head(enc(x_q))
            with torch.no_grad():
                k = head_k(enc_k(x_k))
            loss = criterion(q, k)
            loss.item()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            now = time.perf_counter()
            times.append(now - t_last)
            t_last = now
            if done == warm + steps:
                break
    return batch / statistics.median(times[warm:])


def write_multicrop_protocol(path: Path, case: MultiCropCase) -> Path:
    """The shipped ``dino-multicrop`` protocol with the case's crop sizes and counts."""
    data = yaml.safe_load(resolve_protocol("dino-multicrop").read_text(encoding="utf-8"))
    data["name"] = "dino-multicrop-bench"
    glob, local = data["views"]
    glob.update(crop_size=case.global_crop, count=case.n_global)
    local.update(crop_size=case.local_crop, count=case.n_local)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


#: name → clock of the DINO comparison (``--clock``)
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def bare_vit(case: MultiCropCase) -> nn.Module:
    """timm's ViT-Tiny with the options bioaug's ``vit_tiny`` uses, straight from timm."""
    import timm

    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0,
                             in_chans=case.channels, img_size=case.global_crop,
                             patch_size=case.patch, dynamic_img_size=True,
                             dynamic_img_pad=True)


class PlainHead(nn.Module):
    """A head of DINO's shape in plain layers: MLP → L2 normalisation → bias-free Linear."""

    def __init__(self, in_dim: int, case: MultiCropCase) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, case.head_hidden), nn.GELU(),
                                 nn.Linear(case.head_hidden, case.head_hidden), nn.GELU(),
                                 nn.Linear(case.head_hidden, case.head_bottleneck))
        self.last = nn.Linear(case.head_bottleneck, case.head_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(F.normalize(self.mlp(x), dim=-1))


class BareDINOStep:
    """One bare step: the student's forward + backward on every crop (one pass per crop
    size), a no-grad forward of the teacher (a copy) on the global crops, a trivial loss,
    gradient clipping and AdamW; with ``head``, a :class:`PlainHead` after the ViT."""

    def __init__(self, case: MultiCropCase, *, head: bool) -> None:
        torch.manual_seed(0)
        self.vit = bare_vit(case)
        self.head = PlainHead(self.vit.num_features, case) if head else nn.Identity()
        self.student = nn.Sequential(self.vit, self.head)
        self.teacher = copy.deepcopy(self.student).requires_grad_(False)
        self.opt = torch.optim.AdamW(self.student.parameters(), lr=case.lr * case.batch / 256,
                                     weight_decay=case.weight_decay)
        self.clip = case.grad_clip
        self.crops = {size: torch.rand(n * case.batch, case.channels, size, size)
                      for size, n in ((case.global_crop, case.n_global),
                                      (case.local_crop, case.n_local))}
        self.global_crop = case.global_crop

    def __call__(self) -> None:
        with torch.no_grad():
            self.teacher(self.crops[self.global_crop])
        feats = torch.cat([self.vit(x) for x in self.crops.values()])
        loss = self.head(feats).square().mean()
        loss.item()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.student.parameters(), self.clip)
        self.opt.step()


@contextlib.contextmanager
def interleaved(clock: Callable[[], float],
                others: dict[str, Callable[[], None]]) -> Iterator[dict[str, list[float]]]:
    """Time the training loop's steps and, after each, one step of every baseline.

    Each metrics row the loop logs (one per step) is stamped with ``clock()`` and followed
    by a step of each of ``others``, timed on their own; their time is taken out of the
    loop's stamps, so ``times["bioaug"]`` holds the loop's step times alone. The baselines
    thus run side by side with bioaug, step for step, under the same machine load.
    """
    times: dict[str, list[float]] = {"bioaug": [], **{name: [] for name in others}}
    log = MetricsLogger.log
    state = {"last": None, "paused": 0.0}

    def log_then_baselines(self: MetricsLogger, row: dict) -> None:
        log(self, row)
        now = clock() - state["paused"]
        if state["last"] is not None:
            times["bioaug"].append(now - state["last"])
        state["last"] = now
        start = clock()
        for name, step in others.items():
            t = clock()
            step()
            times[name].append(clock() - t)
        state["paused"] += clock() - start

    with mock.patch.object(MetricsLogger, "log", log_then_baselines):
        yield times


def dino_round(store: Path, out: Path, protocol: Path, case: MultiCropCase, steps: int,
               warm: int, clock: Callable[[], float]) -> dict[str, float]:
    """Steps/s (1 / median step time after ``warm`` steps) of ``bioaug.train.train`` with
    DINO and of the bare baselines, run step for step side by side."""
    cfg = TrainConfig(data=store, protocol=str(protocol), out=out, method="dino",
                      backbone="vit_tiny", backbone_kwargs=case.backbone_kwargs,
                      batch_size=case.batch, epochs=1, max_steps=warm + steps, device="cpu",
                      tensorboard=False, preview_views=0)
    others = {"bare ViT": BareDINOStep(case, head=False),
              "bare ViT + head": BareDINOStep(case, head=True)}
    with contextlib.redirect_stderr(io.StringIO()), interleaved(clock, others) as times:
        train(cfg)
    # bioaug's k-th time is its step k + 2 (the first step has no start stamp)
    skip = {"bioaug": warm - 1}
    return {name: 1.0 / statistics.median(t[skip.get(name, warm):])
            for name, t in times.items()}


def run_dino(tmp: Path, steps: int, warm: int, rounds: int, clock_name: str) -> None:
    """The DINO multi-crop comparison: bioaug and the bare baselines, step for step."""
    case, clock = DINO_CASE, CLOCKS[clock_name]
    print(f"\nDINO multi-crop: vit_tiny patch {case.patch}, {case.n_global} × "
          f"{case.global_crop} px global + {case.n_local} × {case.local_crop} px local views, "
          f"batch {case.batch}, head → {case.head_out}; per round {warm} warm-up + {steps} "
          f"timed steps, each bioaug step followed by one of each baseline; "
          f"{clock_name} clock")
    print("bare ViT: timm ViT, student fwd+bwd on all crops + no-grad teacher fwd on the "
          "global crops + clipping + AdamW;\n  not in it: DINO's head, loss, centring, "
          "teacher EMA, augmentation, store reads.\nbare ViT + head: the same plus a plain "
          "head of DINO's shape on the student and the teacher.")
    header = f"{'round':>5s} {'bioaug':>8s} {'bare ViT':>9s} {'ViT+head':>9s} " \
             f"{'bioaug/ViT':>10s} {'bioaug/ViT+head':>15s}"
    print(header)
    print("-" * len(header))
    store = tmp / "store-dino"
    make_store(store, case.batch * (warm + steps + 2), ["red", "green", "blue"][:case.channels],
               case.stored)
    protocol = write_multicrop_protocol(tmp / "dino-multicrop-bench.yaml", case)
    vs_vit, vs_head = [], []
    for r in range(rounds):
        rate = dino_round(store, tmp / f"run-dino-{r}", protocol, case, steps, warm, clock)
        vs_vit.append(rate["bioaug"] / rate["bare ViT"])
        vs_head.append(rate["bioaug"] / rate["bare ViT + head"])
        print(f"{r + 1:5d} {rate['bioaug']:8.3f} {rate['bare ViT']:9.3f} "
              f"{rate['bare ViT + head']:9.3f} {vs_vit[-1]:10.2f} {vs_head[-1]:15.2f}",
              flush=True)
    print(f"{'med':>5s} {'':8s} {'':9s} {'':9s} {statistics.median(vs_vit):10.2f} "
          f"{statistics.median(vs_head):15.2f}")
    print("steps/s (1 / median step time); ratios within a round; target: bioaug/ViT ≥ 0.9")


def run_moco(tmp: Path, steps: int, warm: int, rounds: int, clock_name: str) -> None:
    """The MoCo v2 comparison: bioaug, pure model step and lightly, interleaved (wall
    clock: lightly's workers are other processes)."""
    print(f"protocols: {CASES[0][6]} (RGB case), {CASES[1][6]} (gray case)")
    print(f"MoCo v2 (queue {QUEUE}, head 2048→128); per round {warm} warm-up + {steps} timed "
          f"steps of each; medians over {rounds} interleaved rounds")
    header = f"{'case':28s} {'batch':>5s} {'bioaug':>9s} {'pure':>9s} {'lightly':>9s} " \
             f"{'bioaug/pure':>11s} {'bioaug/lightly':>14s}"
    print(header)
    print("-" * len(header))
    med = statistics.median
    for name, backbone, bkw, channels, size, crop, protocol, batch in CASES:
        n = max(batch * (warm + steps + 2), QUEUE * 2)
        store = tmp / f"store-{backbone}"
        make_store(store, n, channels, size)
        ours, pure, light = [], [], []
        for r in range(rounds):
            ours.append(bioaug_rate(store, tmp / f"run-{backbone}-{r}", backbone, bkw,
                                    protocol, batch, steps, warm))
            pure.append(pure_rate(backbone, bkw, len(channels), crop, batch, steps, warm))
            lr_ = lightly_rate(store, backbone, bkw, len(channels), crop, batch, steps, warm)
            if lr_ is not None:
                light.append(lr_)
        r_pure = med([o / p for o, p in zip(ours, pure, strict=True)])
        light_txt = f"{med(light):9.1f}" if light else f"{'n/a':>9s}"
        ratio_l = (f"{med([o / li for o, li in zip(ours, light, strict=True)]):14.2f}"
                   if light else f"{'n/a':>14s}")
        print(f"{name:28s} {batch:5d} {med(ours):9.1f} {med(pure):9.1f} {light_txt} "
              f"{r_pure:11.2f} {ratio_l}", flush=True)
    print("images/s (batch / median step time); ratios: median of per-round ratios; "
          "targets: bioaug/pure ≥ 0.9, bioaug/lightly ≥ 1.0")


#: name → comparison (``--cases``)
COMPARISONS = {"moco": run_moco, "dino": run_dino}


def main() -> int:
    global DINO_CASE  # --dino-crops
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and rounds")
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved rounds (bioaug and its baselines back to back); "
                        "ratios are taken within a round")
    parser.add_argument("--cases", default=",".join(COMPARISONS),
                        help=f"comma-separated comparisons to run: {', '.join(COMPARISONS)}")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads for every side (default: torch's)")
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall",
                        help="DINO comparison: time steps by the wall clock or by this "
                        "process's CPU time (steadier on a shared machine; use with "
                        "--threads 1, where no thread waits on another)")
    parser.add_argument("--dino-crops", default=None, metavar="GLOBAL,LOCAL",
                        help="crop sides of the DINO comparison's global and local views "
                        f"(default {DINO_CASE.global_crop},{DINO_CASE.local_crop}); the store "
                        "is made 8 px larger than the global crop")
    parser.add_argument("--rgb-protocol", default=None, metavar="FILE_OR_NAME",
                        help="protocol of the MoCo RGB case instead of moco-v2-default (e.g. "
                        "to see what one op costs)")
    args = parser.parse_args()
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in COMPARISONS]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from "
                     f"{', '.join(COMPARISONS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.dino_crops:
        try:
            big, small = (int(v) for v in args.dino_crops.split(","))
        except ValueError:
            parser.error(f"--dino-crops takes two integers GLOBAL,LOCAL, got {args.dino_crops!r}")
        if not 0 < small < big:
            parser.error(f"--dino-crops: the local crop must be smaller than the global one, "
                         f"got {big},{small}")
        DINO_CASE = replace(DINO_CASE, global_crop=big, local_crop=small, stored=big + 8)
    if args.rgb_protocol:
        CASES[0] = (*CASES[0][:6], args.rgb_protocol, CASES[0][7])
    steps, warm = (4, 2) if args.quick else (6, 2)
    rounds = 2 if args.quick else max(1, args.rounds)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            COMPARISONS[case](Path(tmp), steps, warm, rounds, args.clock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
