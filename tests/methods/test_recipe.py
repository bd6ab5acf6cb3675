"""Each method's training recipe, the momentum schedules and the run-length warnings."""

from __future__ import annotations

import math

import pytest

from bioaug.methods import METHODS, method_config
from bioaug.methods.base import cosine_schedule, remaining_init_fraction
from bioaug.methods.recipe import Recipe, scaled_lr

#: (optimizer, base lr at batch 256, scaling, weight decay, bias/norm excluded, warm-up
#: fraction) per method: AdamW for the short runs bioaug is used for (the papers' LARS/SGD
#: settings are in ``reference``; see bioaug.methods.recipe for the measurements behind the
#: choice); BYOL warms up for 45 % of the run (chosen on real cells, see bioaug.methods.byol)
EXPECTED = {
    "moco_v2": ("adamw", 1.5e-3, "sqrt", 1e-4, True, 0.1),
    "simclr": ("adamw", 1.5e-3, "sqrt", 1e-4, True, 0.1),
    "byol": ("adamw", 1.5e-3, "sqrt", 1e-4, True, 0.45),
    "barlow_twins": ("adamw", 1.5e-3, "sqrt", 1e-4, True, 0.1),
    "vicreg": ("adamw", 1.5e-3, "sqrt", 1e-4, True, 0.1),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_methods_recipe(name):
    r = METHODS[name].recipe
    assert (r.optimizer, r.lr, r.lr_scaling, r.weight_decay, r.exclude_bias_norm,
            r.warmup_fraction) == EXPECTED[name]
    assert r.momentum == 0.9 and r.warmup_max_epochs == 10
    assert "paper" in r.reference and "solo-learn" in r.reference
    # at batch 128 the optimiser runs at ≈1e-3, the rate measured on digits
    assert scaled_lr(r.lr, 128, r.lr_scaling) == pytest.approx(1.06e-3, abs=1e-5)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_registered_method_declares_a_recipe_and_a_title(name):
    cls = METHODS[name]
    assert isinstance(cls.recipe, Recipe) and cls.recipe.reference
    assert cls.title and cls.__doc__


def test_lr_scaling_known_values():
    assert scaled_lr(0.3, 512, "linear") == pytest.approx(0.6)
    assert scaled_lr(0.3, 64, "linear") == pytest.approx(0.075)
    assert scaled_lr(0.4, 1024, "sqrt") == pytest.approx(0.8)
    assert scaled_lr(0.4, 64, "sqrt") == pytest.approx(0.2)
    assert scaled_lr(0.4, 64, "none") == 0.4
    with pytest.raises(ValueError, match="unknown lr scaling"):
        scaled_lr(0.1, 256, "cubic")


def test_cosine_momentum_schedule_known_values():
    # τ = 1 − (1 − τ_base)(cos(π p) + 1)/2, BYOL eq. in section 3.2
    assert cosine_schedule(0.0, 0.99, 1.0) == pytest.approx(0.99)
    assert cosine_schedule(0.5, 0.99, 1.0) == pytest.approx(0.995)
    assert cosine_schedule(1.0, 0.99, 1.0) == pytest.approx(1.0)
    assert cosine_schedule(0.25, 0.99, 1.0) == pytest.approx(1 - 0.01 * (math.cos(math.pi / 4) + 1) / 2)
    assert cosine_schedule(0.3, 0.999, 0.999) == pytest.approx(0.999)  # fixed


@pytest.mark.parametrize("name", ["moco_v2", "byol"])
def test_momentum_encoders_follow_the_schedule(name, tiny_backbone):
    from bioaug.methods import build_method

    cls = METHODS[name]
    cfg = method_config(name)
    assert [cls.target_momentum(cfg, p) for p in (0.0, 0.5, 1.0)] == pytest.approx([0.99, 0.995, 1.0])
    method = build_method(name, tiny_backbone, proj_hidden_dim=8, proj_output_dim=4,
                          **({"pred_hidden_dim": 8} if name == "byol" else {}))
    method.after_step(0.5)
    assert method.current_momentum == pytest.approx(0.995)
    fixed = method_config(name, momentum=0.999, momentum_end=0.999)
    assert cls.target_momentum(fixed, 0.7) == pytest.approx(0.999)


@pytest.mark.parametrize("name", ["simclr", "barlow_twins", "vicreg"])
def test_methods_without_momentum_encoder(name):
    cls = METHODS[name]
    assert cls.target_momentum(method_config(name), 0.5) is None
    assert cls.run_warnings(method_config(name), n_items=100, batch_size=10, total_steps=3) == []


def test_remaining_init_fraction():
    assert remaining_init_fraction([0.999] * 300) == pytest.approx(0.999**300)
    assert remaining_init_fraction([0.999] * 300) == pytest.approx(0.7407, abs=1e-4)
    assert remaining_init_fraction([]) == 1.0


def test_moco_fixed_0999_for_300_steps_warns_and_says_what_to_use():
    cls = METHODS["moco_v2"]
    cfg = method_config("moco_v2", momentum=0.999, momentum_end=0.999)
    (msg,) = cls.run_warnings(cfg, n_items=5000, batch_size=256, total_steps=300)
    assert "0.999 (fixed)" in msg and "74% its random initialisation" in msg
    assert "after 300 steps" in msg and "use momentum=0.99 with momentum_end=1.0" in msg
    # the recipe's ramp is fine for that run: Π m ≈ exp(−0.01·300/2) ≈ 0.22
    assert cls.run_warnings(method_config("moco_v2"), n_items=5000, batch_size=256,
                            total_steps=300) == []


def test_byol_warns_for_a_very_short_run():
    cls = METHODS["byol"]
    (msg,) = cls.run_warnings(method_config("byol"), n_items=100, batch_size=10, total_steps=50)
    assert "target encoder" in msg and "0.99 → 1 (cosine)" in msg
    assert "use momentum=0.95 with momentum_end=1.0" in msg
    suggested = method_config("byol", momentum=0.95)
    assert cls.run_warnings(suggested, n_items=100, batch_size=10, total_steps=50) == []


def test_moco_queue_that_never_fills_warns():
    cls = METHODS["moco_v2"]
    cfg = method_config("moco_v2", queue_size=4096)
    msgs = cls.run_warnings(cfg, n_items=100000, batch_size=128, total_steps=100)
    (msg,) = [m for m in msgs if "queue" in m]
    assert "4096 keys needs 32 steps to fill" in msg and "use queue_size ≤ 3200" in msg
    assert not [m for m in cls.run_warnings(cfg, n_items=100000, batch_size=128, total_steps=1000)
                if "queue" in m]
    # capped at half an epoch: 1000 items → 500 → 384 keys (3 batches of 128)
    assert cls.queue_size_for(cfg, 1000, 128) == 384


@pytest.mark.parametrize("name", sorted(METHODS))
def test_adamw_beta2_is_the_papers(name):
    # MAE's paper trains with β₂ 0.95 (He et al. 2022); the others keep PyTorch's 0.999
    assert METHODS[name].recipe.adam_beta2 == (0.95 if name == "mae" else 0.999)


@pytest.mark.parametrize("beta2", [0.0, 1.0, 1.5])
def test_a_recipe_refuses_a_beta2_outside_zero_one(beta2):
    with pytest.raises(ValueError, match="adam_beta2"):
        Recipe(optimizer="adamw", lr=1e-3, weight_decay=0.05, adam_beta2=beta2)
