"""Errors that are the user's to fix.

Every mistake a user can make (a bad protocol, a missing file, a store that is not a
store, a wrong option) raises a :class:`BioaugError`. The command line prints its message
and exits with status 2, never a traceback. Messages say *what* is wrong, *where* (file,
line, key path) and *what would be valid*.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError


class BioaugError(Exception):
    """A user-facing error: the message alone must be enough to fix the problem."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        where: str | Path | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.where = str(where) if where is not None else None
        self.hint = hint
        super().__init__(self.format())

    def format(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class ProtocolError(BioaugError):
    """A protocol file is invalid (syntax, schema, ranges, channel support)."""


class DataError(BioaugError):
    """Input data is missing, malformed or inconsistent."""


class ConfigError(BioaugError):
    """A run, sweep or command-line configuration is invalid."""


class CheckpointError(BioaugError):
    """A checkpoint is missing, corrupt or does not fit what it is used with."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ``" (did you mean 'x'?)"`` suffix, or an empty string when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown_choice(kind: str, word: str, choices: Iterable[str]) -> str:
    """The standard message for a name that is not in a registry."""
    names = sorted(choices)
    return f"unknown {kind} '{word}'{did_you_mean(word, names)}; known: {', '.join(names)}"


# -- pydantic validation errors -----------------------------------------------------------
#: pydantic's bound types → (wording, key of the bound in the error's ``ctx``).
_BOUNDS = {"greater_than_equal": ("at least", "ge"), "greater_than": ("more than", "gt"),
           "less_than_equal": ("at most", "le"), "less_than": ("less than", "lt"),
           "too_short": ("at least", "min_length"), "too_long": ("at most", "max_length")}


def format_path(path: Sequence[Any]) -> str:
    """``("views", 0, "steps", 3, "flip")`` → ``views[0].steps[3].flip``."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``annotation`` (``Model``, ``list[Model]``, ``Model | None``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _submodel(arg)
        if found is not None:
            return found
    return None


def _keys_at(model: type[BaseModel] | None, path: Sequence[Any]) -> list[str]:
    """The keys the (nested) model at ``path`` accepts; empty when that is not a model."""
    for part in path:
        if model is None:
            return []
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        model = _submodel(field.annotation) if field is not None else None
    return list(model.model_fields) if model is not None else []


def _shown(value: Any) -> str:
    """`` (got …)`` for a plain value; nothing for mappings and lists (too long to help)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return f" (got {value!r})"
    return ""


def describe_error(err: Mapping[str, Any], model: type[BaseModel] | None = None) -> str:
    """One pydantic error (an item of ``ValidationError.errors()``) in the project's words.

    An unknown key names the keys the model accepts there, with a "did you mean"; a bound
    says which; a missing key is "required"; validators' own messages are kept as written.
    """
    loc = tuple(err.get("loc", ()))
    etype = str(err.get("type", ""))
    ctx = err.get("ctx") or {}
    if etype == "extra_forbidden":
        key, known = str(loc[-1]), _keys_at(model, loc[:-1])
        listed = f"; known: {', '.join(known)}" if known else ""
        return f"unknown key{did_you_mean(key, known)}{listed}"
    if etype == "missing":
        return "required"
    if etype in _BOUNDS and _BOUNDS[etype][1] in ctx:
        word, bound = _BOUNDS[etype]
        unit = " items" if etype in ("too_short", "too_long") else ""
        return f"must be {word} {ctx[bound]}{unit}{_shown(err.get('input'))}"
    if etype == "literal_error" and "expected" in ctx:
        return f"must be one of {ctx['expected']}{_shown(err.get('input'))}"
    msg = str(err.get("msg", "")).removeprefix("Value error, ")
    return msg if etype == "value_error" else msg + _shown(err.get("input"))


def validation_problems(exc: ValidationError, model: type[BaseModel] | None = None, *,
                        prefix: Sequence[Any] = (), flags: bool = False) -> list[str]:
    """Every error of ``exc`` as one ``key.path: what is wrong`` line.

    ``prefix`` is prepended to each key path; with ``flags`` a top-level key also names its
    command-line flag (``resize (--resize)``).
    """
    lines = []
    for err in exc.errors():
        path = format_path((*prefix, *err.get("loc", ())))
        loc = tuple(err.get("loc", ()))
        if flags and len(loc) == 1 and isinstance(loc[0], str) and \
                err.get("type") != "extra_forbidden":
            path += f" (--{loc[0].replace('_', '-')})"
        message = describe_error(err, model)
        # a validator may name the path itself, deeper (``steps[2].x: …``)
        named = not path or message.startswith((f"{path}[", f"{path}.", f"{path}:"))
        lines.append(message if named else f"{path}: {message}")
    return lines


def validation_error(exc: ValidationError, model: type[BaseModel] | None = None, *,
                     what: str = "", where: str | Path | None = None,
                     error: type[BioaugError] = ConfigError, hint: str | None = None,
                     prefix: Sequence[Any] = (), flags: bool = False) -> BioaugError:
    """All the errors of ``exc`` as one :class:`BioaugError` (``error``), key paths first.

    One problem reads ``what: key.path: message``; several read ``what: N problems:`` then
    one indented line each.
    """
    lines = validation_problems(exc, model, prefix=prefix, flags=flags)
    head = f"{what}: " if what else ""
    body = lines[0] if len(lines) == 1 else f"{len(lines)} problems:\n  " + "\n  ".join(lines)
    return error(head + body, where=where, hint=hint)
