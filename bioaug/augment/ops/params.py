"""Parameter types for op schemas: bounded numbers, ranges, choices.

Every op declares its parameters as a pydantic model built from these types. Each type
validates with a message a user can act on (``must be in [0, 1], got 1.5``) and carries its
bounds into the JSON Schema, so ``bioaug protocol schema`` and ``bioaug protocol list-ops``
are generated from the same declarations that validate the YAML.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from bioaug.errors import did_you_mean

Range = tuple[float, float]


def _fmt(v: float) -> str:
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return f"{v:g}"


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return f"the text '{value}'"
        if "e" in value.lower():
            return (f"the text '{value}' (YAML needs a dot in exponent notation, e.g. "
                    f"1.0e-2; write {number!r})")
        return f"the text '{value}' (quoted, so it is text; write {number!r} without quotes)"
    if isinstance(value, list):
        return f"a list {value!r}"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value)


def _as_number(value: Any, *, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        want = "an integer" if integer else "a number"
        raise PydanticCustomError("wrong_type", f"must be {want}, got {_kind(value)}")
    if integer and not float(value).is_integer():
        raise PydanticCustomError("wrong_type", f"must be an integer, got {value!r}")
    if isinstance(value, float) and math.isnan(value):
        raise PydanticCustomError("wrong_type", "must be a number, got NaN")
    return int(value) if integer else float(value)


def _check_bounds(v: float, lo: float, hi: float, *, open_lo: bool = False) -> None:
    bad = v <= lo if open_lo else v < lo
    if bad or v > hi:
        left = "(" if open_lo else "["
        raise PydanticCustomError(
            "out_of_range", f"must be in {left}{_fmt(lo)}, {_fmt(hi)}], got {_fmt(v)}")


def _bounds_text(lo: float, hi: float, open_lo: bool) -> str:
    return f"{'(' if open_lo else '['}{_fmt(lo)}, {_fmt(hi)}]"


def Number(lo: float, hi: float, *, open_lo: bool = False) -> Any:
    """A float in ``[lo, hi]`` (``(lo, hi]`` with ``open_lo``)."""

    def check(value: Any) -> float:
        v = _as_number(value)
        _check_bounds(v, lo, hi, open_lo=open_lo)
        return v

    schema: dict[str, Any] = {"type": "number"}
    if math.isfinite(lo):
        schema["exclusiveMinimum" if open_lo else "minimum"] = lo
    if math.isfinite(hi):
        schema["maximum"] = hi
    return Annotated[float, BeforeValidator(check), WithJsonSchema(schema),
                     _Meta(kind="number", bounds=_bounds_text(lo, hi, open_lo))]


def Integer(lo: int, hi: int) -> Any:
    """An integer in ``[lo, hi]``."""

    def check(value: Any) -> int:
        v = _as_number(value, integer=True)
        _check_bounds(v, lo, hi)
        return int(v)

    return Annotated[int, BeforeValidator(check),
                     WithJsonSchema({"type": "integer", "minimum": lo, "maximum": hi}),
                     _Meta(kind="integer", bounds=f"[{lo}, {hi}]")]


def OptionalInteger(lo: int, hi: int) -> Any:
    """An integer in ``[lo, hi]`` or null."""

    def check(value: Any) -> int | None:
        if value is None:
            return None
        v = _as_number(value, integer=True)
        _check_bounds(v, lo, hi)
        return int(v)

    return Annotated[int | None, BeforeValidator(check),
                     WithJsonSchema({"anyOf": [{"type": "integer", "minimum": lo, "maximum": hi},
                                               {"type": "null"}]}),
                     _Meta(kind="integer or null", bounds=f"[{lo}, {hi}]")]


def Bool() -> Any:
    """``true`` or ``false`` (no 0/1, no strings)."""

    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise PydanticCustomError("wrong_type", f"must be true or false, got {_kind(value)}")
        return value

    return Annotated[bool, BeforeValidator(check), WithJsonSchema({"type": "boolean"}),
                     _Meta(kind="bool", bounds="true/false")]


def Choice(*choices: str) -> Any:
    """One of a fixed set of words."""

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise PydanticCustomError("wrong_type",
                                      f"must be one of {', '.join(choices)}, got {_kind(value)}")
        if value not in choices:
            raise PydanticCustomError(
                "bad_choice",
                f"must be one of {', '.join(choices)}, got '{value}'{did_you_mean(value, choices)}")
        return value

    return Annotated[str, BeforeValidator(check), WithJsonSchema({"enum": list(choices)}),
                     _Meta(kind="choice", bounds=" | ".join(choices))]


def Span(lo: float, hi: float, *, scalar: str | None = None, scalar_max: float | None = None,
         open_lo: bool = False) -> Any:
    """A range ``[a, b]`` with ``lo <= a <= b <= hi`` (``a == b`` is a fixed amplitude).

    ``scalar`` allows a single number ``v`` as shorthand: ``"sym"`` → ``[-v, v]``,
    ``"around1"`` → ``[max(lo, 1 - v), 1 + v]`` (torchvision's colour-jitter convention),
    ``"point"`` → ``[v, v]``, ``"upto"`` → ``[lo, v]``. ``scalar_max`` bounds that number.
    """

    def from_scalar(v: float) -> Range:
        smax = scalar_max if scalar_max is not None else hi
        if scalar == "sym":
            _check_bounds(v, 0.0, smax)
            return (-v, v)
        if scalar == "around1":
            _check_bounds(v, 0.0, smax)
            return (max(lo, 1.0 - v), 1.0 + v)
        if scalar == "upto":
            _check_bounds(v, lo, smax, open_lo=open_lo)
            return (lo, v)
        _check_bounds(v, lo, smax, open_lo=open_lo)
        return (v, v)

    def check(value: Any) -> Range:
        if scalar is not None and not isinstance(value, (list, tuple)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise PydanticCustomError(
                    "wrong_type", f"must be a range [low, high] or a single number, got "
                                  f"{_kind(value)}")
            return from_scalar(_as_number(value))
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            want = "a range [low, high]" + (" or a single number" if scalar else "")
            raise PydanticCustomError("wrong_type", f"must be {want}, got {_kind(value)}")
        a, b = (_as_number(value[0]), _as_number(value[1]))
        for v in (a, b):
            _check_bounds(v, lo, hi, open_lo=open_lo)
        if a > b:
            raise PydanticCustomError(
                "backwards_range",
                f"range is backwards: [{_fmt(a)}, {_fmt(b)}] has low > high; "
                f"write [{_fmt(b)}, {_fmt(a)}]")
        return (a, b)

    item: dict[str, Any] = {"type": "number"}
    if math.isfinite(lo):
        item["exclusiveMinimum" if open_lo else "minimum"] = lo
    if math.isfinite(hi):
        item["maximum"] = hi
    options: list[dict[str, Any]] = [
        {"type": "array", "items": item, "minItems": 2, "maxItems": 2}]
    if scalar is not None:
        smax = scalar_max if scalar_max is not None else hi
        smin = 0.0 if scalar in ("sym", "around1") else lo
        options.append({"type": "number", "minimum": smin, "maximum": smax})
    shorthand = {"sym": "v → [-v, v]", "around1": "v → [1-v, 1+v]", "point": "v → [v, v]",
                 "upto": f"v → [{_fmt(lo)}, v]"}.get(scalar or "", "")
    bounds = f"{'(' if open_lo else '['}{_fmt(lo)}, {_fmt(hi)}]"
    return Annotated[Range, BeforeValidator(check), WithJsonSchema({"anyOf": options}),
                     _Meta(kind="range", bounds=bounds, shorthand=shorthand)]


def ChannelSelection() -> Any:
    """Some of the image's channels, or null for all of them: a non-empty list of 0-based
    indices (``[0, 2]``) or of the names the protocol's ``channels:`` declares
    (``[brightfield, darkfield]``), without repeats. Whether they exist is checked against
    the declared names when the protocol is read and against the data when it is built."""

    def check(value: Any) -> tuple[int | str, ...] | None:
        if value is None:
            return None
        if not isinstance(value, list | tuple) or not value:
            raise PydanticCustomError(
                "wrong_type", "must be a non-empty list of channel indices (from 0) or names, "
                f"e.g. [0, 2] or [brightfield, darkfield]; got {_kind(value)}")
        for item in value:
            if isinstance(item, bool) or not isinstance(item, int | str) or \
                    (isinstance(item, int) and item < 0) or (isinstance(item, str)
                                                             and not item.strip()):
                raise PydanticCustomError(
                    "wrong_type", "each channel is an index from 0 or a channel name, got "
                    f"{_kind(item)} in {value!r}")
        repeats = sorted({str(c) for c in value if list(value).count(c) > 1})
        if repeats:
            raise PydanticCustomError("repeats", f"channels repeat: {', '.join(repeats)}")
        return tuple(value)

    return Annotated[tuple[int | str, ...] | None, BeforeValidator(check),
                     WithJsonSchema({"anyOf": [
                         {"type": "array", "minItems": 1, "uniqueItems": True,
                          "items": {"anyOf": [{"type": "integer", "minimum": 0},
                                              {"type": "string", "minLength": 1}]}},
                         {"type": "null"}]}),
                     _Meta(kind="channels or null", bounds="indices from 0 or declared names")]


def resolve_channels(selection: tuple[int | str, ...] | None, n_channels: int,
                     names: list[str] | tuple[str, ...] | None) -> list[int]:
    """The 0-based indices a :func:`ChannelSelection` stands for in data of ``n_channels``
    channels called ``names`` (``None``: unnamed); every channel for ``None``.

    Raises ``ValueError`` saying what is wrong and what would be valid.

    Examples
    --------
    >>> from bioaug.augment.ops.params import resolve_channels
    >>> resolve_channels(("Darkfield", 0), 3, ["brightfield", "DNA", "darkfield"])
    [2, 0]
    >>> resolve_channels(None, 3, None)
    [0, 1, 2]
    >>> resolve_channels((3,), 3, None)
    Traceback (most recent call last):
    ...
    ValueError: channel index 3 is out of range: the data has 3 channels (0 to 2)
    """
    if selection is None:
        return list(range(n_channels))
    out = []
    for item in selection:
        if isinstance(item, int):
            if item >= n_channels:
                raise ValueError(f"channel index {item} is out of range: the data has "
                                 f"{n_channels} channel{'s' if n_channels != 1 else ''} "
                                 f"(0 to {n_channels - 1})")
            out.append(item)
            continue
        if names is None:
            raise ValueError(f"channel '{item}' is a name, but the protocol declares no "
                             "channel names; add `channels: [...]` at the top of the "
                             "protocol or give indices from 0")
        folded = [n.casefold() for n in names]  # case does not count, as for `channels:`
        if item.casefold() not in folded:
            raise ValueError(f"unknown channel '{item}'{did_you_mean(item, list(names))}; "
                             f"the channels are: {', '.join(names)}")
        out.append(folded.index(item.casefold()))
    if len(set(out)) != len(out):
        raise ValueError(f"channels {list(selection)!r} name the same channel twice")
    return out


def Probability() -> Any:
    return Number(0.0, 1.0)


class _Meta:
    """Human-readable facts about a parameter type, for ``list-ops``."""

    def __init__(self, kind: str, bounds: str, shorthand: str = "") -> None:
        self.kind = kind
        self.bounds = bounds
        self.shorthand = shorthand


def Allowed(text: str) -> _Meta:
    """What a hand-validated parameter accepts, for the reference: ``Annotated[T, Allowed(…)]``."""
    return _Meta(kind="", bounds=text)


def param_meta(model: type[BaseModel], name: str) -> _Meta | None:
    for m in model.model_fields[name].metadata:
        if isinstance(m, _Meta):
            return m
    return None


class OpParams(BaseModel):
    """Base of every op's parameter model: strict, no unknown keys, a probability ``p``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    p: Probability() = Field(1.0, description="Probability that a sample is transformed.")


def plain(value: Any) -> Any:
    """Parameters as plain YAML/JSON values (tuples → lists)."""
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value

