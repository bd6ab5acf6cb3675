"""Fixtures for the data tests: one tiny BBBC021 twin per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from bioaug.data.synth import synth_bbbc021

TWIN_KW = {"plates": 2, "sites": 2, "wells_per_plate": 4, "size": (160, 192),
           "cells_per_field": 10, "seed": 7}


@pytest.fixture(scope="session")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny twin (2 plates × 4 wells × 2 sites, 160×192 fields). Do not modify it."""
    return synth_bbbc021(tmp_path_factory.mktemp("twin") / "bbbc021", **TWIN_KW)


@pytest.fixture
def twin_copy(twin: Path, tmp_path: Path) -> Path:
    """A private copy of the twin that a test may damage."""
    import shutil

    dst = tmp_path / "bbbc021"
    shutil.copytree(twin, dst)
    return dst
