"""gaussian_noise and poisson_noise statistics."""

from __future__ import annotations

import torch

from bioaug.augment import make_op, native
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


# -- known answers: the noise of a sample is generated from its seed ---------------------
def _draw(name: str, n: int = 6, **params):
    op = make_op(name, p=0.5, **params)
    x = torch.rand(n, 3, 10, 12, generator=torch.Generator().manual_seed(1))
    drawn = op.sample(n, (3, 10, 12), torch.Generator().manual_seed(2))
    assert 0 < int(drawn["apply"].sum()) < n
    return op, x, drawn


def test_gaussian_noise_is_the_seeded_normal_draw_of_each_picked_sample() -> None:
    for per_channel in (True, False):
        op, x, drawn = _draw("gaussian_noise", std=[0.05, 0.2], per_channel=per_channel)
        out = op.apply(x, drawn)
        for i in range(len(x)):
            if not drawn["apply"][i]:
                assert torch.equal(out[i], x[i])
                continue
            g = torch.Generator().manual_seed(int(drawn["seed"][i]))
            z = torch.randn((3 if per_channel else 1, 10, 12), generator=g)
            expected = torch.add(x[i], z, alpha=float(drawn["std"][i])).clamp(0.0, 1.0)
            assert torch.equal(out[i], expected)
        # the subset path (transform) gives the same numbers
        idx = drawn["apply"].nonzero().squeeze(1)
        sub = op.transform(x[idx], {k: v[idx] for k, v in drawn.items()})
        torch.testing.assert_close(sub, out[idx], atol=1e-6, rtol=0)


def test_poisson_noise_is_the_seeded_uniform_draw_of_each_picked_sample() -> None:
    op, x, drawn = _draw("poisson_noise", photons=[20, 80])
    out = op.apply(x, drawn)
    for i in range(len(x)):
        if not drawn["apply"][i]:
            assert torch.equal(out[i], x[i])
            continue
        u = torch.rand((3, 10, 12), generator=torch.Generator().manual_seed(int(drawn["seed"][i])))
        n = float(drawn["photons"][i])
        expected = (poisson_from_uniform(x[i] * n, u) / n).clamp(0.0, 1.0)
        torch.testing.assert_close(out[i], expected, atol=1e-6, rtol=0)


def test_noise_draws_are_small_and_seeds_differ() -> None:
    op = make_op("gaussian_noise", p=1.0)
    drawn = op.sample(512, (3, 64, 64), torch.Generator().manual_seed(0))
    assert set(drawn) == {"apply", "std", "seed"}
    assert drawn["seed"].dtype == torch.int64 and drawn["seed"].unique().numel() == 512


def test_compiled_noise_gives_the_torch_noise(monkeypatch) -> None:
    for per_channel in (True, False):
        op, x, drawn = _draw("gaussian_noise", std=[0.05, 0.2], per_channel=per_channel)
        compiled = op.apply(x, drawn)
        monkeypatch.setenv(native.ENV, "0")
        reference = op.apply(x, drawn)
        monkeypatch.setenv(native.ENV, "1")
        torch.testing.assert_close(compiled, reference, atol=1e-6, rtol=0)
