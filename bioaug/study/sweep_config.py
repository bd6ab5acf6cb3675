"""The sweep file: what to train, what to vary, how many seeds.

```yaml
bioaug_sweep: 1
name: stain-jitter-p
description: How stain-jitter probability biases MoA classes.
protocol: bbbc021-expert        # a shipped protocol name or a path (relative to this file)
data: stores/bbbc021            # a crop store (relative to this file)
label: moa                      # evaluation label (default: the store's label column)
method: moco_v2
backbone: vgg13_bn
train:                          # any `bioaug train` setting (TrainConfig field)
  epochs: 20
  batch_size: 128
  width: 0.25
embed: {layer: backbone, batch_size: 256}
evaluate: {seed: 0}             # extra keyword arguments of bioaug.evaluate.evaluate
axes:                           # key path → values (see bioaug.study.keypath)
  views[*].steps.stain_jitter.p: [0.0, 0.25, 0.5, 0.75, 1.0]
seeds: [0, 1, 2]
```

A sweep's points are the cartesian product of the axes (in the order written) times the
seeds; point ``k`` is the k-th of that list, seeds varying fastest. Every value is checked
before anything is trained: each axis value is written into the base protocol and the
result re-parsed by :mod:`bioaug.augment`, so an amplitude outside the op's range fails at
once with the op's own message.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bioaug.errors import BioaugError, ConfigError, validation_error
from bioaug.io import sha256_text
from bioaug.seeds import check_seed
from bioaug.study import keypath

SWEEP_VERSION = 1


class EmbedSettings(BaseModel):
    """How each point's model embeds the store."""

    model_config = ConfigDict(extra="forbid")
    layer: Literal["backbone", "feature_map", "projection"] | None = Field(
        None, description="embedding layer (default: the one the backbone declares)")
    batch_size: int = Field(256, ge=1)


def value_key(value: Any) -> Any:
    """A hashable key equal for axis values that are the same value however written.

    Numbers compare by value (``32`` and ``32.0`` are one value; booleans are not
    numbers), lists element by element, mappings regardless of key order.

    Examples
    --------
    >>> from bioaug.study.sweep_config import value_key
    >>> value_key(32) == value_key(32.0), value_key([0.5, 1]) == value_key([0.5, 1.0])
    (True, True)
    >>> value_key({"a": 1, "b": 2}) == value_key({"b": 2, "a": 1.0})
    True
    >>> value_key(True) == value_key(1), value_key("32") == value_key(32)
    (False, False)
    """
    if isinstance(value, bool) or value is None:
        return (type(value).__name__, value)
    if isinstance(value, (int, float)):
        exact = Fraction(value) if math.isfinite(value) else repr(float(value))
        return ("number", exact)
    if isinstance(value, (list, tuple)):
        return ("list", tuple(value_key(v) for v in value))
    if isinstance(value, Mapping):
        pairs = [(value_key(k), value_key(v)) for k, v in value.items()]
        return ("mapping", tuple(sorted(pairs, key=repr)))
    return (type(value).__name__, yaml.safe_dump(value))


def _refuse_repeated_values(path: str, values: list[Any]) -> None:
    """Raise ValueError naming the axis and both spellings when a value repeats."""
    first: dict[Any, int] = {}
    for i, v in enumerate(values):
        j = first.setdefault(value_key(v), i)
        if j == i:
            continue
        if repr(values[j]) == repr(v):
            raise ValueError(f"axis '{path}' lists the value {v!r} twice (items {j} and {i}); "
                             "give each value once")
        raise ValueError(f"axis '{path}' lists the same value twice, written {values[j]!r} "
                         f"(item {j}) and {v!r} (item {i}); give each value once")


