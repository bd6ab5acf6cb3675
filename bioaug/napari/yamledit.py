"""Set one parameter of one step in protocol YAML text, keeping everything else as written.

The new value is spliced into the text at the position of the old one (or next to the
step's other parameters when the key is not written yet), so comments, key order, quoting
and layout of the rest of the file stay exactly as they were. The result is read back and
must hold the new value at that key path; otherwise a :class:`ProtocolError` says so.
"""

from __future__ import annotations

from typing import Any

import yaml

from bioaug.errors import ProtocolError, format_path


def flow(value: Any) -> str:
    """``value`` (a number, true/false or a list of them) as YAML flow text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    if isinstance(value, float):
        text = repr(value)
        if "e" in text and "." not in text.split("e")[0]:
            mantissa, exponent = text.split("e")
            text = f"{mantissa}.0e{exponent}"  # YAML 1.1 floats need a dot
        return text
    return str(value)


def _child(node: yaml.Node, key: Any) -> yaml.Node | None:
    """The value node under ``key`` (a mapping key or a list index), or None."""
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int):
        return node.value[key] if 0 <= key < len(node.value) else None
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v
    return None


def _step_node(root: yaml.Node, view: int, step: int, where: str) -> yaml.Node:
    node: yaml.Node | None = root
    for key in ("views", view, "steps", step):
        node = _child(node, key) if node is not None else None
    if node is None:
        raise ProtocolError(f"{where}: no such step in the text")
    return node


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _splice(text: str, start: int, end: int, new: str) -> str:
    return text[:start] + new + text[end:]


def _insert_key(text: str, params: yaml.MappingNode, key: str, value: str) -> str:
    """Add ``key: value`` to a parameter mapping that does not have the key yet."""
    if params.flow_style or not params.value:
        if not params.value:  # `{}`
            return _splice(text, params.start_mark.index, params.end_mark.index,
                           f"{{{key}: {value}}}")
        last = params.value[-1][1]
        return _splice(text, last.end_mark.index, last.end_mark.index, f", {key}: {value}")
    first = params.value[0][0]
    indent = " " * first.start_mark.column
    return _splice(text, first.start_mark.index, first.start_mark.index,
                   f"{key}: {value}\n{indent}")


def _write(text: str, step: yaml.Node, op: str, key: str, value: str, where: str) -> str:
    """``text`` with ``key`` of the step node ``step`` (op ``op``) set to ``value``."""
    if isinstance(step, yaml.ScalarNode):  # a bare op name: `- flip`
        return _splice(text, step.start_mark.index, step.end_mark.index,
                       f"{op}: {{{key}: {value}}}")
    params = _child(step, op)
    if params is None:
        raise ProtocolError(f"{where}: the step is not a `{op}` step in the text")
    if _is_null(params):  # `- flip:` or `- flip: null`
        if params.start_mark.index == params.end_mark.index:
            op_key = next(k for k, _ in step.value if k.value == op)
            colon = text.index(":", op_key.end_mark.index) + 1
            return _splice(text, colon, colon, f" {{{key}: {value}}}")
        return _splice(text, params.start_mark.index, params.end_mark.index,
                       f"{{{key}: {value}}}")
    if not isinstance(params, yaml.MappingNode):
        raise ProtocolError(f"{where}: the parameters of {op} are not a mapping",
                            hint="write them as `{p: 0.5}`")
    old = _child(params, key)
    if old is None:
        return _insert_key(text, params, key, value)
    return _splice(text, old.start_mark.index, old.end_mark.index, value)


def _read_back(text: str, view: int, step: int, op: str, key: str) -> Any:
    data = yaml.safe_load(text)
    params = data["views"][view]["steps"][step]
    return params[op][key] if isinstance(params, dict) and isinstance(params[op], dict) else None


def set_step_param(text: str, view: int, step: int, op: str, key: str, value: Any,
                   source: str = "<string>") -> str:
    """``text`` with ``views[view].steps[step].<op>.<key>`` set to ``value``.

    Raises :class:`ProtocolError` when the text cannot be read as YAML, has no such step,
    or holds the step in a form the value cannot be written into.
    """
    path = format_path(("views", view, "steps", step, op, key))
    where = f"{source}: {path}"
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        raise ProtocolError(f"{where}: the text is not valid YAML; fix it before moving a "
                            "slider") from None
    if root is None:
        raise ProtocolError(f"{where}: the text is empty")
    new = _write(text, _step_node(root, view, step, where), op, key, flow(value), where)
    try:
        written = _read_back(new, view, step, op, key)
    except (yaml.YAMLError, KeyError, IndexError, TypeError):
        written = None
    if written != (list(value) if isinstance(value, tuple) else value):
        raise ProtocolError(f"{where}: cannot write {flow(value)} into the text as it is laid "
                            "out", hint="edit the value in the text instead")
    return new
