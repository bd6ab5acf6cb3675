from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from bioaug.train.optim import LARS, build_optimizer, lr_at, set_lr, set_momentum


def test_warmup_then_cosine_known_values():
    base, warm, total = 1.0, 4, 12
    assert [lr_at(s, base, warm, total) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(4, base, warm, total) == pytest.approx(1.0)
    assert lr_at(8, base, warm, total) == pytest.approx(0.5)     # half-way through the decay
    assert lr_at(10, base, warm, total) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.75)))
    decay = [lr_at(s, base, warm, total) for s in range(4, 12)]
    assert all(a > b for a, b in itertools.pairwise(decay))


def test_no_warmup_is_cosine_from_base():
    assert lr_at(0, 0.3, 0, 10) == pytest.approx(0.3)
    assert lr_at(5, 0.3, 0, 10) == pytest.approx(0.15)


def test_lars_step_matches_hand_computation():
    w = nn.Parameter(torch.tensor([[3.0, 4.0]]))      # ‖w‖ = 5
    b = nn.Parameter(torch.tensor([1.0]))
    w.grad = torch.tensor([[0.6, 0.8]])                # ‖g‖ = 1
    b.grad = torch.tensor([0.5])
    opt = LARS([{"params": [w], "lars": True, "weight_decay": 0.1},
                {"params": [b], "lars": False, "weight_decay": 0.0}],
               lr=0.1, momentum=0.9, trust_coefficient=0.01)
    opt.step()
    trust = 0.01 * 5.0 / (1.0 + 0.1 * 5.0)
    g = torch.tensor([[0.6 + 0.1 * 3.0, 0.8 + 0.1 * 4.0]]) * trust
    assert torch.allclose(w.detach(), torch.tensor([[3.0, 4.0]]) - 0.1 * g, atol=1e-6)
    assert torch.allclose(b.detach(), torch.tensor([1.0 - 0.1 * 0.5]))
    # second step: momentum buffer = 0.9·old + new
    w.grad = torch.tensor([[0.6, 0.8]])
    b.grad = torch.tensor([0.5])
    opt.step()
    assert torch.allclose(b.detach(), torch.tensor([1.0 - 0.05 - 0.1 * (0.9 * 0.5 + 0.5)]))


def test_build_optimizer_groups():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    opt = build_optimizer(model, "lars", 0.1, 0.9, 1e-4)
    lars, plain = opt.param_groups
    assert lars["lars"] and lars["weight_decay"] == 1e-4 and len(lars["params"]) == 1
    assert not plain["lars"] and plain["weight_decay"] == 0.0 and len(plain["params"]) == 3
    sgd = build_optimizer(model, "sgd", 0.1, 0.9, 1e-4)
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["weight_decay"] == 1e-4


def test_lars_clip_caps_the_layer_rate_at_the_global_one():
    # η‖w‖/(‖g‖+wd‖w‖) = 0.02·5/1 = 0.1; divided by lr 0.5 → 0.2 (< 1: kept)
    w = nn.Parameter(torch.tensor([[3.0, 4.0]]))
    w.grad = torch.tensor([[0.6, 0.8]])
    LARS([{"params": [w], "lars": True, "weight_decay": 0.0}], lr=0.5,
         trust_coefficient=0.02, clip=True).step()
    assert torch.allclose(w.detach(), torch.tensor([[3.0, 4.0]]) - 0.5 * 0.2 * torch.tensor([[0.6, 0.8]]))
    # a tiny lr: the ratio / lr exceeds 1 and is capped, so the step is plain SGD
    v = nn.Parameter(torch.tensor([[3.0, 4.0]]))
    v.grad = torch.tensor([[0.6, 0.8]])
    LARS([{"params": [v], "lars": True, "weight_decay": 0.0}], lr=0.01,
         trust_coefficient=0.02, clip=True).step()
    assert torch.allclose(v.detach(), torch.tensor([[3.0, 4.0]]) - 0.01 * torch.tensor([[0.6, 0.8]]))


def test_adamw_and_bias_norm_exclusion():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    opt = build_optimizer(model, "adamw", 1e-3, 0.9, 1e-4, exclude_bias_norm=True)
    assert isinstance(opt, torch.optim.AdamW)
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 1e-4 and len(decayed["params"]) == 1
    assert plain["weight_decay"] == 0.0 and len(plain["params"]) == 3
    assert decayed["betas"] == (0.9, 0.999)
    sgd = build_optimizer(model, "sgd", 0.1, 0.9, 1e-4, exclude_bias_norm=True)
    assert [g["weight_decay"] for g in sgd.param_groups] == [1e-4, 0.0]
    with pytest.raises(ValueError, match="unknown optimizer 'adam'"):
        build_optimizer(model, "adam", 0.1, 0.9, 0.0)


