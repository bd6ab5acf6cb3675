from __future__ import annotations

from types import SimpleNamespace

import pytest

from bioaug.data.store import Store
from bioaug.errors import ConfigError, DataError, ProtocolError
from bioaug.train.checks import (
    check_batch,
    check_crops,
    check_names,
    check_protocol_vs_store,
    load_run_protocol,
)
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
