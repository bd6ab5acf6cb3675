"""The ``bioaug`` command line: a thin layer that parses arguments and calls the API.

Each command group lives in its own module exposing ``register(subparsers)``; the
module registers its sub-parsers and sets ``func`` (called with the parsed namespace,
returning an exit code). User mistakes raise :class:`bioaug.errors.BioaugError`, printed
here as one clear message with exit status 2 — never a traceback. Operating-system errors
(a read-only or full disk, a file without read permission) are printed the same way, as
what failed and where, with exit status 1; the writes themselves are atomic, so nothing
half-written is left looking complete.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from bioaug import __version__
from bioaug.errors import BioaugError

#: command group → module (in ``bioaug.cli``) that registers it, in help order.
COMMAND_MODULES: dict[str, str] = {
    "data": "data",
    "protocol": "protocol",
    "train": "train",
    "embed": "embed",
    "profile": "profile",
    "evaluate": "evaluate",
    "export": "profile",
    "sweep": "study",
    "invariance": "study",
    "demo": "study",
}


#: exit status of a command stopped by an operating-system error (disk full, permissions).
OS_ERROR_EXIT = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bioaug",
        description="Augmentation protocols, self-supervised training and phenotype "
        "evaluation for microscopy.",
    )
    parser.add_argument("--version", action="version", version=f"bioaug {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    seen: set[str] = set()
    for module_name in COMMAND_MODULES.values():
        if module_name in seen:
            continue
        seen.add(module_name)
        try:
            module = importlib.import_module(f"bioaug.cli.{module_name}")
        except ModuleNotFoundError as exc:  # a command group not installed in this build
            if exc.name != f"bioaug.cli.{module_name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    # OpenMP threads that spin while idle steal the cores the augmentation ops need.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _quiet_unraisable
    try:
        return int(args.func(args) or 0)
    except BioaugError as exc:
        print(f"bioaug: error: {exc.format()}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        from bioaug.io import describe_os_error

        out = getattr(args, "out", None)
        error = describe_os_error(exc)
        if error.where is None and out is not None:  # e.g. a write() that names no file
            error = describe_os_error(exc, context=f"while writing --out {out}")
        print(f"bioaug: error: {error.format()}", file=sys.stderr)
        return OS_ERROR_EXIT
    except KeyboardInterrupt:
        print("bioaug: interrupted; finished work is saved and the command can be resumed",
              file=sys.stderr)
        return 130
    finally:
        sys.unraisablehook = previous_hook


def _quiet_unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    """Drop the echoes of an error already reported: h5py objects freed after a failed
    write (a full disk) complain again while they are garbage-collected."""
    if "h5py" in repr(unraisable.object) or "h5py" in str(unraisable.err_msg or ""):
        return
    sys.__unraisablehook__(unraisable)
