"""Slider controls read from the op registry and the parameter schemas."""

from __future__ import annotations

import pytest
import yaml

from bioaug.augment import OPS, load_protocol, parse_protocol
from bioaug.augment.ops.params import plain
from bioaug.napari.controls import FORMS, control, main_amplitude, step_controls

TEXT = """bioaug_protocol: 1
name: t
views:
  - crop_size: 32
    steps:
      - flip: {horizontal: true, p: 0.5}
      - stain_jitter: {brightness: 0.2, p: 0.8}
      - gaussian_blur: {sigma: [0.1, 1.5], p: 0.3}
      - channel_dropout: {max_dropped: 2}
      - gaussian_noise: {p: 0.4}
  - same_as: 0
"""


def controls_of(text: str):
    return step_controls(parse_protocol(text), yaml.safe_load(text))


def test_each_step_gets_p_and_its_main_amplitude() -> None:
    got = {(c.step, c.key): (c.kind, c.low, c.high, c.value) for c in controls_of(TEXT)}
    assert got == {
        (0, "p"): ("number", 0.0, 1.0, 0.5),  # flip has no amplitude
        (1, "p"): ("number", 0.0, 1.0, 0.8),
        (1, "brightness"): ("number", 0.0, 1.0, 0.2),  # the written shorthand, its bounds
        (2, "p"): ("number", 0.0, 1.0, 0.3),
        (2, "sigma"): ("array", 0.05, 50.0, 1.5),  # the high end; (0, 50] nudged inside
        (3, "p"): ("number", 0.0, 1.0, 1.0),  # the default
        (3, "max_dropped"): ("integer", 1.0, 64.0, 2.0),
        (4, "p"): ("number", 0.0, 1.0, 0.4),
        (4, "std"): ("array", 0.0, 1.0, 0.05),  # a range left at its default [0, 0.05]
    }
    assert {c.view for c in controls_of(TEXT)} == {0}  # the same_as view copies view 0


def test_written_values_keep_their_form() -> None:
    by_key = {c.key: c for c in controls_of(TEXT) if c.step in (1, 2, 3)}
    assert by_key["brightness"].written(0.45) == 0.45
    assert by_key["sigma"].written(2.0) == [0.1, 2.0]
    assert by_key["sigma"].written(0.06) == [0.06, 0.06]  # the low end follows
    assert by_key["sigma"].written(99.0) == [0.1, 50.0]  # clipped to the bounds
    assert by_key["max_dropped"].written(3.4) == 3
    assert by_key["brightness"].written(1 / 3) == 0.3333


def test_main_amplitude_is_the_first_numeric_example_parameter_of_every_op() -> None:
    for name, op in OPS.items():
        defaults = plain(op.Params().model_dump()) if name != "albumentations" else {}
        values = {**defaults, **op.example}
        numeric = [k for k in op.example if control(0, 0, name, k, values[k]) is not None]
        assert main_amplitude(name, values) == (numeric[0] if numeric else None), name
    assert main_amplitude("rotate90", {"turns": [0, 1, 2, 3]}) is None
    assert main_amplitude("stain_jitter", {"brightness": [0.5, 0.7]}) == "brightness"


def test_forms_are_keyed_by_json_schema_type() -> None:
    assert set(FORMS) == {"array", "number", "integer"}
    assert control(0, 0, "flip", "horizontal", True) is None  # true/false: no slider


@pytest.mark.parametrize("name", ["bbbc021-expert", "dino-multicrop", "ifc-cellcycle-expert",
                                  "none"])
def test_shipped_protocols_have_controls_within_bounds(name: str) -> None:
    protocol = load_protocol(name)
    for c in step_controls(protocol, yaml.safe_load(protocol.text)):
        assert c.low <= c.value <= c.high and c.low < c.high, c
