"""Key paths and their line numbers."""

from __future__ import annotations

from bioaug.augment.yamlsource import load_yaml
from bioaug.errors import format_path


def test_line_map_of_nested_keys() -> None:
    text = "a: 1\nb:\n  - x: 2\n    y: [1, 2]\n  - z: 3\n"
    data, lines = load_yaml(text, "t.yaml")
    assert data == {"a": 1, "b": [{"x": 2, "y": [1, 2]}, {"z": 3}]}
    assert lines.line(("a",)) == 1
    assert lines.line(("b", 0, "y")) == 4
    assert lines.line(("b", 1, "z")) == 5
    assert lines.line(("b", 1, "z", "deeper", 3)) == 5  # nearest known ancestor


def test_format_path() -> None:
    assert format_path(("views", 0, "steps", 3, "stain_jitter", "brightness")) == \
        "views[0].steps[3].stain_jitter.brightness"
    assert format_path(()) == ""
