"""Key paths and their line numbers."""

from __future__ import annotations

import pytest

from bioaug.augment.yamlsource import load_yaml, read_yaml_file, refuse_duplicates
from bioaug.errors import ConfigError, ProtocolError, format_path


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


def test_keys_given_twice_are_recorded_with_both_lines() -> None:
    text = "a: 1\nb:\n  x: 1\n  y: 2\n  x: 3\na: 4\nc: [{k: 1, k: 2}]\n"
    _, lines = load_yaml(text, "t.yaml")
    assert [(d.path, d.first_line, d.line) for d in lines.duplicates] == [
        (("b", "x"), 3, 5), (("a",), 1, 6), (("c", 0, "k"), 7, 7)]


def test_refuse_duplicates_names_every_repeated_key() -> None:
    _, lines = load_yaml("a: 1\nb: 2\na: 3\n", "t.yaml")
    with pytest.raises(ConfigError, match=r"^t\.yaml:3: key 'a' \(lines 1 and 3\) is given "
                                          "twice; YAML would keep the second"):
        refuse_duplicates(lines, "t.yaml")
    _, lines = load_yaml("a: 1\nb: 2\na: 3\nb: 4\n", "t.yaml")
    with pytest.raises(ProtocolError, match=r"keys 'a' \(lines 1 and 3\), 'b' \(lines 2 and 4\) "
                                            "are given twice"):
        refuse_duplicates(lines, "t.yaml", ProtocolError)
    _, lines = load_yaml("a: 1\nb: {a: 2}\n", "t.yaml")
    refuse_duplicates(lines, "t.yaml")  # the same key in another mapping is no repeat


def test_read_yaml_file_raises_the_callers_error(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1\n")
    with pytest.raises(ConfigError, match="YAML syntax error"):
        read_yaml_file(bad, "run config")
    with pytest.raises(ProtocolError, match="YAML syntax error"):
        read_yaml_file(bad, "protocol", ProtocolError)
