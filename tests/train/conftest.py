from __future__ import annotations

from pathlib import Path

import pytest

from tests.train.helpers import make_store, write_protocol


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("store") / "tiny")


@pytest.fixture(scope="session")
def tiny_protocol(tmp_path_factory) -> Path:
    return write_protocol(tmp_path_factory.mktemp("protocol") / "tiny.yaml")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest (and most steadily on a shared machine) on one thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
