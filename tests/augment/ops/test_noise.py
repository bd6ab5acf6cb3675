"""gaussian_noise and poisson_noise statistics."""

from __future__ import annotations

import torch

from bioaug.augment import make_op
from bioaug.augment.ops.noise import poisson_from_uniform


def test_gaussian_noise_has_the_drawn_std() -> None:
    x = torch.full((4, 1, 64, 64), 0.5)
    op = make_op("gaussian_noise", std=[0.05, 0.05], p=1.0)
    out = op(x, torch.Generator().manual_seed(0))
    diff = out - x
    assert abs(float(diff.mean())) < 0.003
    assert abs(float(diff.std()) - 0.05) < 0.003


def test_poisson_noise_mean_and_variance() -> None:
    photons = 50.0
    x = torch.full((4, 1, 64, 64), 0.3)  # rate 15: the exact inverse-CDF branch
    out = make_op("poisson_noise", photons=[photons, photons], p=1.0)(
        x, torch.Generator().manual_seed(0))
    counts = out * photons
    assert torch.allclose(counts, counts.round(), atol=1e-3)  # whole photon counts
    assert abs(float(counts.mean()) - 15.0) < 0.2
    assert abs(float(counts.var()) - 15.0) < 1.0


def test_poisson_large_rates_use_the_normal_branch() -> None:
    rate = torch.full((100_000,), 400.0)
    counts = poisson_from_uniform(rate, torch.rand(100_000, generator=torch.Generator().manual_seed(0)))
    assert abs(float(counts.mean()) - 400) < 0.5
    assert abs(float(counts.var()) - 400) < 10


def test_poisson_small_rates_match_the_pmf() -> None:
    rate = torch.full((200_000,), 2.0)
    counts = poisson_from_uniform(rate, torch.rand(200_000, generator=torch.Generator().manual_seed(1)))
    freq0 = float((counts == 0).float().mean())
    freq2 = float((counts == 2).float().mean())
    assert abs(freq0 - float(torch.exp(torch.tensor(-2.0)))) < 0.005  # e^-2 = 0.135
    assert abs(freq2 - 2.0 * float(torch.exp(torch.tensor(-2.0)))) < 0.005  # 2 e^-2 = 0.271
