"""Images/s of a full bioaug MoCo v2 training step against two baselines, same process.

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

    python benchmarks/train_step.py [--quick]
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
from pathlib import Path

os.environ.setdefault("BIOAUG_PROGRESS", "0")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np
import pandas as pd
import torch
from torch import nn

from bioaug.data.store import Store, write_store
from bioaug.methods import build_method
from bioaug.models import build_backbone
from bioaug.train.config import TrainConfig
from bioaug.train.loop import train
from bioaug.train.metrics import read_metrics
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and rounds")
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved rounds (bioaug, pure, lightly back to back); ratios "
                        "are taken within a round, then the median over rounds")
    parser.add_argument("--rgb-protocol", default=None, metavar="FILE_OR_NAME",
                        help="protocol of the RGB case instead of moco-v2-default (e.g. to "
                        "see what one op costs)")
    args = parser.parse_args()
    if args.rgb_protocol:
        CASES[0] = (*CASES[0][:6], args.rgb_protocol, CASES[0][7])
    steps, warm = (4, 2) if args.quick else (6, 2)
    rounds = 2 if args.quick else max(1, args.rounds)
    print(f"protocols: {CASES[0][6]} (RGB case), {CASES[1][6]} (gray case)")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; "
          f"MoCo v2 (queue {QUEUE}, head 2048→128); per round {warm} warm-up + {steps} timed "
          f"steps of each; medians over {rounds} interleaved rounds")
    header = f"{'case':28s} {'batch':>5s} {'bioaug':>9s} {'pure':>9s} {'lightly':>9s} " \
             f"{'bioaug/pure':>11s} {'bioaug/lightly':>14s}"
    print(header)
    print("-" * len(header))
    med = statistics.median
    with tempfile.TemporaryDirectory() as tmp:
        for name, backbone, bkw, channels, size, crop, protocol, batch in CASES:
            n = max(batch * (warm + steps + 2), QUEUE * 2)
            store = Path(tmp) / f"store-{backbone}"
            make_store(store, n, channels, size)
            ours, pure, light = [], [], []
            for r in range(rounds):
                ours.append(bioaug_rate(store, Path(tmp) / f"run-{backbone}-{r}", backbone, bkw,
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
