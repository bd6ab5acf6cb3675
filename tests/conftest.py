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


@pytest.fixture(scope="session")
def readme_updater():
    """``tools/update_readme.py`` as a module (the generator of the docs' registry tables)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("update_readme",
                                                  REPO / "tools" / "update_readme.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
