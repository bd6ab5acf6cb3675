"""The generated reference (list-ops, JSON Schema) comes from the op schemas."""

from __future__ import annotations

import json

from bioaug.augment import OPS, load_protocol, shipped_protocols
from bioaug.augment.reference import op_reference, ops_markdown, ops_text, schema_json


def test_every_op_and_parameter_is_documented() -> None:
    records = {r["name"]: r for r in op_reference()}
    assert set(records) == set(OPS)
    for name, cls in OPS.items():
        assert [p["name"] for p in records[name]["params"]] == list(cls.Params.model_fields)
        for p in records[name]["params"]:
            assert p["description"], f"{name}.{p['name']} has no description"
    sj = {p["name"]: p for p in records["stain_jitter"]["params"]}
    assert sj["brightness"]["default"] == "[0.8, 1.2]"
    assert sj["brightness"]["allowed"].startswith("[0, 10]")
    assert "RGB" in records["color_jitter"]["channels"]


def test_markdown_and_text_forms() -> None:
    md = ops_markdown()
    for name in OPS:
        assert f"### `{name}`" in md
    assert "| `p` | `1` | [0, 1] |" in md
    text = ops_text()
    assert text.startswith("random_resized_crop:")


def test_json_schema_has_a_sub_schema_per_op_with_bounds() -> None:
    schema = json.loads(schema_json())
    assert schema["properties"]["bioaug_protocol"]["const"] == 1
    defs = schema["$defs"]
    for name in OPS:
        assert f"op_{name}" in defs
    flip = defs["op_flip"]["properties"]
    assert flip["p"]["minimum"] == 0 and flip["p"]["maximum"] == 1
    assert flip["horizontal"]["type"] == "boolean"
    assert "GaussianBlur" in defs["op_albumentations"]["properties"]["transform"]["enum"]
    assert len(defs["step"]["oneOf"]) == len(OPS) + 1


def test_shipped_protocols_only_use_schema_keys() -> None:
    """A light check without a JSON-Schema library: every key of every shipped protocol is a
    property the schema declares (editors would flag anything else)."""
    defs = json.loads(schema_json())["$defs"]
    for name in shipped_protocols():
        for view in load_protocol(name).to_dict()["views"]:
            for step in view.get("steps", []):
                (op, params), = step.items()
                assert set(params) <= set(defs[f"op_{op}"]["properties"]), (name, op)
