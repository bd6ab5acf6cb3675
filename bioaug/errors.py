"""Errors that are the user's to fix.

Every mistake a user can make (a bad protocol, a missing file, a store that is not a
store, a wrong option) raises a :class:`BioaugError`. The command line prints its message
and exits with status 2, never a traceback. Messages say *what* is wrong, *where* (file,
line, key path) and *what would be valid*.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path


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
