from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from bioaug.data.store import Store
from bioaug.errors import ConfigError, DataError, ProtocolError
from bioaug.train import checks
from bioaug.train.checks import (
    check_batch,
    check_crops,
    check_finite_store,
    check_names,
    check_protocol_vs_store,
    load_run_protocol,
    nonfinite_items,
    prepare_run,
)
from bioaug.train.config import TrainConfig
from bioaug.train.resolve import resolve
from tests.train.helpers import tiny_config


def test_protocol_without_channels_fits_any_store(tiny_store, tiny_protocol, tmp_path):
    cfg = tiny_config(tiny_store, tiny_protocol, tmp_path / "r")
    store = Store.open(tiny_store)
    check_protocol_vs_store(SimpleNamespace(channels=None), store, cfg)
    check_protocol_vs_store(SimpleNamespace(channels=["DAPI", "Actin"]), store, cfg)
    # one rule with build_pipeline: case does not count, order does
    check_protocol_vs_store(SimpleNamespace(channels=["DAPI", "actin"]), store, cfg)
    with pytest.raises(ProtocolError, match="not the store's channels"):
        check_protocol_vs_store(SimpleNamespace(channels=["Actin", "DAPI"]), store, cfg)


def test_crop_override_applies_to_every_view(tiny_store, tiny_protocol, tmp_path):
    cfg = tiny_config(tiny_store, tiny_protocol, tmp_path / "r", crop=20)
    protocol, text = load_run_protocol(cfg)
    assert [v.crop_size for v in protocol.views] == [20, 20]
    assert "crop_size: 24" in text                       # the original text is kept
    store = Store.open(tiny_store)
    assert check_crops(SimpleNamespace(crop_sizes=[20, [16, 20]]), store, cfg) == [(20, 20),
                                                                                   (16, 20)]
    with pytest.raises(ConfigError, match="--crop 20 is larger"):
        check_crops(SimpleNamespace(crop_sizes=[20, [16, 40]]), store, cfg)


def test_batch_checks(tiny_store, tiny_protocol, tmp_path):
    cfg = tiny_config(tiny_store, tiny_protocol, tmp_path / "r", batch_size=18)
    with pytest.raises(ConfigError, match="not divisible by the 4 processes"):
        check_batch(cfg, 64, world_size=4)
    check_batch(cfg, 64, world_size=2)
    with pytest.raises(DataError, match="fewer than one batch"):
        check_batch(cfg, 10, world_size=1)


def test_names(tiny_store, tiny_protocol, tmp_path):
    check_names(tiny_config(tiny_store, tiny_protocol, tmp_path / "r"))
    with pytest.raises(ConfigError, match=r"unknown backbone 'resnet19'.*resnet18"):
        check_names(tiny_config(tiny_store, tiny_protocol, tmp_path / "r", backbone="resnet19"))


# -- every check at once: prepare_run --------------------------------------------------------
def _float_store(path, bad: dict[int, float]):
    import numpy as np
    import pandas as pd

    from bioaug.data.store import write_store

    images = np.random.default_rng(1).random((30, 2, 32, 32)).astype(np.float32)
    for item, value in bad.items():
        images[item, item % 2, 3, 4] = value
    write_store(path, images, pd.DataFrame({"label": ["a"] * 30}), channels=["DAPI", "Actin"])
    return Store.open(path)


def test_nonfinite_items_are_found_chunk_by_chunk(tmp_path):
    store = _float_store(tmp_path / "s", {0: np.nan, 9: np.inf, 10: -np.inf, 29: np.nan})
    for chunk in (1, 4, 10, 1000):
        assert nonfinite_items(store, chunk).tolist() == [0, 9, 10, 29]
    with pytest.raises(DataError, match=r"items 0, 9, 10, 29 \(4 of 30 items\) have NaN or "
                                        "infinite pixels"):
        check_finite_store(store, chunk=4)
    clean = _float_store(tmp_path / "clean", {})
    assert nonfinite_items(clean).tolist() == []
    check_finite_store(clean)


