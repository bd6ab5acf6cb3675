"""``bioaug train``: self-supervised training of a backbone on a crop store.

Every option comes from :class:`bioaug.train.config.TrainConfig` (names, types, defaults,
help) and the method names from the registry :data:`bioaug.methods.METHODS`.
``--config run.yaml`` reads a run file; options given on the command line override it.
Optimiser options left unset take the method's recipe; ``--print-config`` shows the
resolved configuration with the source of every value and exits. Under
``torchrun --nproc-per-node N`` the same command trains on N processes.
"""

from __future__ import annotations

import argparse
import os
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from bioaug.errors import ConfigError

#: options whose values are mappings: given as KEY=VALUE pairs (values parsed as YAML)
_MAPPINGS = ("method_kwargs", "backbone_kwargs")
#: options whose value may be several words (``--batches per_treatment 4``) → metavar
_WORDS = {"batches": "WORD", "treatment_columns": "COLUMN"}
_SHORT = {"data": "STORE", "protocol": "FILE_OR_NAME", "out": "RUN_DIR", "method": "NAME",
          "backbone": "NAME", "device": "DEVICE"}


def _base_type(annotation: Any) -> Any:
    """``int | None`` → int; ``Literal[...]`` → (str, choices)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base_type(args[0])
    if origin is typing.Literal:
        return ("choices", list(typing.get_args(annotation)))
    return annotation


def _parse_mapping(option: str):
    def parse(text: str) -> dict[str, Any]:
        text = text.strip()
        if text.startswith("{"):
            value = yaml.safe_load(text)
            if not isinstance(value, dict):
                raise argparse.ArgumentTypeError(f"{option} expects a mapping")
            return value
        if "=" not in text:
            raise argparse.ArgumentTypeError(f"{option} expects KEY=VALUE (got {text!r})")
        key, _, raw = text.partition("=")
        return {key.strip(): yaml.safe_load(raw) if raw.strip() else None}
    return parse


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per TrainConfig field; defaults suppressed so a run file is not overridden."""
    from bioaug.methods import METHODS, method_names
    from bioaug.train.config import RECIPE_FIELDS, TrainConfig

    for name, field in TrainConfig.model_fields.items():
        flag = "--" + name.replace("_", "-")
        default = field.get_default(call_default_factory=True)
        required = field.is_required()
        desc = field.description or ""
        if name == "method":
            desc = "self-supervised method: " + ", ".join(
                f"{n} ({METHODS[n].title or n})" for n in method_names())
        if required:
            help_text = f"{desc} (required unless in --config)"
        elif name in RECIPE_FIELDS:
            help_text = desc
        else:
            help_text = f"{desc} (default: {default})"
        kw: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": help_text}
        if name in _MAPPINGS:
            parser.add_argument(flag, nargs="+", action="extend", type=_parse_mapping(flag),
                                metavar="KEY=VALUE", **kw)  # repeated flags add up
            continue
        if name in _WORDS:
            parser.add_argument(flag, nargs="+", metavar=_WORDS[name], **kw)
            continue
        base = _base_type(field.annotation)
        if base is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
            continue
        if isinstance(base, tuple):
            parser.add_argument(flag, choices=base[1], **kw)
            continue
        conv = {int: int, float: float, Path: str, str: str}.get(base, str)
        parser.add_argument(flag, type=conv, metavar=_SHORT.get(name, name.upper()), **kw)


def register(subparsers: argparse._SubParsersAction) -> None:
    from bioaug.methods import METHODS, method_names

    titles = ", ".join(METHODS[n].title or n for n in method_names())
    p = subparsers.add_parser(
        "train", help=f"self-supervised training ({titles})",
        description="Train a backbone with a self-supervised method on a crop store, using an "
        "augmentation protocol. Writes RUN_DIR/{config.yaml, protocol.yaml, checkpoint.pt, "
        "metrics.csv, tb/}. Run under `torchrun --nproc-per-node N` for several GPUs/processes. "
        "Optimiser options left unset follow the method's recipe (see --print-config); the "
        "learning rate is per 256 images, scaled to the batch by --lr-scaling.")
    p.add_argument("--config", type=str, default=None, metavar="RUN_YAML",
                   help="YAML run config (any option below); command-line options override it")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint (fresh start if none)")
    p.add_argument("--force", action="store_true",
                   help="with --resume: continue even if the options differ from the saved run")
    p.add_argument("--print-config", "--dry-run", dest="print_config", action="store_true",
                   help="make every check the run makes before its first step (output "
                   "folder, store, protocol, crops, model, the run to resume), print the "
                   "resolved run configuration (each value with where it came from: recipe, "
                   "run file, command line, default) and the warnings, then exit without "
                   "training or writing anything")
    add_config_options(p)
    p.set_defaults(func=run)


def options_to_overrides(args: argparse.Namespace) -> dict[str, Any]:
    from bioaug.train.config import TrainConfig

    out: dict[str, Any] = {}
    for name in TrainConfig.model_fields:
        if not hasattr(args, name):
            continue
        value = getattr(args, name)
        if name in _MAPPINGS:
            merged: dict[str, Any] = {}
            for part in value:
                merged.update(part)
            value = merged
        elif name in _WORDS:
            value = " ".join(value)
        out[name] = value
    return out


def run(args: argparse.Namespace) -> int:
    from bioaug.train.config import load_config
    from bioaug.train.loop import resolve_run, train

    if args.force and not args.resume:
        raise ConfigError("--force only applies with --resume")
    config = load_config(args.config, **options_to_overrides(args))
    if args.print_config:  # every check of the run, then the resolved configuration
        print(resolve_run(config, resume=args.resume, force=args.force).describe(), end="")
        return 0
    out = train(config, resume=args.resume, force=args.force)
    if int(os.environ.get("RANK", "0")) == 0:
        print(out)
    return 0
