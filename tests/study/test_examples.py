"""Every example script imports and documents itself (they run end to end by hand/CI)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.py"))


def test_there_is_one_example_per_study():
    assert {p.stem for p in EXAMPLES} >= {"digits_transformation_sets", "cifar10_sweep",
                                          "bbbc021_expert_vs_default", "invariance_fusion"}


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_example_header_and_help(script, monkeypatch, capsys):
    text = script.read_text()
    doc = text.split('"""')[1]
    assert "Reproduces" in doc and "Time:" in doc and "Data:" in doc and "--quick" in doc
    monkeypatch.setattr(sys, "argv", [str(script), "--help"])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(str(script), run_name="__main__")
    assert info.value.code == 0
    assert "--quick" in capsys.readouterr().out


def test_example_sweep_files_validate():
    from bioaug.study.sweep_config import enumerate_points, load_sweep_config, validate_axes

    sweeps = sorted((EXAMPLES[0].parent / "sweeps").glob("*.yaml"))
    assert sweeps
    for path in sweeps:
        cfg = load_sweep_config(path)
        validate_axes(cfg, source=str(path))
        assert len(enumerate_points(cfg)) >= 2
