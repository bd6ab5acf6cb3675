"""DINO: loss and head against lightly's, the teacher's schedules, multi-crop, freezing."""

from __future__ import annotations

import math

import pytest
import torch

from bioaug.errors import ConfigError
from bioaug.methods import METHODS, build_method, method_config
from bioaug.methods.dino import (
    HEALTH_STEPS,
    DINOHead,
    collapse_warning,
    dino_loss,
    split_global_local,
    teacher_entropy,
    teacher_temperature,
    updated_center,
)
from bioaug.models import build_backbone

SMALL = {"out_dim": 32, "hidden_dim": 16, "bottleneck_dim": 8}


def _outputs(n_teacher: int, n_student: int, batch: int = 5, k: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n_teacher, batch, k, generator=g),
            torch.randn(n_student, batch, k, generator=g))


@pytest.mark.parametrize(("n_teacher", "n_student"), [(2, 2), (2, 8), (1, 4)])
def test_loss_and_center_match_lightly(n_teacher, n_student):
    lightly_loss = pytest.importorskip("lightly.loss")
    ref = lightly_loss.DINOLoss(output_dim=16, warmup_teacher_temp=0.04, teacher_temp=0.07,
                                student_temp=0.1, center_momentum=0.9)
    center = torch.zeros(1, 16)
    for step, temp in enumerate((0.04, 0.05, 0.07)):  # the centre moves between steps
        t, s = _outputs(n_teacher, n_student, seed=step)
        expected = ref(list(t), list(s), teacher_temp=temp)
        got = dino_loss(t, s, center, temp, 0.1)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        center = updated_center(center, t, 0.9)
        torch.testing.assert_close(center, ref.center.reshape(1, 16), rtol=1e-5, atol=1e-6)


def test_loss_by_hand_and_no_gradient_into_the_teacher():
    t = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]], requires_grad=True)
    s = torch.tensor([[[0.0, 0.0]], [[0.0, 0.0]]], requires_grad=True)
    # a uniform student: cross-entropy log 2 for every pair (t, s) with t ≠ s
    loss = dino_loss(t, s, torch.zeros(2), 0.04, 0.1)
    assert loss.item() == pytest.approx(math.log(2), rel=1e-6)
    loss.backward()
    assert t.grad is None and s.grad is not None
    with pytest.raises(ConfigError, match="at least two views"):
        dino_loss(t[:1], s[:1], torch.zeros(2), 0.04, 0.1)


def test_loss_splits_into_teacher_entropy_and_kl():
    # H(P_t, P_s) = h(P_t) + KL(P_t || P_s), averaged over the pairs t ≠ s (section 5.3)
    t, s = _outputs(2, 5, k=6)
    center, tt, ts = torch.randn(6), 0.05, 0.1
    log_t = torch.log_softmax((t - center) / tt, dim=-1)
    p_t = log_t.exp()
    log_s = torch.log_softmax(s / ts, dim=-1)
    kls = [(p_t[i] * (log_t[i] - log_s[j])).sum(-1).mean()
           for i in range(2) for j in range(5) if i != j]
    entropy = teacher_entropy(t, center, tt)
    h = -(p_t * log_t).sum(-1).mean()
    torch.testing.assert_close(entropy, h)
    torch.testing.assert_close(dino_loss(t, s, center, tt, ts) - entropy,
                               torch.stack(kls).mean(), rtol=1e-5, atol=1e-6)
    assert teacher_entropy(torch.zeros(2, 3, 6), torch.zeros(6), tt).item() == \
        pytest.approx(math.log(6))


def test_collapse_warning_says_which_way():
    log_k = math.log(4096)
    uniform = collapse_warning(0.99 * log_k, 0.001, 4096)
    assert "uniform" in uniform and "more steps" in uniform and "8.318" in uniform
    one_hot = collapse_warning(0.05 * log_k, 0.001, 4096)
    assert "one output dimension dominates" in one_hot and "center_momentum" in one_hot
    assert collapse_warning(0.6 * log_k, 0.5, 4096) is None      # learning
    assert collapse_warning(0.05 * log_k, 0.5, 4096) is None     # sharp but still learning


