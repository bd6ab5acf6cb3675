"""The generated reference (list-ops, JSON Schema) comes from the op schemas."""

from __future__ import annotations

import json

from bioaug.augment import OPS, load_protocol, shipped_protocols
from bioaug.augment.reference import (
    groups_markdown,
    op_reference,
    ops_markdown,
    ops_text,
    schema_json,
)


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
    assert text.startswith(f"{next(iter(OPS))}:")
    assert "| [`flip`](#flip) | geometry | mirror left-right / top-bottom |" in md


def test_groups_overview_lists_every_op_once_in_registry_order() -> None:
    table = groups_markdown()
    rows = [line for line in table.splitlines()[2:]]
    listed = [name.strip(" `") for row in rows for name in row.split("|")[2].split(",")]
    assert listed == list(OPS)
    assert rows[0].startswith("| geometry |") and rows[-1] == "| escape hatch | `albumentations` |"


def test_the_docs_overview_is_generated_from_the_registry(readme_updater, repo_root) -> None:
    doc = (repo_root / "docs" / "protocols.md").read_text(encoding="utf-8")
    assert readme_updater.render_protocol_doc(doc) == doc, \
        "docs/protocols.md is stale: run `python tools/update_readme.py`"


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
