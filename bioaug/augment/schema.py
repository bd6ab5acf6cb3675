"""Protocol format v1: the pydantic models and the validator that explains every mistake.

A protocol file::

    bioaug_protocol: 1
    name: bbbc021-expert
    description: What the protocol is for and where it comes from.
    channels: [DAPI, Tubulin, Actin]     # optional; checked against the data
    views:
      - crop_size: 64
        steps:
          - random_resized_crop: {scale: [0.5, 1.0]}
          - stain_jitter: {brightness: 0.2, p: 0.8}
      - same_as: 0                      # a second view drawn with the same recipe

A view may stand for several views drawn with its recipe: ``count: N`` (multi-crop, Caron
et al. 2020 "SwAV" and 2021 "DINO": e.g. two global views of 48 px, ``count: 2``, and six
local views of 24 px, ``count: 6``). ``Protocol.views`` lists the views as written;
``Protocol.n_views`` and ``Protocol.crop_sizes`` count every view made, in order.

Validation is done by pydantic models of the file's structure and collects every problem
of a file, each with its line, key path and what is allowed, e.g. ``x.yaml:12: views[0].steps[3].stain_jitter.brightness: must be in [0, 1],
got 1.5``; they are raised together as one :class:`~bioaug.errors.ProtocolError`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainValidator,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from bioaug.augment.ops import OPS, Op
from bioaug.augment.ops.params import OpParams, plain
from bioaug.augment.yamlsource import LineMap, load_yaml
from bioaug.errors import ProtocolError, did_you_mean, format_path, unknown_choice

VERSION = 1
TOP_KEYS = ("bioaug_protocol", "name", "description", "channels", "views")
VIEW_KEYS = ("crop_size", "steps", "same_as", "count")
MAX_CROP = 4096
MAX_COUNT = 64


class Step(BaseModel):
    """One step of a view: an op name and its validated parameters."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    op: str
    params: OpParams

    def to_dict(self) -> dict[str, Any]:
        values = plain(self.params.model_dump())
        p = values.pop("p", 1.0)
        return {self.op: {**values, "p": p}}


class View(BaseModel):
    """A view: crop size and ordered steps; ``count`` views are drawn with it. A ``same_as``
    view carries the steps and crop size of the view it copies, plus ``same_as`` (the index
    it copies)."""

    model_config = ConfigDict(frozen=True)

    crop_size: int
    steps: list[Step]
    same_as: int | None = None
    count: int = 1

    def to_dict(self) -> dict[str, Any]:
        many = {"count": self.count} if self.count != 1 else {}
        if self.same_as is not None:
            return {"same_as": self.same_as, **many}
        return {"crop_size": self.crop_size, **many,
                "steps": [s.to_dict() for s in self.steps]}


class Protocol(BaseModel):
    """A validated augmentation protocol.

    ``views`` holds one :class:`View` per view as written (``count`` says how many views
    it makes) with ``same_as`` views resolved (their
    ``steps``/``crop_size`` are those of the view they copy); :meth:`to_dict` keeps them as
    ``{same_as: N}``, as written. ``text`` is the original YAML (for provenance).
    """

    model_config = ConfigDict(frozen=True)

    bioaug_protocol: int = VERSION
    name: str
    description: str = ""
    channels: list[str] | None = None
    views: list[View]
    text: str = ""
    source: str = "<string>"
    _lines: LineMap = PrivateAttr(default_factory=LineMap)

    @property
    def n_views(self) -> int:
        """Views made per image (a view with ``count: N`` makes N)."""
        return sum(v.count for v in self.views)

    @property
    def crop_sizes(self) -> list[int]:
        """The crop size of every view made, in order (``count`` repeats)."""
        return [v.crop_size for v in self.views for _ in range(v.count)]

    def location(self, path: tuple[Any, ...]) -> str:
        """``source:line`` for a key path (``source`` alone if the line is unknown)."""
        line = self._lines.line(path)
        return f"{self.source}:{line}" if line else self.source

    def to_dict(self) -> dict[str, Any]:
        """The normalised protocol (defaults filled in, ranges as ``[low, high]``)."""
        out: dict[str, Any] = {"bioaug_protocol": self.bioaug_protocol, "name": self.name,
                               "description": self.description}
        if self.channels is not None:
            out["channels"] = list(self.channels)
        out["views"] = [v.to_dict() for v in self.views]
        return out

    def to_yaml(self) -> str:
        return dump_yaml(self.to_dict())

    def with_crop_size(self, size: int) -> Protocol:
        """A copy with every view's ``crop_size`` set to ``size``."""
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_CROP:
            raise ProtocolError(f"crop_size must be an integer in [1, {MAX_CROP}], got {size!r}")
        views = [v.model_copy(update={"crop_size": size}) for v in self.views]
        new = self.model_copy(update={"views": views})
        new._lines = self._lines
        return new


