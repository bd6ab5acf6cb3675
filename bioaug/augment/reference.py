"""Generated documentation of the protocol format: op reference and JSON Schema.

Both come from the ops' pydantic ``Params`` models, the same declarations that validate
protocol files, and from what each registered op declares (``group``, ``summary``,
``channels``), so the reference can never disagree with the validator or miss an op.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic_core import PydanticUndefined

from bioaug.augment.ops import OPS, ops_by_group
from bioaug.augment.ops.params import param_meta, plain
from bioaug.augment.schema import MAX_COUNT, MAX_CROP, VERSION

SCHEMA_ID = "https://bioaug.dev/schema/protocol-v1.json"


def _default(field: Any) -> Any:
    if field.default is PydanticUndefined:
        return "(required)"
    return plain(field.default)


def _fmt_value(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt_value(x) for x in v) + "]"
    return str(v)


def op_reference() -> list[dict[str, Any]]:
    """One record per op: name, summary, channel support, parameters."""
    out = []
    for name, cls in OPS.items():
        params = []
        for pname, field in cls.Params.model_fields.items():
            meta = param_meta(cls.Params, pname)
            allowed = meta.bounds if meta else ""
            if meta and meta.shorthand:
                allowed += f"; {meta.shorthand}"
            params.append({"name": pname, "default": _fmt_value(_default(field)),
                           "allowed": allowed, "description": field.description or ""})
        doc = (cls.__doc__ or "").strip().split("\n\n")[0]
        out.append({"name": name, "summary": cls.summary, "channels": cls.channels.describe(),
                    "group": cls.group, "per_sample_cpu": cls.per_sample,
                    "doc": " ".join(doc.split()),
                    "params": params})
    return out


def groups_markdown() -> str:
    """The ops by group, one table row per group (the overview in ``docs/protocols.md``)."""
    lines = ["| group | ops |", "|---|---|"]
    for group, names in ops_by_group().items():
        lines.append(f"| {group} | {', '.join(f'`{n}`' for n in names)} |")
    return "\n".join(lines) + "\n"


def ops_markdown() -> str:
    """The op reference as Markdown (pasted into the README as the protocol reference)."""
    lines = ["| op | group | what it does | channels |", "|---|---|---|---|"]
    for rec in op_reference():
        lines.append(f"| [`{rec['name']}`](#{rec['name']}) | {rec['group']} | "
                     f"{rec['summary']} | {rec['channels']} |")
    lines.append("")
    for rec in op_reference():
        lines += [f"### `{rec['name']}`", "", rec["doc"], "",
                  f"Channels: {rec['channels']}.", "",
                  "| parameter | default | allowed | meaning |", "|---|---|---|---|"]
        for p in rec["params"]:
            allowed = p["allowed"].replace("|", "\\|")
            lines.append(f"| `{p['name']}` | `{p['default']}` | {allowed} | {p['description']} |")
        lines.append("")
    return "\n".join(lines)


def ops_text() -> str:
    """The op reference as plain text for a terminal."""
    lines = []
    for rec in op_reference():
        lines.append(f"{rec['name']}: {rec['summary']}  [{rec['channels']}]")
        width = max(len(p["name"]) for p in rec["params"])
        for p in rec["params"]:
            lines.append(f"    {p['name']:<{width}}  default {p['default']:<14} "
                         f"{p['allowed']:<24} {p['description']}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def protocol_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of protocol v1 with one sub-schema per op."""
    step_options = []
    defs: dict[str, Any] = {}
    for name, cls in OPS.items():
        schema = cls.Params.model_json_schema()
        schema.pop("title", None)
        schema["description"] = " ".join((cls.__doc__ or cls.summary).split())
        defs[f"op_{name}"] = schema
        step_options.append({
            "type": "object",
            "properties": {name: {"anyOf": [{"$ref": f"#/$defs/op_{name}"}, {"type": "null"}]}},
            "required": [name],
            "additionalProperties": False,
            "description": cls.summary,
        })
    step_options.append({"enum": list(OPS), "description": "an op with all defaults"})
    count = {"type": "integer", "minimum": 1, "maximum": MAX_COUNT, "default": 1,
             "description": "Views drawn with this recipe (multi-crop)."}
    view = {
        "oneOf": [
            {"type": "object", "additionalProperties": False, "required": ["crop_size"],
             "properties": {
                 "crop_size": {"type": "integer", "minimum": 1, "maximum": MAX_CROP,
                               "description": "Side of the square view in pixels."},
                 "steps": {"type": "array", "items": {"$ref": "#/$defs/step"},
                           "description": "Ordered steps; each `- op: {params}`."},
                 "count": count}},
            {"type": "object", "additionalProperties": False, "required": ["same_as"],
             "properties": {"same_as": {"type": "integer", "minimum": 0,
                                        "description": "Index of the view to copy."},
                            "count": count}},
        ]
    }
    defs["step"] = {"oneOf": step_options}
    defs["view"] = view
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "bioaug augmentation protocol",
        "type": "object",
        "additionalProperties": False,
        "required": ["bioaug_protocol", "views"],
        "properties": {
            "bioaug_protocol": {"const": VERSION, "description": "Format version."},
            "name": {"type": "string", "description": "Short name (defaults to the file name)."},
            "description": {"type": "string",
                            "description": "What the protocol is for and where it comes from."},
            "channels": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                         "description": "Channel names, checked against the data."},
            "views": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/view"}},
        },
        "$defs": defs,
    }


def schema_json() -> str:
    return json.dumps(protocol_json_schema(), indent=2) + "\n"
