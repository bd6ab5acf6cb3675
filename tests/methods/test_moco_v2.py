from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bioaug.errors import ConfigError
from bioaug.methods import build_method
from bioaug.methods.moco_v2 import infonce_loss, positive_top1, tie_tolerance
from tests.methods.conftest import TinyBackbone


def _reference_infonce(q, k, queue, t) -> float:
    """InfoNCE with explicit loops over queries and negatives."""
    q, k, queue = (np.asarray(a, dtype=np.float64) for a in (q, k, queue))
    total = 0.0
    for i in range(len(q)):
        pos = math.exp(float(q[i] @ k[i]) / t)
        neg = sum(math.exp(float(q[i] @ queue[j]) / t) for j in range(len(queue)))
        total += -math.log(pos / (pos + neg))
    return total / len(q)


def test_infonce_hand_computed():
    q = torch.tensor([[1.0, 0.0]])
    k = torch.tensor([[0.6, 0.8]])
    queue = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    # q·k = 0.6, q·queue = [0, -1] → logits [1.2, 0, -2] at τ = 0.5, target index 0
    expected = -1.2 + math.log(math.exp(1.2) + math.exp(0.0) + math.exp(-2.0))
    assert infonce_loss(q, k, queue, 0.5).item() == pytest.approx(expected, rel=1e-6)


def test_infonce_against_loops():
    g = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(5, 4, generator=g), dim=1)
    k = F.normalize(torch.randn(5, 4, generator=g), dim=1)
    queue = F.normalize(torch.randn(7, 4, generator=g), dim=1)
    for t in (0.07, 0.2, 1.0):
        got = infonce_loss(q, k, queue, t).item()
        assert got == pytest.approx(_reference_infonce(q, k, queue, t), rel=1e-5)


def test_infonce_gradient_reaches_query_only_through_q():
    q = F.normalize(torch.randn(3, 4), dim=1).requires_grad_()
    k = F.normalize(torch.randn(3, 4), dim=1)
    loss = infonce_loss(q, k, F.normalize(torch.randn(5, 4), dim=1), 0.2)
    loss.backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()


def _moco(backbone, **kw):
    hp = {"proj_hidden_dim": 8, "proj_output_dim": 4, "queue_size": 12}
    hp.update(kw)
    return build_method("moco_v2", backbone, **hp)


def test_queue_state_lives_in_buffers(tiny_backbone):
    moco = _moco(tiny_backbone)
    state = moco.state_dict()
    assert state["queue"].shape == (12, 4) and state["queue_ptr"].tolist() == [0]
    torch.testing.assert_close(state["queue"].norm(dim=1), torch.ones(12))
    assert any(k.startswith("key_backbone.") for k in state)
    assert not any(p.requires_grad for p in moco.key_backbone.parameters())
    assert not any(p.requires_grad for p in moco.key_projector.parameters())
    # The key encoder starts as an exact copy of the query encoder.
    for a, b in zip(moco.backbone.parameters(), moco.key_backbone.parameters(), strict=True):
        assert torch.equal(a, b)


def test_enqueue_order_and_wrap_around(tiny_backbone):
    moco = _moco(tiny_backbone, queue_size=5)
    batches = [torch.eye(4)[[0, 1]] * 3.0, torch.eye(4)[[2, 3]], torch.eye(4)[[1, 2]] * -1.0]
    moco.enqueue(batches[0])
    assert moco.queue_ptr.item() == 2
    torch.testing.assert_close(moco.queue[:2], torch.eye(4)[[0, 1]])  # stored normalised
    moco.enqueue(batches[1])
    assert moco.queue_ptr.item() == 4
    moco.enqueue(batches[2])  # slots 4 and 0 (wrap-around)
    assert moco.queue_ptr.item() == 1
    expected = torch.stack(
        [-torch.eye(4)[2], torch.eye(4)[1], torch.eye(4)[2], torch.eye(4)[3], -torch.eye(4)[1]]
    )
    torch.testing.assert_close(moco.queue, expected)


def test_enqueue_detaches(tiny_backbone):
    moco = _moco(tiny_backbone)
    keys = torch.randn(3, 4, requires_grad=True)
    moco.enqueue(keys * 2)
    assert not moco.queue.requires_grad
    torch.testing.assert_close(moco.queue[:3], F.normalize(keys.detach(), dim=1))


