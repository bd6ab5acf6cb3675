"""The ``bioaug`` command line: a thin layer that parses arguments and calls the API.

Each command group lives in its own module exposing ``register(subparsers)``; the
module registers its sub-parsers and sets ``func`` (called with the parsed namespace,
returning an exit code). User mistakes raise :class:`bioaug.errors.BioaugError`, printed
here as one clear message with exit status 2 — never a traceback.
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
    "evaluate": "evaluate",
    "sweep": "study",
    "invariance": "study",
    "demo": "study",
}


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
    try:
        return int(args.func(args) or 0)
    except BioaugError as exc:
        print(f"bioaug: error: {exc.format()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("bioaug: interrupted; finished work is saved and the command can be resumed",
              file=sys.stderr)
        return 130