class SweepConfig(BaseModel):
    """A parameter sweep (see the module docstring for the file format)."""

    model_config = ConfigDict(extra="forbid")

    bioaug_sweep: Literal[1] = Field(1, description="sweep file format version")
    name: str = Field("sweep", description="a short name, used in reports")
    description: str = ""
    protocol: str = Field(..., description="base protocol: shipped name or file path")
    data: str = Field(..., description="the crop store to train and evaluate on")
    label: str | None = Field(None, description="evaluation label column")
    method: str = "moco_v2"
    backbone: str = "vgg13_bn"
    train: dict[str, Any] = Field(default_factory=dict,
                                  description="extra training settings (TrainConfig fields)")
    embed: EmbedSettings = Field(default_factory=EmbedSettings)
    evaluate: dict[str, Any] = Field(default_factory=dict,
                                     description="extra keyword arguments of evaluate()")
    axes: dict[str, list[Any]] = Field(default_factory=dict,
                                       description="key path → list of values")
    seeds: list[int] = Field(default_factory=lambda: [0])
    device: str = "auto"

    @field_validator("axes")
    @classmethod
    def _axes_not_empty(cls, axes: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for path, values in axes.items():
            if not values:
                raise ValueError(f"axis '{path}' has no values; give at least one")
            _refuse_repeated_values(path, values)
        return axes

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds: list[int]) -> list[int]:
        if not seeds:
            raise ValueError("give at least one seed")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds repeat: {seeds}")
        for i, seed in enumerate(seeds):  # the one seed rule of every command
            try:
                check_seed(seed, f"seeds[{i}]")
            except ConfigError as exc:
                raise ValueError(f"{exc.where}: {exc.message}") from None
        return seeds

    @field_validator("train")
    @classmethod
    def _train_keys(cls, train: dict[str, Any]) -> dict[str, Any]:
        owned = {"data", "protocol", "method", "backbone", "seed", "out", "device"}
        clash = sorted(owned & set(train))
        if clash:
            raise ValueError(f"train.{clash[0]} is set by the sweep itself; use the top-level "
                             f"key '{clash[0]}' (or an axis / seeds) instead")
        return train

    # -- derived -------------------------------------------------------------------
    @property
    def axis_paths(self) -> list[str]:
        return list(self.axes)

    def normalized(self) -> dict[str, Any]:
        """A JSON-able dict used to recognise the same sweep when it is run again."""
        return self.model_dump(mode="json")

    def sha256(self) -> str:
        """Hash of :meth:`normalized`: equal for two files that describe the same sweep.

        Examples
        --------
        >>> from bioaug.study.sweep_config import parse_sweep_config
        >>> a = parse_sweep_config({"bioaug_sweep": 1, "protocol": "none", "data": "crops"})
        >>> b = parse_sweep_config({"bioaug_sweep": 1, "protocol": "none", "data": "crops",
        ...                         "seeds": [0], "method": "moco_v2"})
        >>> a.sha256() == b.sha256(), a.sha256() == a.model_copy(update={"seeds": [1]}).sha256()
        (True, False)
        """
        return sha256_text(yaml.safe_dump(self.normalized(), sort_keys=True))


@dataclass(frozen=True)
class SweepPoint:
    """One run of a sweep: a value per axis and a seed."""

    index: int
    params: dict[str, Any]
    seed: int

    def label(self) -> str:
        """``path=value`` for every axis, then the seed.

        Examples
        --------
        >>> from bioaug.study.sweep_config import SweepPoint
        >>> SweepPoint(index=3, params={"views[*].crop_size": 48}, seed=1).label()
        'views[*].crop_size=48, seed=1'
        """
        parts = [f"{k}={v}" for k, v in self.params.items()]
        return ", ".join([*parts, f"seed={self.seed}"])


def parse_sweep_config(data: Any, source: str = "<sweep>") -> SweepConfig:
    """Validate a sweep mapping (already loaded from YAML).

    Examples
    --------
    >>> from bioaug.study.sweep_config import parse_sweep_config
    >>> cfg = parse_sweep_config({"bioaug_sweep": 1, "protocol": "none", "data": "crops"})
    >>> cfg.method, cfg.backbone, cfg.seeds, cfg.axes
    ('moco_v2', 'vgg13_bn', [0], {})
    >>> parse_sweep_config({"bioaug_sweep": 1, "protocol": "none", "data": "crops",
    ...                     "seeds": [0, 0]}, source="sweep.yaml")
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: sweep.yaml: seeds: seeds repeat: [0, 0]
    """
    if not isinstance(data, Mapping):
        raise ConfigError("a sweep file must be a YAML mapping (bioaug_sweep, protocol, data, "
                          "axes, seeds …)", where=source)
    if "bioaug_sweep" not in data:
        raise ConfigError("missing 'bioaug_sweep: 1' (the sweep file format version)",
                          where=source)
    try:
        return SweepConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise validation_error(exc, SweepConfig, where=source) from None


