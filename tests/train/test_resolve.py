"""Resolving a run config: the method's recipe under the user's options, with sources."""

from __future__ import annotations

import pytest
import yaml

from bioaug.errors import ConfigError
from bioaug.methods import METHODS
from bioaug.methods.recipe import scaled_lr
from bioaug.train.config import RECIPE_FIELDS, TrainConfig, load_config
from bioaug.train.resolve import resolve


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(data="s", protocol="p", out="o", **kw)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_unset_options_take_the_methods_recipe(name):
    r = resolve(_cfg(method=name, batch_size=128, epochs=20), n_items=1280)
    recipe = METHODS[name].recipe
    for field in RECIPE_FIELDS:
        if field != "warmup_epochs":
            assert getattr(r.config, field) == getattr(recipe, field), field
            assert r.sources[field] == "recipe"
    # 10 steps/epoch × 20 epochs; warm-up 10 % of the run = 2 epochs = 20 steps (BYOL 45 %:
    # 9 epochs, 90 steps)
    fraction = 0.45 if name == "byol" else 0.1
    assert recipe.warmup_fraction == fraction
    assert (r.steps_per_epoch, r.total_steps, r.warmup_steps) == (10, 200, round(200 * fraction))
    assert r.config.warmup_epochs == pytest.approx(20 * fraction)
    assert r.effective_lr == pytest.approx(scaled_lr(recipe.lr, 128, recipe.lr_scaling))
    # every method hyperparameter is written out, from the method's defaults
    assert r.config.method_kwargs == METHODS[name].Config().model_dump(mode="json")
    assert all(r.sources[f"method_kwargs.{k}"] == "recipe" for k in r.config.method_kwargs)


def test_warmup_is_capped_at_ten_epochs():
    r = resolve(_cfg(method="simclr", batch_size=100, epochs=200), n_items=1000)
    assert r.config.warmup_epochs == 10 and r.warmup_steps == 100


def test_user_values_win_and_are_attributed():
    cfg = load_config(None, data="s", protocol="p", out="o", method="moco_v2", lr=0.05,
                      optimizer="lars", warmup_epochs=0, lr_scaling="sqrt", batch_size=64,
                      method_kwargs={"temperature": 0.1, "momentum": None})
    r = resolve(cfg, n_items=640)
    assert (r.config.optimizer, r.config.lr, r.config.warmup_epochs) == ("lars", 0.05, 0)
    assert r.sources["optimizer"] == r.sources["lr"] == "command line"
    assert r.sources["weight_decay"] == "recipe" and r.sources["seed"] == "default"
    assert r.effective_lr == pytest.approx(0.05 * 0.5)          # √(64/256)
    assert r.warmup_steps == 0
    assert r.config.method_kwargs["temperature"] == 0.1
    assert r.sources["method_kwargs.temperature"] == "command line"
    # None counts as not given: the recipe's value, attributed to the recipe
    assert r.config.method_kwargs["momentum"] == 0.99
    assert r.sources["method_kwargs.momentum"] == "recipe"


def test_resolving_a_resolved_config_changes_nothing():
    first = resolve(_cfg(method="byol", batch_size=32, epochs=3), n_items=320)
    again = resolve(first.config, n_items=320)
    assert again.to_plain() == first.to_plain()


def test_warmup_warnings_say_what_to_change():
    r = resolve(_cfg(method="simclr", batch_size=10, epochs=10, warmup_epochs=6), n_items=100)
    (msg,) = r.warnings
    assert "warm-up (60 steps, 6 epochs) is more than half of the run (100 steps)" in msg
    assert "use --warmup-epochs 1 (10% of the run)" in msg
    r = resolve(_cfg(method="simclr", batch_size=10, epochs=10, max_steps=40,
                     warmup_epochs=5), n_items=100)
    assert "is as long as the run (40 steps)" in r.warnings[0]
    assert resolve(_cfg(method="simclr", batch_size=10, epochs=10), n_items=100).warnings == []


def test_momentum_and_queue_warnings_come_from_the_method():
    r = resolve(_cfg(method="moco_v2", batch_size=100, epochs=3,
                     method_kwargs={"momentum": 0.999, "momentum_end": 0.999}), n_items=1000)
    assert len(r.warnings) == 1 and "key encoder would still be 97%" in r.warnings[0]
    assert "# warning: moco_v2: with momentum 0.999 (fixed)" in r.describe()


def test_describe_is_a_run_file():
    r = resolve(_cfg(method="vicreg", batch_size=32, epochs=2), n_items=64)
    text = r.describe()
    assert yaml.safe_load(text) == r.to_plain()
    assert "# schedule: 64 items, 2 steps/epoch, 4 steps" in text


def test_bad_method_hyperparameters_are_caught_when_resolving():
    with pytest.raises(ConfigError, match="temprature: unknown key"):
        resolve(_cfg(method="simclr", method_kwargs={"temprature": 0.1}), n_items=1000)
    with pytest.raises(ConfigError, match="unknown method 'simclr2'"):
        resolve(_cfg(method="simclr2"), n_items=1000)


@pytest.mark.parametrize(("name", "beta2"), [("mae", 0.95), ("simclr", 0.999), ("dino", 0.999)])
def test_adam_beta2_comes_from_the_recipe(name, beta2):
    r = resolve(_cfg(method=name, batch_size=32, epochs=2), n_items=64)
    assert r.config.adam_beta2 == beta2 and r.sources["adam_beta2"] == "recipe"
    assert f"adam_beta2: {beta2}" in r.describe()


def test_the_users_adam_beta2_wins_over_the_recipe():
    r = resolve(load_config(None, data="s", protocol="p", out="o", method="mae",
                            adam_beta2=0.99, batch_size=32), n_items=64)
    assert r.config.adam_beta2 == 0.99 and r.sources["adam_beta2"] == "command line"
    assert r.to_plain()["adam_beta2"] == 0.99                 # what RUN/config.yaml holds
