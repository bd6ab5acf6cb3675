from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bioaug.methods.vicreg import vicreg_loss, vicreg_terms


def _reference(z1, z2, sim_c, std_c, cov_c, gamma=1.0, eps=1e-4) -> float:
    z1, z2 = np.asarray(z1, np.float64), np.asarray(z2, np.float64)
    n, d = z1.shape
    sim = sum((z1[i, j] - z2[i, j]) ** 2 for i in range(n) for j in range(d)) / (n * d)

    def var_term(z):
        total = 0.0
        for j in range(d):
            mu = z[:, j].mean()
            var = sum((z[i, j] - mu) ** 2 for i in range(n)) / (n - 1)
            total += max(0.0, gamma - math.sqrt(var + eps))
        return total / d

    def cov_term(z):
        mu = z.mean(axis=0)
        total = 0.0
        for a in range(d):
            for b in range(d):
                if a != b:
                    cov = sum((z[i, a] - mu[a]) * (z[i, b] - mu[b]) for i in range(n)) / (n - 1)
                    total += cov**2
        return total / d

    std = 0.5 * (var_term(z1) + var_term(z2))
    cov = cov_term(z1) + cov_term(z2)
    return sim_c * sim + std_c * std + cov_c * cov


def test_hand_computed_values():
    z = torch.tensor([[0.0, 0.0], [2.0, 2.0]])
    # sim 0; per-dimension var 2 → std > 1 → no variance penalty;
    # Cov = [[2, 2], [2, 2]] → off-diagonal² sum 8 / D=2 = 4 per branch → 8.
    assert vicreg_loss(z, z, 25, 25, 1).item() == pytest.approx(8.0, rel=1e-6)
    z1 = torch.tensor([[0.0, 0.0], [0.5, 0.0]])
    z2 = torch.tensor([[1.0, 0.0], [1.5, 0.0]])
    sim, std, cov = vicreg_terms(z1, z2)
    assert sim.item() == pytest.approx(0.5)
    expected_std = ((1 - math.sqrt(0.125 + 1e-4)) + (1 - math.sqrt(1e-4))) / 2
    assert std.item() == pytest.approx(expected_std, rel=1e-6)
    assert cov.item() == pytest.approx(0.0, abs=1e-9)
    total = vicreg_loss(z1, z2, 25, 25, 1).item()
    assert total == pytest.approx(25 * 0.5 + 25 * expected_std, rel=1e-6)


def test_against_loops():
    g = torch.Generator().manual_seed(0)
    z1, z2 = 0.3 * torch.randn(6, 3, generator=g), 2.0 * torch.randn(6, 3, generator=g)
    for coeffs in ((25, 25, 1), (1, 0.5, 3)):
        got = vicreg_loss(z1, z2, *coeffs).item()
        assert got == pytest.approx(_reference(z1, z2, *coeffs), rel=1e-5)


def test_matches_lightly():
    loss_mod = pytest.importorskip("lightly.loss")
    g = torch.Generator().manual_seed(2)
    z1, z2 = torch.randn(16, 6, generator=g), torch.randn(16, 6, generator=g)
    ref = loss_mod.VICRegLoss(lambda_param=25, mu_param=25, nu_param=1, eps=1e-4)(z1, z2)
    torch.testing.assert_close(vicreg_loss(z1, z2, 25, 25, 1), ref, rtol=1e-5, atol=1e-5)


def test_projector_defaults_to_four_times_the_backbone_features(tiny_backbone):
    """As for Barlow Twins: unset widths are 4 × the backbone's features, recorded resolved."""
    from bioaug.methods import build_method

    d = tiny_backbone.out_dim
    method = build_method("vicreg", tiny_backbone)
    assert (method.hparams["proj_hidden_dim"], method.hparams["proj_output_dim"]) == (4 * d, 4 * d)
    assert method.projector[-1].out_features == 4 * d
    assert build_method("vicreg", tiny_backbone, proj_output_dim=3).projector[-1].out_features == 3
