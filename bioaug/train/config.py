"""The run configuration: one pydantic model for the YAML run file and the CLI.

:class:`TrainConfig` is the single source of truth for every training option: the
``bioaug train`` command builds its options (names, types, defaults, help) from the
fields below, a YAML run file (``--config run.yaml``) is validated by the same model, and
the resolved configuration is written to ``RUN/config.yaml``.

Learning rate convention (Goyal et al. 2017, "Accurate, large minibatch SGD"; used by
MoCo v2 and SimCLR): ``lr`` is the *base* learning rate for a batch of 256. The rate the
optimiser uses is ``lr × batch_size / 256`` with the global batch size, so the same
config gives the same dynamics when the batch size changes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bioaug.device import DEVICE_CHOICES
from bioaug.errors import ConfigError, did_you_mean

#: Config keys that may change between a run and its resume without being reported.
RESUME_FREE_KEYS = frozenset({"out", "device", "num_workers", "tensorboard"})


class TrainConfig(BaseModel):
    """Every option of a self-supervised training run."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    data: Path = Field(description="crop store to train on (made by `bioaug data prepare`)")
    protocol: str = Field(description="augmentation protocol: a YAML file or a shipped name "
                          "(e.g. bbbc021-expert, moco-v2-default)")
    out: Path = Field(description="run directory (config, checkpoint, metrics)")
    method: str = Field("moco_v2", description="self-supervised method (moco_v2, simclr, byol, "
                        "barlow_twins, vicreg)")
    backbone: str = Field("vgg13_bn", description="encoder (vgg13_bn, vgg_mnist, resnet18, "
                          "resnet50, ...)")
    width: float | None = Field(None, gt=0, description="channel width multiplier of VGG "
                                "backbones (e.g. 0.25 for small CPU runs)")
    crop: int | None = Field(None, ge=1, description="override the crop size of every view of "
                             "the protocol (pixels)")
    epochs: int = Field(100, ge=1, description="passes over the store")
    batch_size: int = Field(256, ge=1, description="global batch size (over all processes)")
    seed: int = Field(0, ge=0, description="seed of the model init, data order and "
                      "augmentation draws")
    optimizer: Literal["sgd", "lars"] = Field("sgd", description="SGD with momentum, or LARS "
                                             "(You et al. 2017) for large batches")
    lr: float = Field(0.03, gt=0, description="base learning rate per 256 images; the "
                      "optimiser uses lr × batch_size / 256")
    weight_decay: float = Field(1e-4, ge=0, description="weight decay (L2)")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD/LARS momentum")
    warmup_epochs: float = Field(0.0, ge=0, description="epochs of linear learning-rate warm-up "
                                 "before the cosine decay")
    grad_clip: float | None = Field(None, gt=0, description="clip the global gradient norm to "
                                    "this value")
    save_every_steps: int | None = Field(None, ge=1, description="also checkpoint every N steps "
                                         "(a checkpoint is always written every epoch)")
    device: str = Field("auto", description=f"compute device: {', '.join(DEVICE_CHOICES)} "
                        "(auto = CUDA, then MPS, then CPU)")
    num_workers: int | None = Field(None, ge=0, description="DataLoader worker processes "
                                    "reading the store (0 = read in the training process; "
                                    "default: 0 on CPU, where workers would compete with the "
                                    "model for cores, 4 on a GPU)")
    method_kwargs: dict[str, Any] = Field(default_factory=dict, description="method "
                                          "hyperparameters, e.g. temperature=0.2")
    backbone_kwargs: dict[str, Any] = Field(default_factory=dict, description="extra backbone "
                                            "options, e.g. cifar_stem=true")
    amp: bool = Field(True, description="bf16 autocast (CUDA only; ignored elsewhere)")
    channels_last: bool = Field(True, description="channels-last memory format (CUDA only)")
    knn_data: Path | None = Field(None, description="labelled store for a kNN accuracy "
                                  "monitor of the backbone features")
    knn_every: int = Field(1, ge=1, description="run the kNN monitor every N epochs")
    knn_k: int = Field(20, ge=1, description="neighbours of the kNN monitor")
    knn_max_items: int = Field(5000, ge=2, description="items of knn_data used by the monitor")
    tensorboard: bool = Field(True, description="also log to RUN/tb (if tensorboard is "
                              "installed)")
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimiser "
                                  "steps (the schedule is fitted to it; for tests and "
                                  "benchmarks)")

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        v = value.lower()
        if v in DEVICE_CHOICES or (v.startswith("cuda:") and v[5:].isdigit()):
            return v
        raise ValueError(f"unknown device '{value}'; use one of {', '.join(DEVICE_CHOICES)}")

    @field_validator("protocol")
    @classmethod
    def _protocol_path(cls, value: str) -> str:
        # a file path is made absolute so a resumed run finds it from anywhere
        return os.path.abspath(value) if Path(value).expanduser().is_file() else value

    @field_validator("data", "out", "knn_data")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return None if value is None else Path(os.path.abspath(os.path.expanduser(value)))

    # -- derived values -------------------------------------------------------------------
    def effective_lr(self) -> float:
        """The learning rate the optimiser uses: ``lr × batch_size / 256``."""
        return self.lr * self.batch_size / 256.0

    def backbone_options(self) -> dict[str, Any]:
        """Keyword arguments of ``build_backbone`` (``width`` merged into backbone_kwargs)."""
        kw = dict(self.backbone_kwargs)
        if self.width is not None:
            kw["width"] = self.width
        return kw

    def to_plain(self) -> dict[str, Any]:
        """JSON/YAML-able dict (paths as strings); what RUN/config.yaml holds."""
        return self.model_dump(mode="json")