def test_adamw_takes_beta2_and_sgd_ignores_it():
    model = nn.Linear(3, 2)
    opt = build_optimizer(model, "adamw", 1e-3, 0.8, 0.05, adam_beta2=0.95)
    assert [g["betas"] for g in opt.param_groups] == [(0.8, 0.95)]
    sgd = build_optimizer(model, "sgd", 0.1, 0.9, 1e-4, adam_beta2=0.95)
    assert "betas" not in sgd.param_groups[0] and sgd.param_groups[0]["momentum"] == 0.9


def test_the_second_moment_decays_with_beta2():
    # v ← β₂·v + (1 − β₂)·g²: after two steps of g = 2, v = β₂·(1 − β₂)·4 + (1 − β₂)·4
    w = nn.Parameter(torch.zeros(1))
    opt = build_optimizer(nn.ParameterList([w]), "adamw", 1e-3, 0.9, 0.0, adam_beta2=0.95)
    for _ in range(2):
        w.grad = torch.tensor([2.0])
        opt.step()
    assert opt.state[w]["exp_avg_sq"].item() == pytest.approx(0.39)


@pytest.mark.parametrize("name", ["adamw", "sgd", "lars"])
def test_set_momentum_replaces_the_values_of_a_loaded_state(name):
    model = nn.Linear(3, 2)
    saved = build_optimizer(model, name, 0.1, 0.9, 1e-4).state_dict()
    opt = build_optimizer(model, name, 0.1, 0.5, 1e-4, adam_beta2=0.95)
    opt.load_state_dict(saved)                  # brings the saved momentum (and β₂) back
    set_momentum(opt, 0.5, 0.95)
    for group in opt.param_groups:
        assert group.get("betas", (0.5, 0.95)) == (0.5, 0.95)
        assert group.get("momentum", 0.5) == 0.5


def test_lr_scales_give_a_submodule_its_own_rate_through_the_schedule():
    model = nn.Sequential()
    model.add_module("encoder", nn.Linear(3, 3))
    model.add_module("predictor", nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)))
    opt = build_optimizer(model, "adamw", 1e-3, 0.9, 1e-4, exclude_bias_norm=True,
                          lr_scales={"predictor": 10.0})
    names = {id(p): n for n, p in model.named_parameters()}
    groups = [(sorted(names[id(p)] for p in g["params"]), g["weight_decay"], g["lr_scale"])
              for g in opt.param_groups]
    assert groups == [(["encoder.weight"], 1e-4, 1.0), (["encoder.bias"], 0.0, 1.0),
                      (["predictor.0.weight"], 1e-4, 10.0),
                      (["predictor.0.bias", "predictor.1.bias", "predictor.1.weight"], 0.0, 10.0)]
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-3, 1e-3, 1e-2, 1e-2])
    set_lr(opt, lr_at(0, 0.5, 4, 10))                   # warm-up step 1 of 4: 0.125
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.125, 0.125, 1.25, 1.25])


def test_lr_scales_step_sizes_follow_the_scale():
    # SGD without momentum: each parameter moves by lr · scale · grad
    model = nn.Sequential()
    model.add_module("a", nn.Linear(1, 1, bias=False))
    model.add_module("b", nn.Linear(1, 1, bias=False))
    opt = build_optimizer(model, "sgd", 0.1, 0.0, 0.0, lr_scales={"b": 3.0})
    before = [p.detach().clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    moved = [(b - p.detach()).item() for b, p in zip(before, model.parameters(), strict=True)]
    assert moved == pytest.approx([0.1, 0.3])


def test_lr_scales_refuse_an_unknown_submodule_and_a_bad_factor():
    with pytest.raises(ValueError, match="'predictor', which is not a submodule of Linear"):
        build_optimizer(nn.Linear(2, 2), "adamw", 1e-3, 0.9, 0.0, lr_scales={"predictor": 10})
    with pytest.raises(ValueError, match="must be positive"):
        build_optimizer(nn.Sequential(nn.Linear(2, 2)), "adamw", 1e-3, 0.9, 0.0,
                        lr_scales={"0": 0.0})


def test_a_saved_state_without_lr_scale_runs_at_the_plain_rate():
    # optimiser states saved before groups carried lr_scale load and keep one rate
    model = nn.Linear(3, 2)
    opt = build_optimizer(model, "adamw", 1e-3, 0.9, 1e-4)
    saved = opt.state_dict()
    for group in saved["param_groups"]:
        del group["lr_scale"]
    opt.load_state_dict(saved)
    set_lr(opt, 0.2)
    assert [g["lr"] for g in opt.param_groups] == [0.2]
