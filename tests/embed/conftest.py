"""A tiny BBBC021-like store and tiny trained checkpoints, built once per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

CHANNELS = ["DAPI", "Tubulin", "Actin"]
N_MOA, COMPOUNDS, WELLS, CELLS = 3, 2, 2, 4  # 3 MoAs × 2 compounds × 2 wells × 4 cells = 48


def make_store(path: Path, *, channels: list[str] | None = None, size: int = 40,
               seed: int = 0) -> Path:
    """A store whose MoA sets the per-channel brightness (so even raw pixels separate it)."""
    from bioaug.data.store import write_store

    channels = channels or CHANNELS
    rng = np.random.default_rng(seed)
    rows, images = [], []
    for m in range(N_MOA):
        level = np.full(len(channels), 0.2)
        level[m % len(channels)] = 0.8
        for c in range(COMPOUNDS):
            batch = f"Week{c + 1}"
            for w in range(WELLS):
                for s in range(CELLS):
                    rows.append({"plate": f"{batch}_P{w}", "well": f"{'ABC'[m]}{c}{w:02d}",
                                 "site": s % 2 + 1, "replicate": w + 1, "batch": batch,
                                 "compound": f"cmp{m}{c}", "concentration": 0.3,
                                 "moa": f"MoA {m}", "center_x": 10.5, "center_y": 20.0})
                    img = level[:, None, None] + rng.normal(0, 0.05, (len(channels), size, size))
                    images.append(np.clip(img, 0, 1))
    imgs = (np.asarray(images) * 65535).astype(np.uint16)
    write_store(path, imgs, pd.DataFrame(rows), channels=channels, label_column="moa")
    return path


def train_tiny(store: Path, out: Path, *, method: str = "simclr", seed: int = 0,
               protocol: str = "bbbc021-expert") -> Path:
    """Two SGD steps of a width-1/8 VGG13-BN at crop 32 (enough to exercise the contract)."""
    from bioaug.train.config import TrainConfig
    from bioaug.train.loop import train

    cfg = TrainConfig(data=store, protocol=protocol, out=out, method=method,
                      backbone="vgg13_bn", width=0.125, crop=32, epochs=1, batch_size=16,
                      max_steps=2, num_workers=0, device="cpu", tensorboard=False, seed=seed)
    return train(cfg)


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("embed") / "store")


@pytest.fixture(scope="session")
def tiny_run(tiny_store, tmp_path_factory) -> Path:
    return train_tiny(tiny_store, tmp_path_factory.mktemp("embed") / "run")


@pytest.fixture(scope="session")
def tiny_run_b(tiny_store, tmp_path_factory) -> Path:
    return train_tiny(tiny_store, tmp_path_factory.mktemp("embed") / "run_b", seed=1)


@pytest.fixture(scope="session")
def twin_store(tmp_path_factory) -> Path:
    """A BBBC021 twin: synthetic fields in the published layout, prepared at crop 32."""
    from bioaug.data.prepare import prepare_bbbc021
    from bioaug.data.synth import synth_bbbc021

    root = tmp_path_factory.mktemp("twin")
    raw = synth_bbbc021(root / "raw", plates=6, sites=1, size=(96, 96), cells_per_field=6,
                        wells_per_plate=6, seed=0)
    return prepare_bbbc021(raw, root / "store", crop_size=32).path


@pytest.fixture(scope="session")
def tiny_mnist_run(tiny_store, tmp_path_factory) -> Path:
    """Two steps of a width-1/8 ``vgg_mnist`` (whose default embedding layer is its map)."""
    from bioaug.train.config import TrainConfig
    from bioaug.train.loop import train

    cfg = TrainConfig(data=tiny_store, protocol="bbbc021-expert",
                      out=tmp_path_factory.mktemp("embed") / "mnist_run", method="simclr",
                      backbone="vgg_mnist", width=0.125, crop=32, epochs=1, batch_size=16,
                      max_steps=2, num_workers=0, device="cpu", tensorboard=False, seed=0)
    return train(cfg)
