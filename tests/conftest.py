"""Shared test settings: no progress bars, no network-phoning imports, a headless backend."""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("BIOAUG_PROGRESS", "0")
os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
BBBC021_CSV_DIR = SHARED / "data" / "bbbc021"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def bbbc021_csv_dir() -> Path:
    """The real BBBC021 metadata CSVs (``../shared/data/bbbc021``)."""
    if not (BBBC021_CSV_DIR / "BBBC021_v1_image.csv").is_file():
        pytest.skip("../shared/data/bbbc021 is not beside the repository")
    return BBBC021_CSV_DIR
