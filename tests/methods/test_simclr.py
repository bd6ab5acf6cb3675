from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bioaug.methods.simclr import nt_xent_loss


def _reference_nt_xent(z1, z2, t) -> float:
    """NT-Xent by loops: every one of the 2N embeddings is an anchor."""
    z = np.concatenate([np.asarray(z1, np.float64), np.asarray(z2, np.float64)])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z1)
    total = 0.0
    for a in range(2 * n):
        p = (a + n) % (2 * n)
        denom = sum(math.exp(z[a] @ z[j] / t) for j in range(2 * n) if j != a)
        total += -math.log(math.exp(z[a] @ z[p] / t) / denom)
    return total / (2 * n)


def test_hand_computed_values():
    e = torch.eye(2)
    # Anchor e1: positive e1 (cos 1), negatives e2, e2 (cos 0) → log(1 + 2/e) for all 4.
    assert nt_xent_loss(e, e, 1.0).item() == pytest.approx(math.log(1 + 2 / math.e), rel=1e-6)
    # One pair: the positive is the only other embedding → loss 0 whatever the vectors.
    assert nt_xent_loss(torch.tensor([[1.0, 2.0]]), torch.tensor([[-3.0, 0.5]]), 0.5).item() == pytest.approx(0.0, abs=1e-7)


def test_scale_invariant_and_against_loops():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    for t in (0.1, 0.5):
        got = nt_xent_loss(z1, z2, t).item()
        assert got == pytest.approx(_reference_nt_xent(z1, z2, t), rel=1e-5)
        assert nt_xent_loss(3 * z1, 0.5 * z2, t).item() == pytest.approx(got, rel=1e-5)


def test_matches_lightly():
    loss_mod = pytest.importorskip("lightly.loss")
    g = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    ref = loss_mod.NTXentLoss(temperature=0.5)(z1, z2)
    torch.testing.assert_close(nt_xent_loss(z1, z2, 0.5), ref, rtol=1e-5, atol=1e-6)