def test_training_step_enqueues_normalised_keys_of_second_view(tiny_backbone, views):
    moco = _moco(tiny_backbone)
    before = moco.queue.clone()
    out = moco.training_loss(views)
    assert moco.queue_ptr.item() == 6
    with torch.no_grad():
        expected = F.normalize(moco.key_projector(moco.key_backbone(views[1])), dim=1)
    # the key encoder ran in train mode in both cases; BN batch statistics are the same
    torch.testing.assert_close(moco.queue[:6], expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(moco.queue[6:], before[6:])
    # The loss used the queue as it was before this batch was enqueued.
    with torch.no_grad():
        q = F.normalize(moco.projector(moco.backbone(views[0])), dim=1)
    ref = _reference_infonce(q, expected, before, 0.2)
    assert out["loss"].item() == pytest.approx(ref, rel=1e-4)


def test_symmetric_loss_and_keys(tiny_backbone, views):
    moco = _moco(tiny_backbone, symmetric=True)
    out = moco.training_loss(views)
    assert moco.queue_ptr.item() == 12 % 12
    assert torch.isfinite(out["loss"])


def test_momentum_update_semantics(tiny_backbone, views):
    moco = _moco(tiny_backbone, momentum=0.9, momentum_end=0.9)  # fixed m
    opt = torch.optim.SGD(moco.parameters(), lr=0.5)
    moco.training_loss(views)["loss"].backward()
    opt.step()
    key_before = [p.clone() for p in moco.key_backbone.parameters()]
    moco.after_step(0.3)
    for k, kb, q in zip(moco.key_backbone.parameters(), key_before, moco.backbone.parameters(), strict=True):
        torch.testing.assert_close(k, 0.9 * kb + 0.1 * q)
    assert any(not torch.equal(k, kb) for k, kb in zip(moco.key_backbone.parameters(), key_before, strict=True))


def test_momentum_extremes(tiny_backbone, views):
    frozen = _moco(tiny_backbone, momentum=1.0)
    with torch.no_grad():
        for p in frozen.backbone.parameters():
            p.add_(1.0)
    before = [p.clone() for p in frozen.key_backbone.parameters()]
    frozen.after_step(0.5)
    assert all(torch.equal(a, b) for a, b in zip(frozen.key_backbone.parameters(), before, strict=True))
    copying = _moco(tiny_backbone, momentum=0.0, momentum_end=0.0)
    with torch.no_grad():
        for p in copying.projector.parameters():
            p.mul_(-2.0)
    copying.after_step(0.5)
    for a, b in zip(copying.key_projector.parameters(), copying.projector.parameters(), strict=True):
        assert torch.equal(a, b)


def test_momentum_cosine_ramp(tiny_backbone):
    moco = _moco(tiny_backbone, momentum=0.99, momentum_end=1.0)
    moco.after_step(0.0)
    assert moco.current_momentum == pytest.approx(0.99)
    moco.after_step(0.5)
    assert moco.current_momentum == pytest.approx(0.995)
    moco.after_step(1.0)
    assert moco.current_momentum == pytest.approx(1.0)


def test_configure_keeps_a_fitting_queue(tiny_backbone):
    moco = _moco(tiny_backbone, queue_size=4096)
    moco.configure_for_dataset(n_items=50_000, batch_size=256)
    assert moco.queue_size == 4096 and moco.queue.shape == (4096, 4)


def test_configure_caps_queue_to_a_fraction_of_an_epoch(tiny_backbone):
    moco = _moco(tiny_backbone, queue_size=65536)
    moco.configure_for_dataset(n_items=10_000, batch_size=256)
    # min(65536, 0.5·10000) = 5000 → rounded down to a multiple of 256
    assert moco.queue_size == 4864
    assert moco.queue.shape == (4864, 4) and moco.queue_ptr.item() == 0
    torch.testing.assert_close(moco.queue.norm(dim=1), torch.ones(4864))
    wide = _moco(tiny_backbone, queue_size=65536, queue_fraction=1.0)
    wide.configure_for_dataset(n_items=10_000, batch_size=256)
    assert wide.queue_size == 9984


def test_configure_rejects_a_batch_that_does_not_divide_the_queue(tiny_backbone):
    moco = _moco(tiny_backbone, queue_size=4096)
    with pytest.raises(ConfigError) as err:
        moco.configure_for_dataset(n_items=100_000, batch_size=384)
    msg = str(err.value)
    assert "queue_size 4096 is not a multiple of the 384 keys" in msg
    assert "use queue_size 3840 or 4224" in msg


def test_configure_rejects_a_dataset_too_small_for_the_batch(tiny_backbone):
    moco = _moco(tiny_backbone, queue_size=65536)
    with pytest.raises(ConfigError, match=r"at most 50 keys.*fewer than the 64 keys.*batch size ≤ 50"):
        moco.configure_for_dataset(n_items=100, batch_size=64)


def test_symmetric_counts_two_keys_per_image(tiny_backbone):
    moco = _moco(tiny_backbone, queue_size=96, symmetric=True)
    with pytest.raises(ConfigError, match=r"multiple of the 64 keys.*×2 symmetric"):
        moco.configure_for_dataset(n_items=1000, batch_size=32)  # 96 % 64 != 0
    moco.configure_for_dataset(n_items=1000, batch_size=48)
    assert moco.queue_size == 96


def test_projection_embedding_is_normalised(tiny_backbone, views):
    moco = _moco(tiny_backbone)
    z = moco.embed(views[0], "projection")
    torch.testing.assert_close(z.norm(dim=1), torch.ones(6))


def test_loading_a_checkpoint_adopts_its_queue(tiny_backbone, views):
    moco = _moco(tiny_backbone, queue_size=65536)
    moco.configure_for_dataset(n_items=100, batch_size=6)
    moco.training_loss(views)
    fresh = _moco(TinyBackbone(), queue_size=65536)  # not configured: 65536 slots
    fresh.load_state_dict(moco.state_dict())
    assert fresh.queue_size == 48
    assert torch.equal(fresh.queue, moco.queue) and fresh.queue_ptr.item() == 6


def _collapse(moco) -> None:
    """Make every query and key the same unit vector [0.5, 0.5, 0.5, 0.5] (exactly)."""
    with torch.no_grad():
        for head in (moco.projector, moco.key_projector):
            head[-1].weight.zero_()
            head[-1].bias.fill_(1.0)


def test_top1_of_collapsed_features_is_zero_not_one(tiny_backbone, views):
    moco = _moco(tiny_backbone)  # queue of 12 keys, batches of 6: full after two steps
    _collapse(moco)
    first = moco.training_loss(views)  # negatives still the random initial queue
    moco.training_loss(views)
    assert first["top1"].item() == 1.0
    # every logit is now 1/τ exactly: argmax would pick the positive and report 1.0
    out = moco.training_loss(views)
    assert torch.equal(moco.queue, torch.full_like(moco.queue, 0.5))
    assert out["top1"].item() == 0.0


def test_top1_counts_only_a_positive_above_every_negative():
    logits = torch.tensor([[3.0, 1.0, 2.0],   # positive first: a hit
                           [2.0, 2.0, 1.0],   # tied with a negative: a miss
                           [1.0, 2.0, 0.0],   # beaten: a miss
                           [5.0, 5.0, 5.0]])  # all equal (collapse): a miss
    assert positive_top1(logits).item() == 0.25


def test_top1_treats_float_rounding_as_a_tie():
    # q·k and q·queue of the same vectors differ in their last bits with the order of the sum
    v = F.normalize(torch.randn(1, 16, generator=torch.Generator().manual_seed(0)), dim=1)
    q, queue = v.repeat(8, 1), v.repeat(32, 1)
    logits = torch.cat([(q * q).sum(dim=1, keepdim=True), q @ queue.T], dim=1) / 0.2
    assert positive_top1(logits, tie_tolerance(16, 0.2)).item() == 0.0
    # a positive one rounding step of a cosine above the negatives is still a tie, one of
    # 1e-3 is not
    assert positive_top1(torch.tensor([[1.0 + 1e-6, 1.0]]) / 0.2,
                         tie_tolerance(128, 0.2)).item() == 0.0
    assert positive_top1(torch.tensor([[1.0, 0.999]]) / 0.2,
                         tie_tolerance(128, 0.2)).item() == 1.0
