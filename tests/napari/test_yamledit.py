"""Writing one step parameter into protocol text, keeping the rest as written."""

from __future__ import annotations

import pytest
import yaml

from bioaug.augment import parse_protocol
from bioaug.errors import ProtocolError
from bioaug.napari.yamledit import flow, set_step_param

HEAD = "bioaug_protocol: 1\nname: t   # a comment\nviews:\n  - crop_size: 32\n    steps:\n"


def test_flow_text_reads_back_as_the_value() -> None:
    for value in (0.5, 1e-05, 3, True, [0.1, 2.0], [1, 2]):
        assert yaml.safe_load(flow(value)) == value
    assert flow(1e-05) == "1.0e-05"


def test_replaces_a_value_in_a_flow_mapping_keeping_comments() -> None:
    text = HEAD + "      - stain_jitter: {brightness: 0.2, p: 0.8}  # keep me\n  - same_as: 0\n"
    new = set_step_param(text, 0, 0, "stain_jitter", "brightness", 0.45)
    assert new == text.replace("brightness: 0.2", "brightness: 0.45")
    new = set_step_param(text, 0, 0, "stain_jitter", "p", 0.3)
    assert new == text.replace("p: 0.8", "p: 0.3")


def test_replaces_a_range() -> None:
    text = HEAD + "      - gaussian_blur: {sigma: [0.1, 1.5], p: 0.3}\n"
    new = set_step_param(text, 0, 0, "gaussian_blur", "sigma", [0.1, 2.0])
    assert "gaussian_blur: {sigma: [0.1, 2.0], p: 0.3}" in new
    assert parse_protocol(new).views[0].steps[0].params.sigma == (0.1, 2.0)


def test_adds_a_key_that_is_not_written() -> None:
    flow_text = HEAD + "      - gaussian_blur: {sigma: [0.1, 1.5]}\n"
    new = set_step_param(flow_text, 0, 0, "gaussian_blur", "p", 0.25)
    assert "- gaussian_blur: {sigma: [0.1, 1.5], p: 0.25}\n" in new
    block = HEAD + "      - stain_jitter:\n          brightness: 0.2  # gain\n"
    new = set_step_param(block, 0, 0, "stain_jitter", "p", 0.5)
    assert new.endswith("      - stain_jitter:\n          p: 0.5\n          brightness: 0.2  # gain\n")
    assert parse_protocol(new).views[0].steps[0].params.p == 0.5


@pytest.mark.parametrize(("step", "expected"), [
    ("- rotate90", "- rotate90: {p: 0.5}"),
    ("- rotate90:", "- rotate90: {p: 0.5}"),
    ("- rotate90: null", "- rotate90: {p: 0.5}"),
    ("- rotate90: {}", "- rotate90: {p: 0.5}"),
])
def test_steps_without_parameters_get_a_mapping(step: str, expected: str) -> None:
    text = HEAD + f"      {step}\n      - flip: {{p: 0.5}}\n"
    new = set_step_param(text, 0, 0, "rotate90", "p", 0.5)
    assert new == HEAD + f"      {expected}\n      - flip: {{p: 0.5}}\n"
    assert parse_protocol(new).views[0].steps[0].params.p == 0.5


def test_only_the_addressed_step_changes() -> None:
    text = HEAD + ("      - flip: {p: 0.5}\n" * 2) + "  - crop_size: 16\n    steps:\n" \
        "      - flip: {p: 0.5}\n"
    new = set_step_param(text, 1, 0, "flip", "p", 0.9)
    assert new.count("p: 0.5") == 2 and new.rstrip().endswith("- flip: {p: 0.9}")


@pytest.mark.parametrize(("text", "message"), [
    ("views: [\n", "not valid YAML"),
    ("", "text is empty"),
    (HEAD + "      - flip: {p: 0.5}\n", "no such step"),
])
def test_text_without_the_step_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(ProtocolError, match=message) as info:
        set_step_param(text, 0, 3, "flip", "p", 0.2, source="my.yaml")
    assert "views[0].steps[3].flip.p" in str(info.value) or message == "not valid YAML"


def test_a_step_of_another_op_is_refused() -> None:
    with pytest.raises(ProtocolError, match="not a `rotate90` step"):
        set_step_param(HEAD + "      - flip: {p: 0.5}\n", 0, 0, "rotate90", "p", 0.2)