class _UnreadableIntegerStore:
    """A uint16 store whose pixels fail the test when read."""

    dtype = np.dtype("uint16")

    def __len__(self) -> int:
        return 10

    @property
    def images(self):
        pytest.fail("an integer store was read for NaN")


def test_an_integer_store_is_not_read_for_nan():
    assert nonfinite_items(_UnreadableIntegerStore()).tolist() == []  # type: ignore[arg-type]


def test_prepare_run_makes_every_check_and_builds_the_run(tiny_store, tiny_protocol, tmp_path):
    cfg = tiny_config(tiny_store, tiny_protocol, tmp_path / "r")
    plan = prepare_run(cfg, world_size=1)
    assert plan.config.optimizer == "adamw" and plan.previous is None
    assert plan.crop_sizes == [(24, 24), (24, 24)] and plan.pipeline.n_views == 2
    assert not (tmp_path / "r").exists()                    # nothing written
    with pytest.raises(ConfigError, match="not divisible by the 3 processes"):
        prepare_run(cfg, world_size=3)
    one = _float_store(tmp_path / "nan", {5: np.nan})
    with pytest.raises(DataError, match=r"item 5 \(1 of 30 items\) has NaN"):
        prepare_run(tiny_config(one.path, tiny_protocol, tmp_path / "r2", batch_size=8),
                    world_size=1)


def test_widths_that_follow_the_backbone_are_resolved_and_resume(tiny_store, tiny_protocol,
                                                                tmp_path):
    """Barlow Twins' projector widths left unset are recorded at the values the model was
    built with (4 × vgg_mnist's 16 features at width 0.25), with where they came from; the
    run writes them to RUN/config.yaml and resumes with the same unset options."""
    import yaml

    from bioaug.train import train

    cfg = tiny_config(tiny_store, tiny_protocol, tmp_path / "r", method="barlow_twins",
                      method_kwargs={}, epochs=1, max_steps=1)
    plan = prepare_run(cfg, world_size=1)
    width = 4 * plan.method.feature_dim
    assert plan.config.method_kwargs["proj_hidden_dim"] == width
    assert plan.config.method_kwargs["proj_output_dim"] == width
    assert plan.resolved.sources["method_kwargs.proj_output_dim"] == "recipe, for this backbone"
    assert plan.resolved.sources["method_kwargs.lambd"] == "recipe"
    train(cfg)
    saved = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert saved["method_kwargs"]["proj_output_dim"] == width
    again = prepare_run(cfg, world_size=1, resume=True)
    assert again.previous is not None and again.config.method_kwargs == plan.config.method_kwargs


def test_the_dry_run_and_the_run_share_their_checks(tiny_store, tiny_protocol, tmp_path,
                                                    monkeypatch):
    from bioaug.train import loop

    calls = []
    real = checks.prepare_run

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(checks, "prepare_run", spy)
    cfg = tiny_config(tiny_store, tiny_protocol, tmp_path / "r", max_steps=1)
    loop.resolve_run(cfg)
    loop.train(cfg)
    assert calls == [{"world_size": 1, "resume": False, "force": False}] * 2


@pytest.mark.parametrize(("method", "given", "betas"), [
    ("mae", None, (0.9, 0.95)),              # the recipe: the MAE paper's β₂
    ("simclr", None, (0.9, 0.999)),          # the recipe: PyTorch's default
    ("mae", 0.98, (0.9, 0.98)),              # the user's value wins
])
def test_the_run_optimizer_takes_adam_beta2_from_the_resolved_config(method, given, betas):
    config = TrainConfig(data="s", protocol="p", out="o", method=method, adam_beta2=given)
    resolved = resolve(config, n_items=512).config
    model = nn.Linear(4, 2)
    model.lr_scales = dict                  # a Method's hook: one rate for every parameter
    optimizer = checks.build_run_optimizer(model, resolved)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert all(group["betas"] == betas for group in optimizer.param_groups)
