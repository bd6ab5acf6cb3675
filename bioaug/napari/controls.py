"""Slider controls for a protocol: each step's probability ``p`` and its main amplitude.

Everything here is read from the op registry and the ops' parameter schemas (the JSON
Schema that ``bioaug protocol schema`` prints), never from a list of op names:

* a step's *main amplitude* is the first parameter in the op's ``example`` that holds a
  number or a numeric range (``stain_jitter`` → ``brightness``, ``gaussian_blur`` →
  ``sigma``); ops without one (``flip``, ``rotate90``) get a ``p`` slider only;
* the slider's bounds are the schema's bounds for the form the value is written in: a
  single number (``brightness: 0.2``) slides that number within the shorthand's bounds;
  a range (``sigma: [0.1, 1.5]``), or a range left at its default, slides its high end
  within the range's bounds, lowering the low end when it would pass it;
* the value shown is the one written in the text (or the default when the key is absent),
  and a moved slider writes back in that same form.

A ``same_as`` view copies its steps, so only views with steps of their own get controls.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bioaug.augment.ops import OPS
from bioaug.augment.ops.params import plain
from bioaug.augment.schema import Protocol

#: Digits kept when a slider's value is written into the text.
DIGITS = 4


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(
        value)


def _bounds(option: Mapping[str, Any]) -> tuple[float, float] | None:
    """``(low, high)`` of a schema option with numeric bounds (an open low end is nudged
    inside), or None when it has none."""
    high = option.get("maximum")
    if "minimum" in option:
        low = option["minimum"]
    elif "exclusiveMinimum" in option and high is not None:
        low = option["exclusiveMinimum"] + (high - option["exclusiveMinimum"]) * 1e-3
    else:
        return None
    return (float(low), float(high)) if high is not None else None


def _rounded(value: float) -> float:
    return float(f"{value:.{DIGITS}g}")


@dataclass(frozen=True)
class Form:
    """How a value written in one JSON type is shown on a slider and written back."""

    integer: bool

    def bounds(self, option: Mapping[str, Any]) -> tuple[float, float] | None:
        return _bounds(option)

    def fits(self, raw: Any) -> bool:
        return _number(raw)

    def shown(self, raw: Any) -> float:
        return float(raw)

    def written(self, raw: Any, value: float) -> Any:
        return round(value) if self.integer else _rounded(value)


@dataclass(frozen=True)
class HighEnd(Form):
    """A range ``[low, high]`` slid by its high end."""

    def bounds(self, option: Mapping[str, Any]) -> tuple[float, float] | None:
        return _bounds(option.get("items") or {})

    def fits(self, raw: Any) -> bool:
        return isinstance(raw, (list, tuple)) and len(raw) == 2 and all(_number(v) for v in raw)

    def shown(self, raw: Any) -> float:
        return float(raw[1])

    def written(self, raw: Any, value: float) -> Any:
        high = _rounded(value)
        return [min(_rounded(float(raw[0])), high), high]


#: JSON Schema type of a parameter's option → how a slider reads and writes it.
FORMS: dict[str, Form] = {
    "array": HighEnd(integer=False),
    "number": Form(integer=False),
    "integer": Form(integer=True),
}


@dataclass(frozen=True)
class Control:
    """One slider: parameter ``key`` of step ``step`` (op ``op``) of view ``view``."""

    view: int
    step: int
    op: str
    key: str
    kind: str  # a key of FORMS
    low: float
    high: float
    value: float
    raw: Any  # the value as written (or the default)

    @property
    def form(self) -> Form:
        return FORMS[self.kind]

    @property
    def integer(self) -> bool:
        return self.form.integer

    @property
    def label(self) -> str:
        return f"views[{self.view}].steps[{self.step}].{self.op}.{self.key}"

    def written(self, value: float) -> Any:
        """What to write into the text for the slider at ``value``."""
        return self.form.written(self.raw, min(max(value, self.low), self.high))


@functools.cache
def _options(op: str, key: str) -> dict[str, dict[str, Any]]:
    """JSON type → schema option of parameter ``key`` of ``op``."""
    schema = OPS[op].Params.model_json_schema()["properties"][key]
    return {o["type"]: o for o in schema.get("anyOf", [schema]) if "type" in o}


def _kind(op: str, key: str, raw: Any) -> str | None:
    """The form a slider for ``raw`` uses, or None when there is no fitting one."""
    options = _options(op, key)
    for kind, form in FORMS.items():
        if kind in options and form.fits(raw) and form.bounds(options[kind]) is not None:
            if form.integer and not (isinstance(raw, int) or float(raw).is_integer()):
                continue
            if kind == "integer" and "number" in options:
                continue
            return kind
    return None


def control(view: int, step: int, op: str, key: str, raw: Any) -> Control | None:
    """The slider for ``raw`` (the value written, or the default), or None without one."""
    kind = _kind(op, key, raw)
    if kind is None:
        return None
    form = FORMS[kind]
    bounds = form.bounds(_options(op, key)[kind])
    assert bounds is not None
    low, high = bounds
    value = min(max(form.shown(raw), low), high)
    return Control(view, step, op, key, kind, low, high, value, raw)


def main_amplitude(op: str, values: Mapping[str, Any]) -> str | None:
    """The first parameter of ``op``'s ``example`` that a slider can show for ``values``."""
    for key in OPS[op].example:
        if key in values and _kind(op, key, values[key]) is not None:
            return key
    return None


def written_params(raw_step: Any, op: str) -> dict[str, Any]:
    """The parameters written for a step as loaded from YAML (``- flip`` has none)."""
    if isinstance(raw_step, dict):
        params = raw_step.get(op)
        return dict(params) if isinstance(params, dict) else {}
    return {}


def step_controls(protocol: Protocol, raw: Mapping[str, Any]) -> list[Control]:
    """The controls of a valid protocol: ``p`` and the main amplitude of each step of
    each view with steps of its own; ``raw`` is the protocol's YAML as loaded."""
    out: list[Control] = []
    for i, view in enumerate(protocol.views):
        if view.same_as is not None:
            continue
        raw_steps = raw["views"][i].get("steps") or []
        for j, step in enumerate(view.steps):
            values = {**plain(step.params.model_dump()), **written_params(raw_steps[j], step.op)}
            keys = ["p", main_amplitude(step.op, {k: v for k, v in values.items() if k != "p"})]
            for key in keys:
                made = control(i, j, step.op, key, values[key]) if key else None
                if made is not None:
                    out.append(made)
    return out
