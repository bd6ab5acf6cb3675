"""Key paths into a protocol: how a sweep axis names the parameter it changes.

A key path addresses one parameter of one or more steps of a protocol::

    views[*].steps.stain_jitter.p          # p of every stain_jitter step, in every view
    views[0].steps.gaussian_blur.sigma     # sigma of the gaussian_blur step of view 0
    views[1].steps.flip[1].p               # the second flip step of view 1
    views[*].crop_size                     # the crop size of every view

Steps are found **by op name** inside a view's ordered step list (``[j]`` picks the j-th
step with that name when a view has several). ``views[*]`` changes every view that has the
step; a view written ``{same_as: N}`` follows view N automatically. ``views[i]`` on a
``same_as`` view first turns it into its own copy of view N, then changes only that copy.

The functions here are pure: they work on the protocol's plain dictionary
(:meth:`bioaug.augment.Protocol.to_dict`) and never validate amplitudes — re-parse the
result with :func:`bioaug.augment.protocol_from_dict` for that (see
:func:`bioaug.study.sweep_config.apply_axes`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bioaug.errors import ConfigError, did_you_mean

_PATH_RE = re.compile(
    r"^views\[(?P<view>\*|\d+)\]\."
    r"(?:(?P<crop>crop_size)|steps\.(?P<op>[A-Za-z_][A-Za-z0-9_]*)(?:\[(?P<occ>\d+)\])?"
    r"\.(?P<param>[A-Za-z_][A-Za-z0-9_]*))$"
)

SYNTAX = ("views[<i>|*].steps.<op>[<j>].<param>  (e.g. views[*].steps.stain_jitter.p)"
          "  or  views[<i>|*].crop_size")


@dataclass(frozen=True)
class KeyPath:
    """A parsed key path. ``view`` is None for ``*``; ``op`` is None for ``crop_size``."""

    text: str
    view: int | None
    op: str | None
    occurrence: int | None
    param: str

    @property
    def is_crop_size(self) -> bool:
        return self.op is None


def parse_key_path(text: str) -> KeyPath:
    """Parse ``views[*].steps.<op>.<param>``; a malformed path is a :class:`ConfigError`.

    Examples
    --------
    >>> from bioaug.study.keypath import parse_key_path
    >>> parse_key_path("views[1].steps.flip[1].p")
    KeyPath(text='views[1].steps.flip[1].p', view=1, op='flip', occurrence=1, param='p')
    >>> path = parse_key_path("views[*].crop_size")
    >>> path.view, path.is_crop_size
    (None, True)
    >>> parse_key_path("views.0.steps.flip.p")
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: malformed key path 'views.0.steps.flip.p'
      hint: write it as views[<i>|*].steps.<op>[<j>].<param>  (e.g. ...
    """
    m = _PATH_RE.match(text.strip())
    if not m:
        raise ConfigError(f"malformed key path '{text}'", hint=f"write it as {SYNTAX}")
    view = None if m["view"] == "*" else int(m["view"])
    if m["crop"]:
        return KeyPath(text=text.strip(), view=view, op=None, occurrence=None, param="crop_size")
    occ = int(m["occ"]) if m["occ"] is not None else None
    return KeyPath(text=text.strip(), view=view, op=m["op"], occurrence=occ, param=m["param"])


# -- reading a protocol dict -----------------------------------------------------------
def _views(protocol: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    views = protocol.get("views")
    if not isinstance(views, list) or not views:
        raise ConfigError("the protocol has no views")
    return views


def _same_as(view: Mapping[str, Any]) -> int | None:
    target = view.get("same_as")
    return int(target) if target is not None else None


def step_name_params(step: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``{op: {params}}`` → ``(op, params)``.

    Examples
    --------
    >>> from bioaug.study.keypath import step_name_params
    >>> step_name_params({"flip": {"p": 0.5}}), step_name_params({"grayscale": None})
    (('flip', {'p': 0.5}), ('grayscale', {}))
    >>> step_name_params({"flip": {}, "rotate90": {}})
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: a protocol step must be a one-key mapping {op: {params}}, got ...
    """
    if not isinstance(step, Mapping) or len(step) != 1:
        raise ConfigError(f"a protocol step must be a one-key mapping {{op: {{params}}}}, "
                          f"got {step!r}")
    (name, params), = step.items()
    return str(name), dict(params or {})


def _steps(view: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [step_name_params(s) for s in view.get("steps") or []]


def _occurrence_label(steps: list[tuple[str, dict[str, Any]]], index: int) -> str:
    """``op`` or ``op[j]`` when the view holds several ``op`` steps."""
    name = steps[index][0]
    same = [i for i, (n, _) in enumerate(steps) if n == name]
    return name if len(same) == 1 else f"{name}[{same.index(index)}]"


def valid_paths(protocol: Mapping[str, Any],
                op_params: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """Every key path the protocol offers, one per parameter (``views[i]`` and ``views[*]``).

    ``op_params`` (op name → parameter names, from the op registry) adds parameters the
    dictionary leaves out because they have their default value.

    Examples
    --------
    A two-view protocol whose second view is ``same_as: 0`` (so it has no paths of its own):

    >>> from bioaug.study.keypath import valid_paths
    >>> protocol = {"name": "toy", "views": [
    ...     {"crop_size": 64, "steps": [{"flip": {"p": 0.5}},
    ...                                 {"gaussian_blur": {"sigma": [0.1, 1.5], "p": 0.3}}]},
    ...     {"same_as": 0}]}
    >>> for path in valid_paths(protocol, {"flip": ["p", "horizontal"]}):
    ...     print(path)
    views[*].crop_size
    views[*].steps.flip.p
    views[*].steps.flip.horizontal
    views[*].steps.gaussian_blur.sigma
    views[*].steps.gaussian_blur.p
    views[0].crop_size
    views[0].steps.flip.p
    views[0].steps.flip.horizontal
    views[0].steps.gaussian_blur.sigma
    views[0].steps.gaussian_blur.p
    """
    out: list[str] = []
    star: list[str] = []
    for i, view in enumerate(_views(protocol)):
        if _same_as(view) is not None:
            continue
        out.append(f"views[{i}].crop_size")
        steps = _steps(view)
        for j, (name, params) in enumerate(steps):
            label = _occurrence_label(steps, j)
            names = list(params)
            for extra in (op_params or {}).get(name, ()):
                if extra not in names:
                    names.append(extra)
            for param in names:
                out.append(f"views[{i}].steps.{label}.{param}")
                s = f"views[*].steps.{label}.{param}"
                if s not in star:
                    star.append(s)
    return ["views[*].crop_size", *star, *out]


def format_paths(paths: Sequence[str], n_views: int | None = None) -> str:
    """Group ``...op.a``, ``...op.b`` as ``...op.{a, b}``, one line per step.

    With ``n_views``, only the ``views[*]`` paths are listed, followed by a note that ``*``
    may be replaced by a view index.

    Examples
    --------
    >>> from bioaug.study.keypath import format_paths
    >>> paths = ["views[*].crop_size", "views[*].steps.gaussian_blur.sigma",
    ...          "views[*].steps.gaussian_blur.p", "views[0].crop_size"]
    >>> print(format_paths(paths, n_views=2))
    <BLANKLINE>
        views[*].crop_size
        views[*].steps.gaussian_blur.{sigma, p}
        (replace * by a view index, views[0] … views[1], to change one view only)
    """
    if n_views is not None:
        paths = [p for p in paths if p.startswith("views[*]")]
    groups: dict[str, list[str]] = {}
    for p in paths:
        head, _, tail = p.rpartition(".")
        groups.setdefault(head, []).append(tail)
    lines = [f"{h}.{t[0]}" if len(t) == 1 else f"{h}.{{{', '.join(t)}}}"
             for h, t in groups.items()]
    if n_views is not None:
        last = f"views[{n_views - 1}]"
        lines.append("(replace * by a view index, views[0]"
                     + (f" … {last}" if n_views > 1 else "") + ", to change one view only)")
    return "\n    " + "\n    ".join(lines)


def _no_match(path: KeyPath, protocol: Mapping[str, Any], reason: str,
              op_params: Mapping[str, Sequence[str]] | None, word: str | None = None,
              choices: Sequence[str] = ()) -> ConfigError:
    name = protocol.get("name", "the protocol")
    suggestion = did_you_mean(word, choices) if word else ""
    return ConfigError(
        f"key path '{path.text}' matches no step of protocol '{name}': {reason}{suggestion}",
        hint="valid paths:" + format_paths(valid_paths(protocol, op_params),
                                           n_views=len(_views(protocol))))


def _targets(path: KeyPath, views: list[Mapping[str, Any]], protocol: Mapping[str, Any],
             op_params: Mapping[str, Sequence[str]] | None) -> list[tuple[int, int | None]]:
    """(view index, step index) pairs the path addresses (step None for crop_size)."""
    if path.view is not None and path.view >= len(views):
        raise _no_match(path, protocol, f"the protocol has {len(views)} view(s) "
                        f"(views[0]..views[{len(views) - 1}])", op_params)
    if path.view is None:
        view_ids = [i for i, v in enumerate(views) if _same_as(v) is None]
    else:
        view_ids = [path.view]
    if path.is_crop_size:
        return [(i, None) for i in view_ids]
    found: list[tuple[int, int | None]] = []
    all_ops: set[str] = set()
    for i in view_ids:
        src = views[i]
        target = _same_as(src)
        if target is not None:
            src = views[target]
        steps = _steps(src)
        all_ops.update(n for n, _ in steps)
        hits = [j for j, (n, _) in enumerate(steps) if n == path.op]
        if path.occurrence is None and len(hits) > 1:
            raise ConfigError(
                f"key path '{path.text}' is ambiguous: view {i} has {len(hits)} "
                f"'{path.op}' steps",
                hint=f"pick one with {path.op}[0] … {path.op}[{len(hits) - 1}], e.g. "
                f"views[{i}].steps.{path.op}[0].{path.param}")
        if path.occurrence is not None:
            hits = hits[path.occurrence:path.occurrence + 1]
        found.extend((i, j) for j in hits[:1])
    if not found:
        occ = f" number {path.occurrence}" if path.occurrence is not None else ""
        reason = (f"no view has a '{path.op}' step{occ}" if path.view is None
                  else f"view {path.view} has no '{path.op}' step{occ}")
        raise _no_match(path, protocol, reason, op_params,
                        word=path.op, choices=sorted(all_ops))
    return found


def apply_value(protocol: Mapping[str, Any], path: KeyPath | str, value: Any,
                op_params: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """A copy of ``protocol`` with the parameter at ``path`` set to ``value``.

    Raises :class:`ConfigError` when the path matches no step (listing the valid paths) or
    names a parameter the op does not have (when ``op_params`` knows the op's parameters).

    Examples
    --------
    A two-view protocol whose second view is ``same_as: 0``:

    >>> from bioaug.study.keypath import apply_value
    >>> protocol = {"name": "toy", "views": [
    ...     {"crop_size": 64, "steps": [{"flip": {"p": 0.5}},
    ...                                 {"gaussian_blur": {"sigma": [0.1, 1.5], "p": 0.3}}]},
    ...     {"same_as": 0}]}
    >>> views = apply_value(protocol, "views[*].steps.flip.p", 1.0)["views"]
    >>> views[0]["steps"], views[1]
    ([{'flip': {'p': 1.0}}, {'gaussian_blur': {'sigma': [0.1, 1.5], 'p': 0.3}}], {'same_as': 0})

    Addressing the ``same_as`` view on its own gives it its own copy of view 0:

    >>> views = apply_value(protocol, "views[1].crop_size", 32)["views"]
    >>> views[0]["crop_size"], views[1]["crop_size"], views[1]["steps"] == views[0]["steps"]
    (64, 32, True)
    >>> protocol["views"][1]  # the input is left as it was
    {'same_as': 0}
    >>> apply_value(protocol, "views[*].steps.flp.p", 1.0)
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: key path ...: no view has a 'flp' step (did you mean 'flip'?)
      hint: valid paths:
        views[*].crop_size
        views[*].steps.flip.p
        views[*].steps.gaussian_blur.{sigma, p}
        (replace * by a view index, views[0] … views[1], to change one view only)
    """
    kp = parse_key_path(path) if isinstance(path, str) else path
    out = copy.deepcopy(dict(protocol))
    views = _views(out)
    targets = _targets(kp, views, out, op_params)
    for i, j in targets:
        target = _same_as(views[i])
        if target is not None:  # views[i] addressed directly: give it its own copy
            views[i] = copy.deepcopy(views[target])
        if j is None:
            views[i]["crop_size"] = value
            continue
        step = views[i]["steps"][j]
        name, params = step_name_params(step)
        known = list(params)
        if op_params is not None and name in op_params:
            known = list(dict.fromkeys([*known, *op_params[name]]))
            if kp.param not in known:
                raise _no_match(kp, out, f"op '{name}' has no parameter '{kp.param}' "
                                f"(it has: {', '.join(known)})", op_params,
                                word=kp.param, choices=known)
        params[kp.param] = value
        views[i]["steps"][j] = {name: params}
    return out


def get_value(protocol: Mapping[str, Any], path: KeyPath | str) -> list[Any]:
    """The current value(s) at ``path`` (one per addressed view; None where unset).

    Examples
    --------
    A two-view protocol whose second view is ``same_as: 0``:

    >>> from bioaug.study.keypath import apply_value, get_value
    >>> protocol = {"name": "toy", "views": [
    ...     {"crop_size": 64, "steps": [{"flip": {"p": 0.5}},
    ...                                 {"gaussian_blur": {"sigma": [0.1, 1.5], "p": 0.3}}]},
    ...     {"same_as": 0}]}
    >>> get_value(protocol, "views[*].steps.flip.p"), get_value(protocol, "views[1].crop_size")
    ([0.5], [64])
    >>> get_value(protocol, "views[*].steps.flip.horizontal")
    [None]
    >>> get_value(apply_value(protocol, "views[1].steps.flip.p", 1.0), "views[*].steps.flip.p")
    [0.5, 1.0]
    """
    kp = parse_key_path(path) if isinstance(path, str) else path
    views = _views(protocol)
    values = []
    for i, j in _targets(kp, views, protocol, None):
        view = views[i]
        if _same_as(view) is not None:
            view = views[_same_as(view)]
        if j is None:
            values.append(view.get("crop_size"))
        else:
            values.append(step_name_params(view["steps"][j])[1].get(kp.param))
    return values