def resolve_paths(cfg: SweepConfig, base_dir: Path) -> SweepConfig:
    """Make ``data`` and a file ``protocol`` absolute, relative to the sweep file.

    A protocol is a file when it exists there or ends in ``.yaml`` / ``.yml``; anything
    else is kept as the name of a shipped protocol.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from bioaug.study.sweep_config import parse_sweep_config, resolve_paths
    >>> folder = Path(tempfile.mkdtemp()).resolve()
    >>> cfg = parse_sweep_config({"bioaug_sweep": 1, "protocol": "mine.yaml", "data": "crops"})
    >>> cfg = resolve_paths(cfg, folder)
    >>> [Path(p).relative_to(folder).as_posix() for p in (cfg.data, cfg.protocol)]
    ['crops', 'mine.yaml']
    >>> resolve_paths(cfg.model_copy(update={"protocol": "bbbc021-expert"}), folder).protocol
    'bbbc021-expert'
    """
    data = Path(cfg.data).expanduser()
    if not data.is_absolute():
        data = (base_dir / data).resolve()
    protocol = cfg.protocol
    p = Path(protocol).expanduser()
    candidate = p if p.is_absolute() else base_dir / p
    if candidate.exists() or p.suffix in (".yaml", ".yml"):
        protocol = str(candidate.resolve())
    return cfg.model_copy(update={"data": str(data), "protocol": protocol})


def load_sweep_config(path: str | Path) -> SweepConfig:
    """Read a sweep file; relative paths inside it are resolved against its folder. A
    missing file, a YAML syntax error or a key given twice is a ConfigError with the line.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import yaml
    >>> from bioaug.study.sweep_config import load_sweep_config
    >>> folder = Path(tempfile.mkdtemp()).resolve()
    >>> sweep = {"bioaug_sweep": 1, "protocol": "bbbc021-expert", "data": "crops",
    ...          "axes": {"views[*].crop_size": [32, 48]}}
    >>> _ = (folder / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    >>> cfg = load_sweep_config(folder / "sweep.yaml")
    >>> cfg.data == str(folder / "crops"), cfg.protocol, cfg.axes
    (True, 'bbbc021-expert', {'views[*].crop_size': [32, 48]})
    >>> load_sweep_config(folder / "missing.yaml")
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: sweep file .../missing.yaml does not exist
    """
    from bioaug.augment.yamlsource import read_yaml_file

    p = Path(path)
    data = read_yaml_file(p, "sweep file")  # a key given twice is an error, not the last
    cfg = parse_sweep_config(data, source=str(p))
    return resolve_paths(cfg, p.resolve().parent)


def enumerate_points(cfg: SweepConfig) -> list[SweepPoint]:
    """Cartesian product of the axes × seeds (seeds vary fastest).

    Examples
    --------
    Two values of one axis, two seeds: four points; no axis: one point per seed.

    >>> from bioaug.study.sweep_config import enumerate_points, parse_sweep_config
    >>> cfg = parse_sweep_config({"bioaug_sweep": 1, "protocol": "none", "data": "crops",
    ...                           "axes": {"views[*].crop_size": [32, 48]}, "seeds": [0, 1]})
    >>> for point in enumerate_points(cfg):
    ...     print(point.index, point.label())
    0 views[*].crop_size=32, seed=0
    1 views[*].crop_size=32, seed=1
    2 views[*].crop_size=48, seed=0
    3 views[*].crop_size=48, seed=1
    >>> enumerate_points(cfg.model_copy(update={"axes": {}}))
    [SweepPoint(index=0, params={}, seed=0), SweepPoint(index=1, params={}, seed=1)]
    """
    paths = cfg.axis_paths
    combos = list(itertools.product(*[cfg.axes[p] for p in paths])) if paths else [()]
    points = []
    for combo in combos:
        for seed in cfg.seeds:
            points.append(SweepPoint(index=len(points), params=dict(zip(paths, combo,
                                                                       strict=True)),
                                     seed=seed))
    return points


# -- protocols for points --------------------------------------------------------------
def _op_params() -> dict[str, list[str]]:
    """op name → parameter names, from the augmentation registry."""
    from bioaug.augment import OPS

    out: dict[str, list[str]] = {}
    for name, cls in OPS.items():
        params = getattr(cls, "Params", None)
        fields = getattr(params, "model_fields", None)
        if fields:
            out[name] = list(fields)
    return out


def base_protocol_dict(cfg: SweepConfig) -> dict[str, Any]:
    """The sweep's base protocol (shipped name or file) as a plain dictionary.

    Examples
    --------
    >>> from bioaug.study.keypath import get_value
    >>> from bioaug.study.sweep_config import base_protocol_dict, parse_sweep_config
    >>> cfg = parse_sweep_config({"bioaug_sweep": 1, "protocol": "bbbc021-expert",
    ...                           "data": "crops"})
    >>> base = base_protocol_dict(cfg)
    >>> base["name"], get_value(base, "views[*].steps.stain_jitter.p")
    ('bbbc021-expert', [0.8])
    """
    from bioaug.augment import load_protocol

    return load_protocol(cfg.protocol).to_dict()


