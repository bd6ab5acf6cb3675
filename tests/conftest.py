"""Shared test settings: no progress bars, no network-phoning imports, a headless backend."""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("BIOAUG_PROGRESS", "0")
os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def bbbc021_csv_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real BBBC021 metadata CSVs, as shipped inside the package (byte-identical)."""
    from bioaug.data.bbbc021 import write_bundled_metadata

    return write_bundled_metadata(tmp_path_factory.mktemp("bbbc021_csv"))