def config_fields() -> dict[str, Any]:
    """Field name → pydantic FieldInfo, in declaration order (used to build the CLI)."""
    return dict(TrainConfig.model_fields)


def _format_validation_error(exc: ValidationError, source: str) -> ConfigError:
    lines = []
    known = list(TrainConfig.model_fields)
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "<root>"
        if err["type"] == "extra_forbidden":
            key = str(err["loc"][-1])
            lines.append(f"{path}: unknown option{did_you_mean(key, known)}")
        elif err["type"] == "missing":
            lines.append(f"{path}: required (give --{path.replace('_', '-')} or `{path}:` in "
                         "the run config)")
        else:
            lines.append(f"{path}: {err['msg']} (got {err.get('input')!r})")
    return ConfigError("invalid training configuration:\n  " + "\n  ".join(lines),
                       where=source, hint=f"known options: {', '.join(known)}"
                       if any(e["type"] == "extra_forbidden" for e in exc.errors()) else None)


def make_config(values: dict[str, Any], source: str = "<config>") -> TrainConfig:
    """Validate a dict into a :class:`TrainConfig`; errors become a :class:`ConfigError`."""
    try:
        return TrainConfig(**values)
    except ValidationError as exc:
        raise _format_validation_error(exc, source) from None


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML run config into a plain dict (not validated yet)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"run config {p} does not exist")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark is not None else p
        raise ConfigError(f"not valid YAML: {getattr(exc, 'problem', exc)}", where=where) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"a run config is a mapping of options, not {type(data).__name__}",
                          where=p)
    return data


def load_config(path: str | os.PathLike | None = None, **overrides: Any) -> TrainConfig:
    """A run config from an optional YAML file, with ``overrides`` taking precedence.

    Relative ``data``/``out``/``knn_data`` paths in the file are relative to the file;
    ``method_kwargs``/``backbone_kwargs`` overrides are merged into the file's mappings.
    """
    values: dict[str, Any] = {}
    source = "<command line>"
    if path is not None:
        values = read_config_file(path)
        base = Path(path).resolve().parent
        for key in ("data", "out", "knn_data"):
            if isinstance(values.get(key), str) and not Path(values[key]).expanduser().is_absolute():
                values[key] = str(base / values[key])
        if isinstance(values.get("protocol"), str):
            cand = base / values["protocol"]
            if cand.is_file():
                values["protocol"] = str(cand)
        source = str(path)
    for key, value in overrides.items():
        if value is None:
            continue
        if key in ("method_kwargs", "backbone_kwargs") and isinstance(values.get(key), dict):
            value = {**values[key], **value}  # merged with the file's, key by key
        values[key] = value
    return make_config(values, source)


def config_diff(old: dict[str, Any], new: dict[str, Any],
                ignore: frozenset[str] = RESUME_FREE_KEYS) -> dict[str, tuple[Any, Any]]:
    """Keys whose values differ between two plain configs: ``{key: (old, new)}``."""
    keys = (set(old) | set(new)) - set(ignore)
    return {k: (old.get(k), new.get(k)) for k in sorted(keys) if old.get(k) != new.get(k)}