def test_identical_images_collapse_to_uniform_and_are_reported():
    # every image alike: once the centre holds the teacher's output, the centred outputs
    # are zero and the teacher's distribution is uniform, whatever the temperature
    torch.manual_seed(0)
    method = build_method("dino", build_backbone("vgg_mnist", 1, width=0.125), **SMALL,
                          center_momentum=0.0)
    method.eval()                                       # batch norm: the same for each image
    views = [torch.full((4, 1, 16, 16), 0.5) for _ in range(2)]
    assert method.health_warnings() == []               # nothing seen yet
    first = method.training_loss(views)
    assert first["teacher_entropy"].item() < math.log(32) - 1e-3
    assert method.health_warnings() == []               # not collapsed on average yet
    for _ in range(HEALTH_STEPS):                       # the check reads the last steps
        out = method.training_loss(views)
    assert out["teacher_entropy"].item() == pytest.approx(math.log(32), abs=1e-5)
    assert out["loss"].item() == pytest.approx(out["teacher_entropy"].item() +
                                               out["kl"].item(), abs=1e-6)
    (warning,) = method.health_warnings()
    assert warning.startswith("dino: the teacher's outputs are uniform")


def test_varied_images_are_not_reported():
    torch.manual_seed(0)
    method = build_method("dino", build_backbone("vgg_mnist", 1, width=0.125), **SMALL)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        out = method.training_loss([torch.rand(8, 1, 16, 16, generator=g) for _ in range(2)])
    assert out["kl"].item() > 0.01
    assert out["teacher_entropy"].item() < 0.98 * math.log(32)
    assert method.health_warnings() == []


def test_head_matches_lightly():
    heads = pytest.importorskip("lightly.models.modules.heads")
    torch.manual_seed(0)
    ref = heads.DINOProjectionHead(12, 20, 6, 40, batch_norm=False, norm_last_layer=True)
    ours = DINOHead(12, 40, hidden_dim=20, bottleneck_dim=6)
    with torch.no_grad():
        for mine, theirs in zip([m for m in ours.mlp if isinstance(m, torch.nn.Linear)],
                                [m for m in ref.layers if isinstance(m, torch.nn.Linear)],
                                strict=True):
            mine.weight.copy_(theirs.weight)
            mine.bias.copy_(theirs.bias)
        w = ours.last_layer.parametrizations.weight
        w.original0.copy_(ref.last_layer.weight_g)
        w.original1.copy_(ref.last_layer.weight_v)
    x = torch.randn(7, 12)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)
    # the same structure: 3 linear layers, GELU, weight norm fixed at 1 and not trained
    assert [type(m).__name__ for m in ours.mlp] == ["Linear", "GELU", "Linear", "GELU", "Linear"]
    assert not w.original0.requires_grad and torch.all(w.original0 == 1)
    norms = ours.last_layer.weight.norm(dim=1)
    torch.testing.assert_close(norms, torch.ones_like(norms))


def test_momentum_schedule_is_cosine_from_0996_to_1():
    cfg = method_config("dino")
    dino = METHODS["dino"]
    assert dino.target_momentum(cfg, 0.0) == pytest.approx(0.996)
    assert dino.target_momentum(cfg, 0.5) == pytest.approx(0.998)
    assert dino.target_momentum(cfg, 1.0) == pytest.approx(1.0)
    scheduler = pytest.importorskip("lightly.utils.scheduler")
    for step in range(0, 101, 10):
        assert dino.target_momentum(cfg, step / 100) == pytest.approx(
            scheduler.cosine_schedule(step, 101, 0.996, 1.0), abs=1e-9)


def test_teacher_temperature_warms_up_linearly():
    assert teacher_temperature(0, 0.04, 0.07, 30) == pytest.approx(0.04)
    assert teacher_temperature(15, 0.04, 0.07, 30) == pytest.approx(0.055)
    assert teacher_temperature(30, 0.04, 0.07, 30) == pytest.approx(0.07)
    assert teacher_temperature(200, 0.04, 0.07, 30) == pytest.approx(0.07)
    assert teacher_temperature(0, 0.04, 0.07, 0) == pytest.approx(0.07)
    # in a method: 30 epochs in a 100-epoch run, capped at 30 % of a short run
    method = build_method("dino", build_backbone("vgg_mnist", 1, width=0.125), **SMALL)
    method.before_step(progress=0.1, epoch=10.0)       # a 100-epoch run
    assert method.current_teacher_temp() == pytest.approx(0.04 + 0.03 * 10 / 30)
    method.before_step(progress=0.5, epoch=1.0)        # a 2-epoch run: warm-up 0.6 epochs
    assert method.current_teacher_temp() == pytest.approx(0.07)
    method.before_step(progress=0.15, epoch=0.3)
    assert method.current_teacher_temp() == pytest.approx(0.055)


