"""Invariance of models built to be (or not be) invariant, with the real op library."""

from __future__ import annotations

import torch
from torch import nn

from bioaug.study import invariance_library as lib
from bioaug.study.invariance import library_probes, measure, summarize


class Rot90Average(nn.Module):
    """Features averaged over the four quarter turns: exactly invariant to rot90 only."""

    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(channels, 6, 3, padding=1), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(3), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.net(torch.rot90(x, k, dims=(2, 3))) for k in range(4)]).mean(0)


def images(n: int = 160, c: int = 1, size: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    base = torch.rand(n, c, size // 4, size // 4, generator=g)
    return nn.functional.interpolate(base, size=size, mode="bilinear", align_corners=False)


def test_exact_invariance_is_one_and_other_ops_are_lower():
    probes = library_probes([lib.LIBRARY["rotate90"], lib.LIBRARY["hflip"],
                             lib.LIBRARY["blur"]])
    table = measure(Rot90Average(), images(), probes, batch_size=64, seed=0)
    rot = table[table["op"] == "rotate90"]
    assert len(rot) == 3 and (rot["n"] == 160).all()
    assert (rot["mean"] > 1 - 1e-6).all(), rot
    flip = table.loc[table["op"] == "hflip", "mean"].iloc[0]
    assert flip < 0.95
    blur = table[table["op"] == "blur"].set_index("amplitude")["mean"]
    assert blur[20.0] < blur[0.5]  # stronger blur, less invariance
    summary = summarize(table).set_index("op")
    assert summary.loc["rotate90", "invariance"] > summary.loc["hflip", "invariance"]


def test_seeded_measurement_repeats():
    probes = library_probes([lib.LIBRARY["noise"]])
    a = measure(Rot90Average(), images(64), probes, seed=3)
    b = measure(Rot90Average(), images(64), probes, seed=3)
    assert a["mean"].tolist() == b["mean"].tolist()


def test_model_names_are_short_and_unique(tmp_path):
    from pathlib import Path

    from bioaug.study.invariance import _model_names

    assert _model_names([Path("a/ventral/seed-0/run"), Path("a/dorsal/seed-0/run"),
                         Path("b/run")]) == ["ventral-seed-0-run", "dorsal-seed-0-run", "b-run"]
    assert _model_names([Path("r/run"), Path("r/run")]) == ["run", "run-2"]
    assert _model_names([Path("r/one/checkpoint.pt"), Path("r/two")]) == ["one", "two"]
