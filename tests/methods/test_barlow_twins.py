from __future__ import annotations

import numpy as np
import pytest
import torch

from bioaug.methods.barlow_twins import barlow_twins_loss, cross_correlation


def _reference(z1, z2, lambd, eps=1e-5) -> float:
    z1, z2 = np.asarray(z1, np.float64), np.asarray(z2, np.float64)
    n, d = z1.shape

    def standardise(z):
        out = np.empty_like(z)
        for j in range(d):
            col = z[:, j]
            mu = sum(col) / n
            var = sum((c - mu) ** 2 for c in col) / n
            out[:, j] = (col - mu) / np.sqrt(var + eps)
        return out

    a, b = standardise(z1), standardise(z2)
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(a[k, i] * b[k, j] for k in range(n)) / n
            loss += (1 - c) ** 2 if i == j else lambd * c**2
    return loss


def test_hand_computed_value():
    z1 = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    z2 = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])
    # Standardised columns are ±1; C = [[1, -1], [1, -1]] → (1−1)² + (1+1)² + λ(1 + 1)
    c = cross_correlation(z1, z2, eps=0.0)
    torch.testing.assert_close(c, torch.tensor([[1.0, -1.0], [1.0, -1.0]]))
    assert barlow_twins_loss(z1, z2, lambd=0.0051, eps=0.0).item() == pytest.approx(4 + 2 * 0.0051)


def test_identical_decorrelated_views_give_zero():
    z = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    assert barlow_twins_loss(z, z, lambd=1.0, eps=0.0).item() == pytest.approx(0.0, abs=1e-7)


def test_against_loops():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    for lambd in (0.0051, 0.5):
        assert barlow_twins_loss(z1, z2, lambd).item() == pytest.approx(_reference(z1, z2, lambd), rel=1e-5)


def test_matches_lightly():
    loss_mod = pytest.importorskip("lightly.loss")
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(16, 6, generator=g), torch.randn(16, 6, generator=g)
    ref = loss_mod.BarlowTwinsLoss(lambda_param=0.0051, gather_distributed=False)(z1, z2)
    torch.testing.assert_close(barlow_twins_loss(z1, z2, 0.0051), ref, rtol=1e-5, atol=1e-5)


def test_projector_defaults_to_four_times_the_backbone_features(tiny_backbone):
    """Unset widths follow the backbone (4 × its features) and are recorded resolved, so a
    checkpoint's hyperparameters rebuild the same projector; given widths are kept."""
    from bioaug.methods import build_method

    d = tiny_backbone.out_dim
    method = build_method("barlow_twins", tiny_backbone)
    assert method.hparams["proj_hidden_dim"] == method.hparams["proj_output_dim"] == 4 * d
    linears = [m for m in method.projector if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(d, 4 * d), (4 * d, 4 * d),
                                                                   (4 * d, 4 * d)]
    again = build_method("barlow_twins", tiny_backbone, **method.hparams)
    assert again.hparams == method.hparams
    given = build_method("barlow_twins", tiny_backbone, proj_hidden_dim=6, proj_output_dim=5)
    assert (given.projector[0].out_features, given.projector[-1].out_features) == (6, 5)