def test_last_layer_is_frozen_during_the_first_epoch():
    method = build_method("dino", build_backbone("vgg_mnist", 1, width=0.125), **SMALL)
    views = [torch.rand(4, 1, 16, 16) for _ in range(2)] + [torch.rand(4, 1, 8, 8)
                                                             for _ in range(3)]
    last = method.projector.last_layer.parametrizations.weight.original1
    for progress, epoch, frozen in ((0.005, 0.5, True), (0.02, 2.0, False),
                                    (0.5, 0.5, False)):  # 0.5 of a 1-epoch run > 10 %
        method.before_step(progress, epoch)
        method.training_loss(views)["loss"].backward()
        method.before_optimizer_step()
        assert (last.grad is None) == frozen, (progress, epoch)
        assert method.backbone.features[0].weight.grad is not None
        method.zero_grad(set_to_none=True)


def test_multicrop_teacher_sees_global_views_only():
    method = build_method("dino", build_backbone("vgg_mnist", 1, width=0.125), **SMALL)
    seen = []
    method.teacher_backbone.register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    views = [torch.rand(3, 1, 8, 8), torch.rand(3, 1, 16, 16), torch.rand(3, 1, 8, 8),
             torch.rand(3, 1, 16, 16)]
    glob, local = split_global_local(views)
    assert [v.shape[-1] for v in glob] == [16, 16] and [v.shape[-1] for v in local] == [8, 8]
    out = method.training_loss(views)
    assert seen == [torch.Size([6, 1, 16, 16])]
    assert out["teacher_temp"].item() == pytest.approx(0.04)
    assert method.center.abs().sum() > 0            # the centre moved
    with pytest.raises(ConfigError, match="at least 2 views"):
        method.training_loss(views[:1])


def test_teacher_follows_the_student_and_starts_equal():
    method = build_method("dino", build_backbone("vgg_mnist", 1, width=0.125), **SMALL)
    for a, b in zip(method.backbone.parameters(), method.teacher_backbone.parameters(),
                    strict=True):
        assert torch.equal(a, b) and not b.requires_grad
    with torch.no_grad():
        for p in method.backbone.parameters():
            p.add_(1.0)
    before = [p.clone() for p in method.teacher_backbone.parameters()]
    method.after_step(0.0)
    assert method.current_momentum == pytest.approx(0.996)
    for t, t0, s in zip(method.teacher_backbone.parameters(), before,
                        method.backbone.parameters(), strict=True):
        torch.testing.assert_close(t, 0.996 * t0 + 0.004 * s)


def test_recipe_is_the_papers():
    r = METHODS["dino"].recipe
    assert (r.optimizer, r.lr, r.lr_scaling) == ("adamw", 5e-4, "linear")
    assert (r.weight_decay, r.weight_decay_end, r.grad_clip) == (0.04, 0.4, 3.0)
    c = method_config("dino")
    assert (c.out_dim, c.bottleneck_dim, c.hidden_dim, c.student_temp) == (4096, 256, 2048, 0.1)
    assert (c.teacher_temp_start, c.teacher_temp, c.center_momentum) == (0.04, 0.07, 0.9)


def test_vit_backbone_with_multicrop():
    torch.manual_seed(0)
    vit = build_backbone("vit_tiny", 3, patch_size=8, img_size=32)
    method = build_method("dino", vit, **SMALL)
    views = [torch.rand(2, 3, 32, 32) for _ in range(2)] + [torch.rand(2, 3, 16, 16)
                                                             for _ in range(2)]
    out = method.training_loss(views)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and vit.vit.patch_embed.proj.weight.grad is not None


def test_student_head_runs_once_over_the_features_of_every_view():
    # DINO's multi-crop wrapper: the backbone once per crop size, the head once over all
    # views; with batch norm in the head its statistics then span every view
    torch.manual_seed(0)
    method = build_method("dino", build_backbone("vit_tiny", 1, patch_size=8, img_size=16),
                          **SMALL, head_batch_norm=True)
    rows = []
    method.projector.register_forward_hook(lambda m, i, o: rows.append(i[0].shape[0]))
    views = [torch.rand(4, 1, 16, 16) for _ in range(2)] + [torch.rand(4, 1, 8, 8)
                                                             for _ in range(3)]
    with torch.no_grad():
        feats = torch.cat([method.backbone(torch.cat(views[:2])),
                           method.backbone(torch.cat(views[2:]))])
        student = method.projector(feats).reshape(5, 4, -1)
        teacher = method.teacher_projector(method.teacher_backbone(torch.cat(views[:2])))
        expected = dino_loss(teacher.reshape(2, 4, -1), student, method.center,
                             method.current_teacher_temp(), method.config.student_temp)
    rows.clear()
    got = method.training_loss(views)["loss"]
    assert rows == [20]
    torch.testing.assert_close(got, expected)
