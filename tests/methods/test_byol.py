from __future__ import annotations

import math

import pytest
import torch

from bioaug.methods import build_method
from bioaug.methods.byol import byol_loss


def test_hand_computed_values():
    p = torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 0.0]])
    z = torch.tensor([[0.0, 2.0], [2.0, 2.0], [-1.0, 0.0]])
    # cos = 0, 1, -1 → 2 − 2cos = 2, 0, 4 → mean 2
    assert byol_loss(p, z).item() == pytest.approx(2.0, abs=1e-6)
    p1, z1 = torch.tensor([[3.0, 4.0]]), torch.tensor([[4.0, 3.0]])
    assert byol_loss(p1, z1).item() == pytest.approx(2 - 2 * 24 / 25, rel=1e-6)


def test_no_gradient_into_the_target():
    p = torch.randn(3, 4, requires_grad=True)
    z = torch.randn(3, 4, requires_grad=True)
    byol_loss(p, z).backward()
    assert p.grad is not None and z.grad is None


def test_matches_lightly_negative_cosine():
    loss_mod = pytest.importorskip("lightly.loss")
    g = torch.Generator().manual_seed(0)
    p, z = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    neg_cos = loss_mod.NegativeCosineSimilarity()(p, z)
    torch.testing.assert_close(byol_loss(p, z), 2 + 2 * neg_cos, rtol=1e-5, atol=1e-6)


def _byol(backbone, **kw):
    hp = {"proj_hidden_dim": 8, "proj_output_dim": 4, "pred_hidden_dim": 8}
    hp.update(kw)
    return build_method("byol", backbone, **hp)


def test_training_loss_is_the_symmetrised_sum(tiny_backbone, views):
    torch.manual_seed(0)
    byol = _byol(tiny_backbone)
    out = byol.training_loss(views)
    with torch.no_grad():
        p1, p2 = (byol.predictor(byol.projector(byol.backbone(v))) for v in views)
        z1, z2 = (byol.target_projector(byol.target_backbone(v)) for v in views)
    expected = byol_loss(p1, z2) + byol_loss(p2, z1)
    torch.testing.assert_close(out["loss"].detach(), expected, rtol=1e-5, atol=1e-6)
    assert 0.0 <= out["loss"].item() <= 8.0
    assert not any(p.requires_grad for p in byol.target_backbone.parameters())


def test_target_update_follows_the_cosine_schedule(tiny_backbone):
    byol = _byol(tiny_backbone, momentum=0.9, momentum_end=1.0)
    with torch.no_grad():
        for p in byol.backbone.parameters():
            p.add_(1.0)
    before = [t.clone() for t in byol.target_backbone.parameters()]
    byol.after_step(0.5)
    tau = 1 - 0.1 * (math.cos(math.pi * 0.5) + 1) / 2  # 0.95
    assert byol.current_momentum == pytest.approx(tau)
    for t, b, o in zip(byol.target_backbone.parameters(), before, byol.backbone.parameters(), strict=True):
        torch.testing.assert_close(t, tau * b + (1 - tau) * o)
    # At the end of training τ = 1: the target no longer moves.
    frozen = [t.clone() for t in byol.target_backbone.parameters()]
    byol.after_step(1.0)
    assert all(torch.equal(t, f) for t, f in zip(byol.target_backbone.parameters(), frozen, strict=True))


def test_the_predictor_learns_at_ten_times_the_rate_by_default(tiny_backbone):
    from bioaug.train.optim import build_optimizer

    byol = _byol(tiny_backbone)
    assert byol.config.predictor_lr_scale == 10.0 and byol.lr_scales() == {"predictor": 10.0}
    opt = build_optimizer(byol, "adamw", 1e-3, 0.9, 1e-4, exclude_bias_norm=True,
                          lr_scales=byol.lr_scales())
    predictor = {id(p) for p in byol.predictor.parameters()}
    for group in opt.param_groups:
        inside = {id(p) in predictor for p in group["params"]}
        assert inside == {group["lr_scale"] == 10.0}        # each group all in or all out
    scaled = {id(p) for g in opt.param_groups if g["lr_scale"] == 10.0 for p in g["params"]}
    assert scaled == predictor
    one_rate = _byol(tiny_backbone, predictor_lr_scale=1.0)
    groups = build_optimizer(one_rate, "adamw", 1e-3, 0.9, 1e-4, exclude_bias_norm=True,
                             lr_scales=one_rate.lr_scales()).param_groups
    assert [g["lr_scale"] for g in groups] == [1.0, 1.0]    # the paper's: one rate for all
