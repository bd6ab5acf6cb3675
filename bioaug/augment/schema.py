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

Validation collects every problem of a file, each with its line, key path and what is
allowed, e.g. ``x.yaml:12: views[0].steps[3].stain_jitter.brightness: must be in [0, 1],
got 1.5``; they are raised together as one :class:`~bioaug.errors.ProtocolError`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError

from bioaug.augment.ops import OPS
from bioaug.augment.ops.params import OpParams, plain
from bioaug.augment.yamlsource import LineMap, format_path, load_yaml
from bioaug.errors import ProtocolError, did_you_mean, unknown_choice

VERSION = 1
TOP_KEYS = ("bioaug_protocol", "name", "description", "channels", "views")
VIEW_KEYS = ("crop_size", "steps", "same_as")
MAX_CROP = 4096


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
    """A view: crop size and ordered steps. A ``same_as`` view carries the steps and crop
    size of the view it copies, plus ``same_as`` (the index it copies)."""

    model_config = ConfigDict(frozen=True)

    crop_size: int
    steps: list[Step]
    same_as: int | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.same_as is not None:
            return {"same_as": self.same_as}
        return {"crop_size": self.crop_size, "steps": [s.to_dict() for s in self.steps]}


class Protocol(BaseModel):
    """A validated augmentation protocol.

    ``views`` holds one :class:`View` per view with ``same_as`` views resolved (their
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
        return len(self.views)

    @property
    def crop_sizes(self) -> list[int]:
        return [v.crop_size for v in self.views]

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


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {bool: "true/false", int: "a number", float: "a number", str: "text",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


def _params_problems(op: str, raw: dict[str, Any], path: tuple[Any, ...],
                     problems: _Problems) -> OpParams | None:
    cls = OPS[op].Params
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err.get("loc", ()))
            # union/annotated validators may append type names; keep the first key only
            key = loc[0] if loc else None
            sub = (*path, key) if key is not None else path
            etype = err.get("type")
            msg = str(err.get("msg", ""))
            if etype == "extra_forbidden":
                names = list(cls.model_fields)
                msg = (f"unknown parameter '{key}'{did_you_mean(str(key), names)} for "
                       f"{op}; it takes: {', '.join(names)}")
            elif etype == "missing":
                msg = f"missing required parameter '{key}'"
            elif msg.startswith("Value error, "):
                msg = msg[len("Value error, "):]
            problems.add(sub, msg)
        return None


def _parse_step(raw: Any, path: tuple[Any, ...], problems: _Problems) -> Step | None:
    if isinstance(raw, str):
        raw = {raw: None}
    if not isinstance(raw, dict) or len(raw) != 1:
        if isinstance(raw, dict) and len(raw) > 1:
            names = ", ".join(str(k) for k in raw)
            problems.add(path, f"a step has exactly one op, got {len(raw)} keys ({names}); "
                               "put parameters inside the op, e.g. `- flip: {p: 0.5}`")
        else:
            problems.add(path, f"a step must be `- op_name: {{params}}`, got {_kind(raw)}")
        return None
    (op, params), = raw.items()
    if not isinstance(op, str) or op not in OPS:
        problems.add((*path, op), unknown_choice("op", str(op), OPS))
        return None
    if params is None:
        params = {}
    if not isinstance(params, dict):
        problems.add((*path, op), f"parameters of {op} must be a mapping like "
                                  f"`{{p: 0.5}}`, got {_kind(params)} {params!r}")
        return None
    parsed = _params_problems(op, params, (*path, op), problems)
    return Step(op=op, params=parsed) if parsed is not None else None


def parse_step(raw: Any, path: str = "step", source: str = "<string>") -> Step:
    """Validate one step ``{op: {params}}``; raise :class:`ProtocolError` if it is bad."""
    problems = _Problems(source, LineMap())
    # the path prefix is a label; problems carry only the op/param part after it
    step = _parse_step(raw, (), problems)
    if problems.items:
        items = [(line, p, m) for line, p, m in problems.items]
        raise make_error(source, items)
    assert step is not None
    return step


def _check_int(value: Any, lo: int, hi: int) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"must be an integer in [{lo}, {hi}], got {_kind(value)} {value!r}"
    if not lo <= value <= hi:
        return f"must be in [{lo}, {hi}], got {value}"
    return None


def _check_version(data: dict[str, Any], problems: _Problems) -> bool:
    """False when the rest of the file must not be read (a future format)."""
    if "bioaug_protocol" not in data:
        problems.add((), f"missing the format version: put `bioaug_protocol: {VERSION}` at the "
                         "top of the file")
        return True
    v = data["bioaug_protocol"]
    if isinstance(v, bool) or not isinstance(v, int):
        problems.add(("bioaug_protocol",), f"must be the integer {VERSION}, got {v!r}")
        return True
    if v > VERSION:
        problems.add(("bioaug_protocol",), f"format version {v} is newer than this bioaug "
                                           f"reads (≤ {VERSION}); upgrade bioaug")
        return False
    if v < 1:
        problems.add(("bioaug_protocol",), f"must be {VERSION}, got {v}")
    return True


def _check_channels(data: dict[str, Any], problems: _Problems) -> list[str] | None:
    channels = data.get("channels")
    if channels is None:
        return None
    if not isinstance(channels, list) or not channels or not all(
            isinstance(c, str) and c.strip() for c in channels):
        problems.add(("channels",), "must be a non-empty list of channel names, e.g. "
                                    f"[DAPI, Tubulin, Actin]; got {channels!r}")
        return None
    dupes = sorted({c for c in channels if channels.count(c) > 1})
    if dupes:
        problems.add(("channels",), f"channel names repeat: {', '.join(dupes)}")
    return list(channels)


def _parse_view(raw: Any, i: int, n_views: int, all_raw: list[Any],
                problems: _Problems, n_channels: int | None) -> View | int | None:
    path: tuple[Any, ...] = ("views", i)
    if not isinstance(raw, dict):
        problems.add(path, "a view must be a mapping with crop_size and steps (or same_as: N), "
                           f"got {_kind(raw)}")
        return None
    for key in raw:
        if key not in VIEW_KEYS:
            problems.add((*path, key), f"unknown view key '{key}'"
                                       f"{did_you_mean(str(key), VIEW_KEYS)}; a view has "
                                       "crop_size and steps, or only same_as")
    if "same_as" in raw:
        target = raw["same_as"]
        others = [k for k in raw if k in ("crop_size", "steps")]
        if others:
            problems.add((*path, others[0]), "a same_as view copies another view entirely and "
                                             f"takes no {others[0]}; drop same_as or this key")
        if isinstance(target, bool) or not isinstance(target, int):
            problems.add((*path, "same_as"), f"must be the index of another view, got {target!r}")
            return None
        if not 0 <= target < n_views:
            problems.add((*path, "same_as"), f"points nowhere: views[{target}] does not exist "
                                             f"(there {'is' if n_views == 1 else 'are'} "
                                             f"{n_views} view{'s' if n_views != 1 else ''}, "
                                             f"views[0]..views[{n_views - 1}])")
            return None
        if target == i:
            problems.add((*path, "same_as"), "points at itself; a same_as view must copy "
                                             "another view")
            return None
        other = all_raw[target]
        if isinstance(other, dict) and "same_as" in other:
            final = other["same_as"]
            good = (isinstance(final, int) and not isinstance(final, bool)
                    and 0 <= final < n_views and isinstance(all_raw[final], dict)
                    and "same_as" not in all_raw[final])
            advice = (f"point at views[{final}] directly" if good
                      else "point at a view that has its own steps")
            problems.add((*path, "same_as"), f"points at views[{target}], which is itself a "
                                             f"same_as view; {advice}")
            return None
        return int(target)
    ok = True
    if "crop_size" not in raw:
        problems.add(path, "missing crop_size (the side, in pixels, of the square view)")
        ok = False
    else:
        bad = _check_int(raw["crop_size"], 1, MAX_CROP)
        if bad:
            problems.add((*path, "crop_size"), bad)
            ok = False
    steps_raw = raw.get("steps", [])
    if steps_raw is None:
        steps_raw = []
    if not isinstance(steps_raw, list):
        problems.add((*path, "steps"), f"must be a list of steps (`- op: {{...}}`), got "
                                       f"{_kind(steps_raw)}")
        return None
    steps = []
    for j, s in enumerate(steps_raw):
        step = _parse_step(s, (*path, "steps", j), problems)
        if step is None:
            ok = False
            continue
        support = OPS[step.op].channels
        if n_channels is not None and not support.allows(n_channels):
            problems.add((*path, "steps", j, step.op),
                         f"{step.op} supports {support.describe()}, but the protocol "
                         f"declares {n_channels} channel{'s' if n_channels != 1 else ''}")
            ok = False
        steps.append(step)
    if not ok:
        return None
    return View(crop_size=int(raw["crop_size"]), steps=steps)


def protocol_from_dict(data: Any, source: str = "<dict>", *, text: str = "",
                       lines: LineMap | None = None) -> Protocol:
    """Validate a protocol given as plain data (as loaded from YAML)."""
    lines = lines or LineMap()
    problems = _Problems(source, lines)
    for path, _line in lines.duplicates:
        problems.add(path, f"key '{path[-1]}' appears twice; the first would be silently "
                           "ignored")
    if data is None:
        raise make_error(source, [(None, "", "the protocol is empty; start from "
                                             "`bioaug protocol show none`")])
    if not isinstance(data, dict):
        raise make_error(source, [(None, "", "not a protocol: expected a YAML mapping with "
                                             "bioaug_protocol, name and views; got "
                                             f"{_kind(data)}")])
    if not _check_version(data, problems):
        problems.raise_if_any()
    for key in data:
        if key not in TOP_KEYS:
            problems.add((key,), f"unknown key '{key}'{did_you_mean(str(key), TOP_KEYS)}; "
                                 f"a protocol has: {', '.join(TOP_KEYS)}")
    name = data.get("name", Path(source).stem if source[:1] != "<" else "protocol")
    if not isinstance(name, str) or not name.strip():
        problems.add(("name",), f"must be a non-empty text, got {name!r}")
    description = data.get("description", "")
    if description is None:
        description = ""
    if not isinstance(description, str):
        problems.add(("description",), f"must be text, got {_kind(description)}")
    channels = _check_channels(data, problems)
    views_raw = data.get("views")
    views: list[View | int | None] = []
    if views_raw is None:
        problems.add(("views",) if "views" in data else (),
                     "missing views: list one or more views, each with crop_size and steps")
    elif not isinstance(views_raw, list) or not views_raw:
        problems.add(("views",), f"must be a non-empty list of views, got {_kind(views_raw)}")
    else:
        n_ch = len(channels) if channels else None
        views = [_parse_view(v, i, len(views_raw), views_raw, problems, n_ch)
                 for i, v in enumerate(views_raw)]
    problems.raise_if_any()
    resolved: list[View] = []
    for v in views:
        if isinstance(v, int):
            target = views[v]
            assert isinstance(target, View)
            resolved.append(View(crop_size=target.crop_size, steps=list(target.steps), same_as=v))
        else:
            assert v is not None
            resolved.append(v)
    protocol = Protocol(bioaug_protocol=VERSION, name=str(name), description=description,
                        channels=channels, views=resolved, text=text, source=source)
    protocol._lines = lines
    return protocol


def parse_protocol(text: str, source: str = "<string>") -> Protocol:
    """Validate protocol YAML ``text``; ``source`` names it in error messages."""
    data, lines = load_yaml(text, source)
    if data is None:
        raise make_error(source, [(None, "", "the protocol is empty; start from "
                                             "`bioaug protocol show none`")])
    return protocol_from_dict(copy.deepcopy(data), source, text=text, lines=lines)