# --------------------------------------------------------------------------- dumping
class _Dumper(yaml.SafeDumper):
    pass


def _repr_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(not isinstance(v, (dict, list)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _repr_float(dumper: yaml.SafeDumper, data: float) -> yaml.Node:
    if data != data or data in (float("inf"), float("-inf")):
        return yaml.SafeDumper.represent_float(dumper, data)
    text = repr(data)  # shortest text that reads back as the same float
    if "e" in text and "." not in text.split("e")[0]:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"  # YAML 1.1 floats need a dot
    return dumper.represent_scalar("tag:yaml.org,2002:float", text)


def _repr_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    if len(data) > 80 and "\n" not in data and data == data.strip() and "  " not in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=">")
    return dumper.represent_str(data)


_Dumper.add_representer(str, _repr_str)
_Dumper.add_representer(list, _repr_list)
_Dumper.add_representer(float, _repr_float)


def dump_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


# ------------------------------------------------------------------------ validation
# The raw structure of a file is validated by the pydantic models below (``_ProtocolIn``,
# ``_OwnView``, ``_CopyView`` and the step type), whose validators raise a
# :func:`_problem` for each mistake: a message a user can act on, and where it is relative
# to the value being checked. :func:`_located` turns pydantic's errors into
# ``(key path, message)`` pairs; the key path gives the line in the file.

Located = list[tuple[tuple[Any, ...], str]]

#: The message for a required key that is absent; it is reported at the enclosing mapping.
MISSING = {
    "bioaug_protocol": f"missing the format version: put `bioaug_protocol: {VERSION}` at the "
                       "top of the file",
    "views": "missing views: list one or more views, each with crop_size and steps",
    "crop_size": "missing crop_size (the side, in pixels, of the square view)",
}


def _problem(message: str, *at: Any) -> PydanticCustomError:
    """A problem found by a validator, located at key path ``at`` below the checked value."""
    return PydanticCustomError("protocol", message, {"at": at})


def _key(k: Any) -> str | int:
    return k if isinstance(k, (str, int)) and not isinstance(k, bool) else str(k)


def _located(exc: ValidationError, unknown_key: Callable[[str], str]) -> Located:
    """pydantic's errors as ``(key path, message)``; ``unknown_key`` words a key the model
    does not have."""
    out: Located = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        etype = err.get("type")
        msg = str(err.get("msg", ""))
        if etype == "extra_forbidden":
            msg = unknown_key(str(loc[-1]))
        elif etype == "missing":
            loc, msg = loc[:-1], MISSING.get(str(loc[-1]), f"missing '{loc[-1]}'")
        else:
            loc = loc + tuple((err.get("ctx") or {}).get("at", ()))
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, "):]
        out.append((loc, msg))
    return out


def _nested(title: str, items: Located) -> ValidationError:
    """Located problems as one ValidationError (raised inside a validator, pydantic prefixes
    each with the location of the value being validated)."""
    return ValidationError.from_exception_data(title, [
        InitErrorDetails(type=PydanticCustomError("protocol", msg),
                         loc=tuple(_key(k) for k in loc), input=None)
        for loc, msg in items])


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {bool: "true/false", int: "a number", float: "a number", str: "text",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


# -- steps --------------------------------------------------------------------------------
def _unknown_param(op: str) -> Callable[[str], str]:
    names = list(OPS[op].Params.model_fields)
    return lambda key: (f"unknown parameter '{key}'{did_you_mean(key, names)} for {op}; "
                        f"it takes: {', '.join(names)}")


def _validate_step(raw: Any, info: ValidationInfo) -> Step:
    """One step ``{op: {params}}`` (or a bare op name): the op exists, its parameters
    validate against the op's ``Params`` and it supports the declared channel count."""
    if isinstance(raw, str):
        raw = {raw: None}
    if not isinstance(raw, dict) or len(raw) != 1:
        if isinstance(raw, dict) and len(raw) > 1:
            names = ", ".join(str(k) for k in raw)
            raise _problem(f"a step has exactly one op, got {len(raw)} keys ({names}); put "
                           "parameters inside the op, e.g. `- flip: {p: 0.5}`")
        raise _problem(f"a step must be `- op_name: {{params}}`, got {_kind(raw)}")
    (op, params), = raw.items()
    if not isinstance(op, str) or op not in OPS:
        raise _problem(unknown_choice("op", str(op), OPS), _key(op))
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise _problem(f"parameters of {op} must be a mapping like `{{p: 0.5}}`, got "
                       f"{_kind(params)} {params!r}", op)
    cls = OPS[op]
    try:
        parsed = cls.Params.model_validate(params)
    except ValidationError as exc:
        items = [((op, *loc[:1]), msg) for loc, msg in _located(exc, _unknown_param(op))]
        raise _nested("step", items) from None
    n_channels = (info.context or {}).get("n_channels")
    if n_channels is not None and not cls.channels.allows(n_channels):
        raise _problem(f"{op} supports {cls.channels.describe()}, but the protocol declares "
                       f"{n_channels} channel{'s' if n_channels != 1 else ''}", op)
    names = (info.context or {}).get("channel_names")
    if names is not None:  # a declared channel list: the picked channels must be in it
        problem = cls.channel_problem(parsed, len(names), names)
        if problem is not None:
            raise _problem(problem[1], op, problem[0])
    return Step(op=op, params=parsed)


StepIn = Annotated[Step, PlainValidator(_validate_step)]


def _steps_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _problem(f"must be a list of steps (`- op: {{...}}`), got {_kind(value)}")
    return value


# -- views --------------------------------------------------------------------------------
def _crop_size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _problem(f"must be an integer in [1, {MAX_CROP}], got {_kind(value)} {value!r}")
    if not 1 <= value <= MAX_CROP:
        raise _problem(f"must be in [1, {MAX_CROP}], got {value}")
    return value


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _problem(f"must be the number of views to draw with this recipe, an integer in "
                       f"[1, {MAX_COUNT}]; got {_kind(value)} {value!r}")
    if not 1 <= value <= MAX_COUNT:
        raise _problem(f"must be in [1, {MAX_COUNT}] (views drawn with this recipe), got {value}")
    return value


def _unknown_view_key(key: str) -> str:
    return (f"unknown view key '{key}'{did_you_mean(key, VIEW_KEYS)}; a view has crop_size "
            "and steps, or only same_as, and optionally count")


class _OwnView(BaseModel):
    """A view with its own crop size and steps."""

    model_config = ConfigDict(extra="forbid")

    crop_size: Annotated[int, BeforeValidator(_crop_size)]
    steps: Annotated[list[StepIn], BeforeValidator(_steps_list)] = []
    count: Annotated[int, BeforeValidator(_count)] = 1


def _takes_no(key: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        raise _problem(f"a same_as view copies another view entirely and takes no {key}; "
                       "drop same_as or this key")
    return check


def _same_as(target: Any, info: ValidationInfo) -> int:
    """``same_as`` points at another view, one with steps of its own."""
    ctx = info.context or {}
    index, views = ctx["index"], ctx["views"]
    n = len(views)
    if isinstance(target, bool) or not isinstance(target, int):
        raise _problem(f"must be the index of another view, got {target!r}")
    if not 0 <= target < n:
        raise _problem(f"points nowhere: views[{target}] does not exist (there "
                       f"{'is' if n == 1 else 'are'} {n} view{'s' if n != 1 else ''}, "
                       f"views[0]..views[{n - 1}])")
    if target == index:
        raise _problem("points at itself; a same_as view must copy another view")
    other = views[target]
    if isinstance(other, dict) and "same_as" in other:
        final = other["same_as"]
        good = (isinstance(final, int) and not isinstance(final, bool) and 0 <= final < n
                and isinstance(views[final], dict) and "same_as" not in views[final])
        advice = (f"point at views[{final}] directly" if good
                  else "point at a view that has its own steps")
        raise _problem(f"points at views[{target}], which is itself a same_as view; {advice}")
    return target


class _CopyView(BaseModel):
    """A view that copies another one (``same_as: N``)."""

    model_config = ConfigDict(extra="forbid")

    same_as: Annotated[int, PlainValidator(_same_as)]
    count: Annotated[int, BeforeValidator(_count)] = 1
    crop_size: Annotated[Any, BeforeValidator(_takes_no("crop_size"))] = None
    steps: Annotated[Any, BeforeValidator(_takes_no("steps"))] = None


def _views(value: Any, info: ValidationInfo) -> list[View | tuple[int, int]]:
    """Each view validated with what it may refer to: the other views (``same_as``) and the
    declared channel count (channel support of its ops)."""
    if value is None:
        raise _problem(MISSING["views"])
    if not isinstance(value, list) or not value:
        raise _problem(f"must be a non-empty list of views, got {_kind(value)}")
    channels = info.data.get("channels")
    out: list[View | tuple[int, int]] = []
    items: Located = []
    for i, raw in enumerate(value):
        if not isinstance(raw, dict):
            items.append(((i,), "a view must be a mapping with crop_size and steps (or "
                                f"same_as: N), got {_kind(raw)}"))
            continue
        model = _CopyView if "same_as" in raw else _OwnView
        context = {"index": i, "views": value,
                   "n_channels": len(channels) if channels else None,
                   "channel_names": list(channels) if channels else None}
        try:
            view = model.model_validate({str(k): v for k, v in raw.items()},
                                         context=context)
        except ValidationError as exc:
            items += [((i, *loc), msg) for loc, msg in _located(exc, _unknown_view_key)]
            continue
        if isinstance(view, _CopyView):
            out.append((view.same_as, view.count))
        else:
            out.append(View(crop_size=view.crop_size, steps=list(view.steps), count=view.count))
    if items:
        raise _nested("views", items)
    return out


# -- the file -------------------------------------------------------------------------------
def _version(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _problem(f"must be the integer {VERSION}, got {value!r}")
    if value > VERSION:
        raise _problem(f"format version {value} is newer than this bioaug reads (≤ {VERSION}); "
                       "upgrade bioaug")
    if value < 1:
        raise _problem(f"must be {VERSION}, got {value}")
    return value


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _problem(f"must be a non-empty text, got {value!r}")
    return value


def _description(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _problem(f"must be text, got {_kind(value)}")
    return value


def _channels(value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(
            isinstance(c, str) and c.strip() for c in value):
        raise _problem("must be a non-empty list of channel names, e.g. [DAPI, Tubulin, "
                       f"Actin]; got {value!r}")
    dupes = sorted({c for c in value if value.count(c) > 1})
    if dupes:
        raise _problem(f"channel names repeat: {', '.join(dupes)}")
    return list(value)


def _unknown_top_key(key: str) -> str:
    return (f"unknown key '{key}'{did_you_mean(key, TOP_KEYS)}; a protocol has: "
            f"{', '.join(TOP_KEYS)}")


class _ProtocolIn(BaseModel):
    """A protocol file as written (``same_as`` views as the index they copy)."""

    model_config = ConfigDict(extra="forbid")

    bioaug_protocol: Annotated[int, BeforeValidator(_version)]
    name: Annotated[str | None, BeforeValidator(_name)] = None
    description: Annotated[str, BeforeValidator(_description)] = ""
    channels: Annotated[list[str] | None, BeforeValidator(_channels)] = None
    # after `channels`: views read the validated channel count
    views: Annotated[list[View | tuple[int, int]], PlainValidator(_views)]


# -------------------------------------------------------------------------- entry points
class _Problems:
    def __init__(self, source: str, lines: LineMap) -> None:
        self.source = source
        self.lines = lines
        self.items: list[tuple[int | None, str, str]] = []

    def add(self, path: tuple[Any, ...], message: str) -> None:
        self.items.append((self.lines.line(path), format_path(path), message))

    def raise_if_any(self) -> None:
        if not self.items:
            return
        raise make_error(self.source, self.items)


def make_error(source: str, items: list[tuple[int | None, str, str]]) -> ProtocolError:
    """One :class:`ProtocolError` for one or several located problems."""

    def where(line: int | None) -> str:
        return f"{source}:{line}" if line else source

    items = sorted(items, key=lambda it: (it[0] is None, it[0] or 0))
    if len(items) == 1:
        line, path, msg = items[0]
        err = ProtocolError(f"{path}: {msg}" if path else msg, where=where(line))
    else:
        body = "\n".join(f"  {where(line)}: {path + ': ' if path else ''}{msg}"
                         for line, path, msg in items)
        err = ProtocolError(f"{len(items)} problems in {source}:\n{body}")
    err.problems = items  # type: ignore[attr-defined]
    return err


_STEP = TypeAdapter(StepIn)


def parse_step(raw: Any, path: str = "step", source: str = "<string>") -> Step:
    """Validate one step ``{op: {params}}``; raise :class:`ProtocolError` if it is bad.

    ``path`` is a label only: the problems name the op and parameter part of the key path.

    Parameters
    ----------
    raw
        One step as written in a protocol: a mapping of one op name to its parameters.
    path
        A label for the step.
    source
        Names the step's origin in error messages.

    Returns
    -------
    Step
        The op name and its parameters, defaults filled in.

    Examples
    --------
    >>> from bioaug.augment import parse_step
    >>> step = parse_step({"flip": {"horizontal": True, "p": 0.5}})
    >>> step.op, step.to_dict()
    ('flip', {'flip': {'horizontal': True, 'vertical': False, 'p': 0.5}})
    >>> parse_step({"flip": {"horizontl": True}})
    Traceback (most recent call last):
    ...
    bioaug.errors.ProtocolError: <string>: flip.horizontl: unknown parameter 'horizontl' (did you mean 'horizontal'?) for flip; it takes: p, horizontal, vertical
    """
    try:
        return _STEP.validate_python(raw, context={"n_channels": None})
    except ValidationError as exc:
        problems = _Problems(source, LineMap())
        for loc, msg in _located(exc, lambda key: f"unknown key '{key}'"):
            problems.add(loc, msg)
        problems.raise_if_any()
        raise  # pragma: no cover - every error above is a problem


def make_op(name: str, crop_size: int | None = None, **params: Any) -> Op:
    """Build op ``name`` from keyword parameters, validated as in a protocol file.

    Pass ``p`` explicitly. Bad names or values raise :class:`~bioaug.errors.ProtocolError`.

    Parameters
    ----------
    name
        The op's name, as in a protocol (``flip``, ``rotate90`` …).
    crop_size
        The crop size of the view the op belongs to (used by crop ops).
    **params
        The op's parameters, ``p`` included.

    Returns
    -------
    Op
        The op; ``op(x, generator=...)`` augments a batch ``(B, C, H, W)``.

    Examples
    --------
    >>> import torch
    >>> from bioaug.augment import make_op
    >>> op = make_op("flip", horizontal=True, vertical=False, p=1.0)
    >>> op
    Flip(p=1.0, horizontal=True, vertical=False)
    >>> x = torch.arange(4.0).reshape(1, 1, 1, 4)
    >>> op(x, generator=torch.Generator().manual_seed(0))
    tensor([[[[3., 2., 1., 0.]]]])
    """
    step = parse_step({name: params}, path=f"{name}", source="make_op")
    return OPS[step.op](step.params, crop_size=crop_size)


def protocol_from_dict(data: Any, source: str = "<dict>", *, text: str = "",
                       lines: LineMap | None = None) -> Protocol:
    """Validate a protocol given as plain data (as loaded from YAML).

    Parameters
    ----------
    data
        The protocol as a mapping (``bioaug_protocol``, ``name``, ``views`` …).
    source
        Names the protocol in error messages; a file's stem is the default name.
    text
        The original text, kept for provenance.
    lines
        Key path → line number of ``text``, for messages that point at a line.

    Returns
    -------
    Protocol
        The validated protocol, ``same_as`` views resolved.

    Examples
    --------
    >>> from bioaug.augment import protocol_from_dict
    >>> protocol = protocol_from_dict({"bioaug_protocol": 1, "name": "turns", "views": [
    ...     {"crop_size": 8, "count": 2, "steps": [{"rotate90": {"p": 1.0}}]}]})
    >>> protocol.n_views, protocol.crop_sizes
    (2, [8, 8])
    >>> protocol.to_dict()["views"]
    [{'crop_size': 8, 'count': 2, 'steps': [{'rotate90': {'turns': [0, 1, 2, 3], 'p': 1.0}}]}]
    """
    lines = lines or LineMap()
    problems = _Problems(source, lines)
    for dup in lines.duplicates:
        problems.add(dup.path, f"key '{dup.path[-1]}' appears twice (lines {dup.first_line} "
                               f"and {dup.line}); the first would be silently ignored")
    if data is None:
        raise make_error(source, [(None, "", "the protocol is empty; start from "
                                             "`bioaug protocol show none`")])
    if not isinstance(data, dict):
        raise make_error(source, [(None, "", "not a protocol: expected a YAML mapping with "
                                             "bioaug_protocol, name and views; got "
                                             f"{_kind(data)}")])
    version = data.get("bioaug_protocol")
    if isinstance(version, int) and not isinstance(version, bool) and version > VERSION:
        # a future format: the rest of the file means something this version cannot know
        problems.add(("bioaug_protocol",), f"format version {version} is newer than this "
                                           f"bioaug reads (≤ {VERSION}); upgrade bioaug")
        problems.raise_if_any()
    try:
        parsed = _ProtocolIn.model_validate({str(k): v for k, v in data.items()})
    except ValidationError as exc:
        for loc, msg in _located(exc, _unknown_top_key):
            problems.add(loc, msg)
        problems.raise_if_any()
        raise  # pragma: no cover - every error above is a problem
    problems.raise_if_any()
    resolved: list[View] = []
    for i, v in enumerate(parsed.views):
        if isinstance(v, tuple):
            index, count = v
            target = parsed.views[index]
            assert isinstance(target, View)
            resolved.append(View(crop_size=target.crop_size, steps=list(target.steps),
                                 same_as=index, count=count))
        else:
            assert v.same_as is None, i
            resolved.append(v)
    name = parsed.name if parsed.name is not None else (
        Path(source).stem if source[:1] != "<" else "protocol")
    protocol = Protocol(bioaug_protocol=VERSION, name=name, description=parsed.description,
                        channels=parsed.channels, views=resolved, text=text, source=source)
    protocol._lines = lines
    return protocol


def parse_protocol(text: str, source: str = "<string>") -> Protocol:
    """Validate protocol YAML ``text``; ``source`` names it in error messages.

    Parameters
    ----------
    text
        The protocol's YAML.
    source
        Names the protocol in error messages (a file's path, for ``path:line``).

    Returns
    -------
    Protocol
        The validated protocol; ``text`` is kept as given.

    Examples
    --------
    >>> from bioaug.augment import parse_protocol
    >>> text = (
    ...     "bioaug_protocol: 1\\n"
    ...     "name: tiny\\n"
    ...     "views:\\n"
    ...     "  - crop_size: 8\\n"
    ...     "    steps:\\n"
    ...     "      - flip: {horizontal: true, p: 0.5}\\n"
    ...     "  - same_as: 0\\n")
    >>> protocol = parse_protocol(text)
    >>> protocol.name, protocol.n_views, protocol.views[1].same_as
    ('tiny', 2, 0)

    A mistake is reported with its line and key path:

    >>> parse_protocol(text.replace("horizontal", "horizontl"), source="tiny.yaml")
    Traceback (most recent call last):
    ...
    bioaug.errors.ProtocolError: tiny.yaml:6: views[0].steps[0].flip.horizontl: unknown parameter 'horizontl' (did you mean 'horizontal'?) for flip; it takes: p, horizontal, vertical
    """
    data, lines = load_yaml(text, source)
    if data is None:
        raise make_error(source, [(None, "", "the protocol is empty; start from "
                                             "`bioaug protocol show none`")])
    return protocol_from_dict(copy.deepcopy(data), source, text=text, lines=lines)
