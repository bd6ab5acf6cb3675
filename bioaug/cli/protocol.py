"""``bioaug protocol``: validate, show, document and preview augmentation protocols."""

from __future__ import annotations

import argparse
import re
import sys

from bioaug.errors import BioaugError, ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "protocol", help="validate, show, document and preview augmentation protocols",
        description="Augmentation protocols: YAML files listing the views and their steps. "
                    "Wherever a FILE is expected, the name of a shipped protocol works too "
                    "(see `bioaug protocol list`).")
    sub = parser.add_subparsers(dest="protocol_command", metavar="SUBCOMMAND")
    sub.required = True

    p = sub.add_parser("validate", help="check protocol files; exit 0 only if all are valid")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("show", help="print a protocol normalised, with every default filled in")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("schema", help="print the JSON Schema of protocols (for editors)")
    p.add_argument("--out", metavar="FILE", help="write it to FILE instead of stdout")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("list-ops", help="the ops, their parameters, ranges and channel support")
    p.add_argument("--markdown", action="store_true", help="Markdown tables (for docs)")
    p.set_defaults(func=cmd_list_ops)

    p = sub.add_parser("list", help="the shipped protocols and what they are for")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("preview", help="draw a grid of augmented views (PNG)")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--out", required=True, metavar="PNG", help="where to write the picture")
    p.add_argument("--input", metavar="IMAGE_OR_STORE", default=None,
                   help="an image (.tif, .tiff, .png, .npy) or a store directory; default: a "
                        "bundled synthetic 3-channel cell image")
    p.add_argument("--n", type=int, default=8, help="rows (samples) to draw (default 8)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--mode", choices=("auto", "channels", "rgb"), default="auto",
                   help="one panel per channel, or RGB colour (default: RGB for RGB data)")
    p.set_defaults(func=cmd_preview)


def cmd_validate(args: argparse.Namespace) -> int:
    from bioaug.augment import load_protocol

    failed = 0
    for f in args.files:
        try:
            protocol = load_protocol(f)
        except BioaugError as exc:
            failed += 1
            print(f"bioaug: error: {exc.format()}", file=sys.stderr)
            continue
        views = ", ".join(f"{v.crop_size}px × {len(v.steps)} steps" for v in protocol.views)
        print(f"OK  {f}  ({protocol.name}: {protocol.n_views} views: {views})")
    if failed:
        print(f"{failed} of {len(args.files)} protocol(s) invalid", file=sys.stderr)
        return 2
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from bioaug.augment import load_protocol

    sys.stdout.write(load_protocol(args.file).to_yaml())
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from bioaug.augment.reference import schema_json

    if args.out:
        from bioaug.io import check_output

        check_output(args.out, "schema", replace=True)
    text = schema_json()
    if args.out:
        from bioaug.io import atomic_write_text

        atomic_write_text(args.out, text)
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_list_ops(args: argparse.Namespace) -> int:
    from bioaug.augment.reference import ops_markdown, ops_text

    sys.stdout.write(ops_markdown() if args.markdown else ops_text())
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from bioaug.augment import load_protocol, shipped_protocols

    for name in shipped_protocols():
        protocol = load_protocol(name)
        first = re.split(r"(?<!al)\.\s", protocol.description)[0].rstrip(".")
        if len(first) > 100:
            first = first[:99].rsplit(" ", 1)[0] + " …"
        print(f"{name:<18} {first}")
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bioaug.augment import load_protocol
    from bioaug.augment.preview import load_preview_input, render_preview
    from bioaug.errors import DataError
    from bioaug.io import check_output
    from bioaug.seeds import check_seed

    # every argument is checked before the images are read and augmented
    if args.n < 1 or args.n > 64:
        raise ConfigError(f"--n must be between 1 and 64, got {args.n}")
    check_seed(args.seed, "--seed")
    if not str(args.out).lower().endswith(".png"):
        raise ConfigError(f"--out must be a .png file, got {args.out}")
    if args.input is not None:
        if not Path(args.input).exists():
            raise DataError(f"no such file: {args.input}", hint="--input takes an image file "
                                                                "(.tif, .tiff, .png, .npy) or a store")
        if Path(args.out).resolve() == Path(args.input).resolve():
            raise ConfigError(f"--out {args.out} is the --input image; a command never writes "
                              "over its own input", hint="choose another --out")
    check_output(args.out, "png", inputs=[args.input, args.file], replace=True)
    protocol = load_protocol(args.file)
    data = load_preview_input(args.input, n=args.n, seed=args.seed)
    out, notes = render_preview(protocol, data, args.out, n=args.n, seed=args.seed,
                                mode=args.mode)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {out}")
    return 0