def point_protocol(base: Mapping[str, Any], params: Mapping[str, Any], *,
                   source: str = "<sweep>", op_params: Mapping[str, list[str]] | None = None
                   ) -> Any:
    """The validated Protocol of one point: ``base`` with every axis value written in.

    Examples
    --------
    >>> from bioaug.study.sweep_config import point_protocol
    >>> base = {"bioaug_protocol": 1, "name": "toy",
    ...         "views": [{"crop_size": 32, "steps": [{"flip": {"p": 0.5}}]}]}
    >>> protocol = point_protocol(base, {"views[*].steps.flip.p": 1.0,
    ...                                  "views[*].crop_size": 16})
    >>> protocol.views[0].crop_size, protocol.views[0].steps[0].params.p
    (16, 1.0)
    >>> point_protocol(base, {"views[*].steps.flip.p": 1.5}, source="sweep.yaml")
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: sweep.yaml: axis value not valid ... must be in [0, 1], got 1.5
    """
    from bioaug.augment import protocol_from_dict

    d: dict[str, Any] = dict(base)
    for path, value in params.items():
        d = keypath.apply_value(d, path, value, op_params)
    label = ", ".join(f"{k}={v!r}" for k, v in params.items())
    try:
        return protocol_from_dict(d, source=f"{source} [{label}]")
    except BioaugError as exc:
        raise ConfigError(f"axis value not valid for the protocol ({label}): {exc.message}",
                          where=source, hint=exc.hint) from None


def validate_axes(cfg: SweepConfig, source: str = "<sweep>") -> dict[str, Any]:
    """Check every axis path and value against the base protocol; returns the base dict.

    Each value is checked on its own (other axes at their base value) so the message names
    the one value at fault; a path that matches no step lists the protocol's valid paths.

    Examples
    --------
    >>> from bioaug.study.sweep_config import parse_sweep_config, validate_axes
    >>> sweep = {"bioaug_sweep": 1, "protocol": "bbbc021-expert", "data": "crops",
    ...          "axes": {"views[*].steps.stain_jitter.p": [0.0, 1.0]}}
    >>> validate_axes(parse_sweep_config(sweep))["name"]
    'bbbc021-expert'
    >>> sweep["axes"] = {"views[*].steps.stain_jitter.p": [0.0, 1.5]}
    >>> validate_axes(parse_sweep_config(sweep), source="sweep.yaml")
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: sweep.yaml: axes...: ...stain_jitter.p: must be in [0, 1], got 1.5
    """
    base = base_protocol_dict(cfg)
    ops = _op_params()
    for path in cfg.axis_paths:
        try:
            keypath.parse_key_path(path)
        except ConfigError as exc:
            raise ConfigError(f"axes: {exc.message}", where=source, hint=exc.hint) from None
        for value in cfg.axes[path]:
            try:
                point_protocol(base, {path: value}, source=source, op_params=ops)
            except ConfigError as exc:
                raise ConfigError(f"axes.{path}: {exc.message}", where=source,
                                  hint=exc.hint) from None
    return base


def diff_configs(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Human-readable differences between two normalised sweep configs.

    Examples
    --------
    >>> from bioaug.study.sweep_config import diff_configs
    >>> old = {"seeds": [0], "train": {"epochs": 20, "lr": 0.1}}
    >>> new = {"seeds": [0, 1], "train": {"epochs": 20}}
    >>> for line in diff_configs(old, new):
    ...     print(line)
    seeds: [0] in the existing sweep, now [0, 1]
    train.lr: 0.1 in the existing sweep, now absent
    """
    out: list[str] = []
    for key in list(dict.fromkeys([*old, *new])):
        path = f"{prefix}{key}"
        if key not in old:
            out.append(f"{path}: not in the existing sweep, now {new[key]!r}")
        elif key not in new:
            out.append(f"{path}: {old[key]!r} in the existing sweep, now absent")
        elif isinstance(old[key], Mapping) and isinstance(new[key], Mapping):
            out.extend(diff_configs(old[key], new[key], prefix=f"{path}."))
        elif old[key] != new[key]:
            out.append(f"{path}: {old[key]!r} in the existing sweep, now {new[key]!r}")
    return out
