"""Tiny stores, protocols and configs for the training tests (no downloads, CPU, seconds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bioaug.data.store import write_store
from bioaug.train.config import TrainConfig

CHANNELS = ["DAPI", "Actin"]

PROTOCOL = """\
bioaug_protocol: 1
name: tiny-test
description: small crops and flips for tests
channels: {channels}
views:
  - crop_size: {crop}
    steps:
      - random_resized_crop: {{scale: [0.5, 1.0], p: 1.0}}
      - flip: {{horizontal: true, vertical: true, p: 0.5}}
  - same_as: 0
"""


def blob_images(n: int, size: int, n_channels: int, seed: int = 0,
                n_classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint16 images of Gaussian blobs; the class sets the blob count (1..n_classes)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    labels = rng.integers(0, n_classes, n)
    images = np.zeros((n, n_channels, size, size), dtype=np.float32)
    for i in range(n):
        for _ in range(labels[i] + 1):
            cy, cx = rng.uniform(4, size - 4, 2)
            sigma = rng.uniform(1.5, 3.5)
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
            for c in range(n_channels):
                images[i, c] += blob * rng.uniform(0.3, 1.0)
    images += rng.normal(0, 0.03, images.shape).astype(np.float32)
    images = np.clip(images / images.max(), 0, 1)
    return (images * 65535).astype(np.uint16), labels


def make_store(path: Path, n: int = 64, size: int = 32, channels: list[str] | None = None,
               seed: int = 0) -> Path:
    channels = list(channels or CHANNELS)
    images, labels = blob_images(n, size, len(channels), seed=seed)
    obs = pd.DataFrame({"label": [f"c{k}" for k in labels], "label_id": labels})
    write_store(path, images, obs, channels=channels, label_column="label")
    return path


def write_protocol(path: Path, crop: int = 24, channels: list[str] | None = None) -> Path:
    path.write_text(PROTOCOL.format(crop=crop, channels="[" + ", ".join(channels or CHANNELS)
                                    + "]"), encoding="utf-8")
    return path


#: a tiny MoCo v2 on the small VGG: a step takes a few milliseconds on a CPU
TINY: dict[str, Any] = {
    "method": "moco_v2",
    "backbone": "vgg_mnist",
    "width": 0.25,
    "batch_size": 16,
    "epochs": 2,
    "lr": 0.5,
    "num_workers": 0,
    "tensorboard": False,
    "device": "cpu",
    "method_kwargs": {"proj_hidden_dim": 64, "proj_output_dim": 32, "queue_size": 32},
}


def tiny_config(store: Path, protocol: Path, out: Path, **kw: Any) -> TrainConfig:
    values = {**TINY, "data": store, "protocol": str(protocol), "out": out}
    values.update(kw)
    return TrainConfig(**values)


def tiny_cli_args(store: Path, protocol: Path, out: Path) -> list[str]:
    args = ["train", "--data", str(store), "--protocol", str(protocol), "--out", str(out)]
    for key, value in TINY.items():
        flag = "--" + key.replace("_", "-")
        if key == "method_kwargs":
            args += [flag, *(f"{k}={v}" for k, v in value.items())]
        elif isinstance(value, bool):
            args.append(flag if value else "--no-" + key.replace("_", "-"))
        else:
            args += [flag, str(value)]
    return args
