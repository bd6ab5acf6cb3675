"""Shared fixtures: a tiny synthetic BBBC021 store (seconds to build)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 plates × 8 wells × 1 site of 160×200 px → ~120 single-cell crops of 40 px."""
    from bioaug.data.prepare import prepare_bbbc021
    from bioaug.data.synth import synth_bbbc021

    root = tmp_path_factory.mktemp("twin")
    synth_bbbc021(root / "twin", plates=3, sites=1, size=(160, 200), cells_per_field=10,
                  wells_per_plate=8, seed=0)
    prepare_bbbc021(root / "twin", root / "store", crop_size=40, moa_only=True)
    return root / "store"


@pytest.fixture(scope="session")
def tiny_run(tiny_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One epoch of MoCo v2 + VGG13-BN at width 1/16 on the tiny store (a few seconds)."""
    from bioaug.train.config import make_config
    from bioaug.train.loop import train

    out = tmp_path_factory.mktemp("run") / "run"
    cfg = make_config({"data": str(tiny_store), "protocol": "bbbc021-expert", "out": str(out),
                       "width": 0.0625, "crop": 32, "epochs": 1, "batch_size": 32,
                       "num_workers": 0, "tensorboard": False, "device": "cpu"})
    return train(cfg)
