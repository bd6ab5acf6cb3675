"""The run configuration: one pydantic model for the YAML run file and the CLI.

:class:`TrainConfig` is the single source of truth for every training option: the
``bioaug train`` command builds its options (names, types, defaults, help) from the
fields below, a YAML run file (``--config run.yaml``) is validated by the same model, and
the resolved configuration (:mod:`bioaug.train.resolve`) is written to ``RUN/config.yaml``.

The optimiser options (:data:`RECIPE_FIELDS`) default to ``None``: "use the method's
recipe" (:mod:`bioaug.methods.recipe`). Learning rate convention (Goyal et al. 2017,
"Accurate, large minibatch SGD"): ``lr`` is the *base* learning rate for a batch of 256,
scaled to the global batch by ``lr_scaling`` (linear: ``lr × batch_size / 256``), so the
same config gives the same dynamics when the batch size changes.

Every config remembers where each value came from (:meth:`TrainConfig.sources`): the
run file, the command line, the Python call, or the default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from bioaug.device import DEVICE_FORMS, parse_device
from bioaug.errors import ConfigError, validation_error
from bioaug.seeds import SEED_MAX, check_seed
from bioaug.train.batches import batches_help, parse_batches
from bioaug.train.pairs import CONTROL, POSITIVES, TREATMENT_COLUMNS, parse_control

#: Config keys that may change between a run and its resume without being reported.
RESUME_FREE_KEYS = frozenset({"out", "device", "num_workers", "tensorboard", "preview_views",
                              "rankme_items"})

#: Options that default to the method's recipe when not given (None).
RECIPE_FIELDS = ("optimizer", "lr", "lr_scaling", "weight_decay", "exclude_bias_norm",
                 "momentum", "adam_beta2", "lars_eta", "lars_clip", "warmup_epochs",
                 "weight_decay_end", "grad_clip")

#: Where a value came from when nobody says otherwise.
SOURCE_DEFAULT, SOURCE_RECIPE, SOURCE_API = "default", "recipe", "python"
SOURCE_CLI, SOURCE_FILE = "command line", "run file"


class TrainConfig(BaseModel):
    """Every option of a self-supervised training run."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    data: Path = Field(description="crop store to train on (made by `bioaug data prepare`)")
    protocol: str = Field(description="augmentation protocol: a YAML file or a shipped name "
                          "(e.g. bbbc021-expert, moco-v2-default)")
    out: Path = Field(description="run directory (config, checkpoint, metrics)")
    method: str = Field("moco_v2", description="self-supervised method (a name registered in "
                        "bioaug.methods.METHODS)")
    backbone: str = Field("vgg13_bn", description="encoder (vgg13_bn, vgg_mnist, resnet18, "
                          "resnet50, ...)")
    width: float | None = Field(None, gt=0, description="channel width multiplier of VGG "
                                "backbones (e.g. 0.25 for small CPU runs)")
    crop: int | None = Field(None, ge=1, description="override the crop size of every view of "
                             "the protocol (pixels)")
    epochs: int = Field(100, ge=1, description="passes over the store")
    batch_size: int = Field(256, ge=1, description="global batch size (over all processes)")
    seed: int = Field(0, ge=0, le=SEED_MAX, description="seed of the model init, data "
                      "order and augmentation draws")
    positives: Literal[tuple(POSITIVES)] = Field(  # type: ignore[valid-type]
        "same_cell", description="which cells form a positive pair: " + "; ".join(
            f"{p.name}: {p.description}" for p in POSITIVES.values()))
    batches: str = Field("random", description=f"batch composition: {batches_help()} (K "
                         "cells of each treatment in a batch)")
    treatment_columns: list[str] = Field(list(TREATMENT_COLUMNS), description="obs columns "
                                         "naming a cell's treatment (space- or comma-separated)")
    plate_column: str = Field("plate", description="obs column naming a cell's plate")
    well_column: str = Field("well", description="obs column naming a cell's well (within "
                             "its plate)")
    control: str | None = Field(CONTROL, description="the control cells, COLUMN=VALUE "
                                "(they pair with controls of another plate), or none")
    optimizer: Literal["sgd", "lars", "adamw"] | None = Field(
        None, description="SGD with momentum, LARS (You et al. 2017) or AdamW; default: the "
        "method's recipe")
    lr: float | None = Field(None, gt=0, description="base learning rate per 256 images, scaled "
                             "to the batch by lr_scaling; default: the method's recipe")
    lr_scaling: Literal["linear", "sqrt", "none"] | None = Field(
        None, description="learning-rate scaling with the global batch B: linear (lr × B/256), "
        "sqrt (lr × √(B/256)) or none; default: the method's recipe")
    weight_decay: float | None = Field(None, ge=0, description="weight decay; default: the "
                                       "method's recipe")
    weight_decay_end: float | None = Field(None, ge=0, description="weight decay at the end "
                                           "of a cosine schedule from weight_decay (per "
                                           "step); default: the method's recipe (most: "
                                           "constant)")
    exclude_bias_norm: bool | None = Field(None, description="no weight decay (nor LARS "
                                           "adaptation) for biases and norm layers; default: "
                                           "the method's recipe")
    momentum: float | None = Field(None, ge=0, lt=1, description="SGD/LARS momentum (AdamW "
                                   "β₁); default: the method's recipe")
    adam_beta2: float | None = Field(None, gt=0, lt=1, description="AdamW β₂, the decay of "
                                     "its squared-gradient average (0 < β₂ < 1); default: "
                                     "the method's recipe")
    lars_eta: float | None = Field(None, gt=0, description="LARS trust coefficient η; default: "
                                   "the method's recipe")
    lars_clip: bool | None = Field(None, description="cap LARS's layer-wise rate at the global "
                                   "one; default: the method's recipe")
    warmup_epochs: float | None = Field(None, ge=0, description="epochs of linear learning-rate "
                                        "warm-up before the cosine decay; default: the method's "
                                        "recipe (a fraction of the run)")
    grad_clip: float | None = Field(None, gt=0, description="clip the global gradient norm to "
                                    "this value; default: the method's recipe (most: none)")
    save_every_steps: int | None = Field(None, ge=1, description="also checkpoint every N steps "
                                         "(a checkpoint is always written every epoch)")
    device: str = Field("auto", description=f"compute device: {DEVICE_FORMS} "
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
    rankme_items: int = Field(1024, ge=0, description="training items whose backbone "
                              "features give RankMe, a label-free collapse monitor (RUN/"
                              "rankme.csv), before the first step, at each epoch's end "
                              "and at the last step; 0: off")
    tensorboard: bool = Field(True, description="also log to RUN/tb (if tensorboard is "
                              "installed)")
    preview_views: int = Field(8, ge=0, description="rows of RUN/views.png, a picture of the "
                               "first batch's views exactly as the model gets them (0: none)")
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimiser "
                                  "steps (the schedule is fitted to it; for tests and "
                                  "benchmarks)")

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        try:
            return parse_device(value)
        except ConfigError as exc:  # pydantic reports ValueErrors under the key path
            raise ValueError(exc.message) from None

    @field_validator("seed", mode="before")
    @classmethod
    def _check_seed(cls, value: Any) -> Any:
        # the one seed rule of every command (bioaug.seeds); other types are pydantic's
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                check_seed(value, "seed")
            except ConfigError as exc:
                raise ValueError(exc.message) from None
        return value

    @field_validator("batches", mode="before")
    @classmethod
    def _check_batches(cls, value: Any) -> str:
        try:
            return str(parse_batches(" ".join(map(str, value)) if isinstance(value, list)
                                     else value))
        except ConfigError as exc:
            raise ValueError(exc.message) from None

    @field_validator("treatment_columns", mode="before")
    @classmethod
    def _split_columns(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split() if v]
        if isinstance(value, (list, tuple)) and not value:
            raise ValueError("give at least one treatment column")
        return value

    @field_validator("control")
    @classmethod
    def _check_control(cls, value: str | None) -> str | None:
        try:
            parsed = parse_control(value)
        except ConfigError as exc:
            raise ValueError(exc.message) from None
        return None if parsed is None else "=".join(parsed)

    @field_validator("protocol")
    @classmethod
    def _protocol_path(cls, value: str) -> str:
        # a file path is made absolute so a resumed run finds it from anywhere
        return os.path.abspath(value) if Path(value).expanduser().is_file() else value

    @field_validator("data", "out", "knn_data")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return None if value is None else Path(os.path.abspath(os.path.expanduser(value)))

    _sources: dict[str, str] = PrivateAttr(default_factory=dict)

    # -- where values came from -----------------------------------------------------------
    def sources(self) -> dict[str, str]:
        """Field (and ``method_kwargs.KEY`` / ``backbone_kwargs.KEY``) → where its value
        came from: ``run file``, ``command line``, ``python`` (given to the constructor) or
        ``default``. Recipe fields left ``None`` are not listed (the resolver fills them)."""
        out: dict[str, str] = {}
        for name in type(self).model_fields:
            given = self._sources.get(name) or (SOURCE_API if name in self.model_fields_set
                                                 else SOURCE_DEFAULT)
            if name in RECIPE_FIELDS and getattr(self, name) is None:
                continue
            out[name] = given
            if name in ("method_kwargs", "backbone_kwargs"):
                for key in getattr(self, name):
                    out[f"{name}.{key}"] = self._sources.get(f"{name}.{key}", given)
        return out

    def with_sources(self, sources: dict[str, str]) -> TrainConfig:
        """This config, remembering ``sources`` (merged over what it knew)."""
        self._sources = {**self._sources, **sources}
        return self

    # -- derived values -------------------------------------------------------------------
    def effective_lr(self) -> float:
        """The learning rate the optimiser uses (``lr`` scaled by ``lr_scaling``).

        Only for a resolved config (``lr`` set): see :func:`bioaug.train.resolve.resolve`.
        """
        from bioaug.methods.recipe import scaled_lr

        if self.lr is None or self.lr_scaling is None:
            raise ValueError("lr/lr_scaling are not resolved yet (None = the method's recipe); "
                             "use bioaug.train.resolve.resolve(config, n_items)")
        return scaled_lr(self.lr, self.batch_size, self.lr_scaling)

    def backbone_options(self) -> dict[str, Any]:
        """Keyword arguments of ``build_backbone`` (``width`` merged into backbone_kwargs)."""
        kw = dict(self.backbone_kwargs)
        if self.width is not None:
            kw["width"] = self.width
        return kw

    def to_plain(self) -> dict[str, Any]:
        """JSON/YAML-able dict (paths as strings); what RUN/config.yaml holds."""
        return self.model_dump(mode="json")


def make_config(values: dict[str, Any], source: str = "<config>") -> TrainConfig:
    """Validate a dict into a :class:`TrainConfig`; errors become a :class:`ConfigError`."""
    try:
        return TrainConfig(**values)
    except ValidationError as exc:
        raise validation_error(exc, TrainConfig, what="invalid training configuration",
                               where=source) from None


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML run config into a plain dict (not validated yet).

    A missing file, a YAML syntax error, an option given twice (YAML would keep the last
    without a word) or a file that is not a mapping is a ConfigError naming the file and
    line (:func:`bioaug.augment.yamlsource.read_yaml_file`).
    """
    from bioaug.augment.yamlsource import read_yaml_file

    data = read_yaml_file(path, "run config")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"a run config is a mapping of options, not {type(data).__name__}",
                          where=path)
    return data


def load_config(path: str | os.PathLike | None = None, *, override_source: str = SOURCE_CLI,
                **overrides: Any) -> TrainConfig:
    """A run config from an optional YAML file, with ``overrides`` taking precedence.

    Relative ``data``/``out``/``knn_data`` paths in the file are relative to the file;
    ``method_kwargs``/``backbone_kwargs`` overrides are merged into the file's mappings.
    The config remembers which values came from the file and which from the overrides
    (labelled ``override_source``).

    Parameters
    ----------
    path
        A YAML run config (options as in ``bioaug train --help``), or None for none.
    override_source
        How :meth:`TrainConfig.sources` labels the overrides.
    **overrides
        Options that replace the file's; a None value leaves the file's value.

    Returns
    -------
    TrainConfig
        The validated configuration; a bad value is a :class:`~bioaug.errors.ConfigError`
        naming the option and what is allowed.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from bioaug.train import load_config
    >>> folder = Path(tempfile.mkdtemp()).resolve()
    >>> _ = (folder / "run.yaml").write_text("{data: crops, protocol: none, out: run, "
    ...                                      "method: simclr, epochs: 5}")
    >>> config = load_config(folder / "run.yaml", epochs=20)
    >>> str(config.data.relative_to(folder)), config.method, config.epochs
    ('crops', 'simclr', 20)
    >>> sources = config.sources()
    >>> sources["method"], sources["epochs"], sources["backbone"]
    ('run file', 'command line', 'default')
    >>> load_config(folder / "run.yaml", device="gpu")
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: ...run.yaml: invalid training configuration: device: unknown device 'gpu'; use auto, cpu, cuda, cuda:N (N = 0, 1, … the GPU's index) or mps
    """
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
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
        sources = _sources_of(values, SOURCE_FILE)
    for key, value in overrides.items():
        if value is None:
            continue
        sources.update(_sources_of({key: value}, override_source))
        if key in ("method_kwargs", "backbone_kwargs") and isinstance(values.get(key), dict):
            value = {**values[key], **value}  # merged with the file's, key by key
        values[key] = value
    return make_config(values, source).with_sources(sources)


def _sources_of(values: dict[str, Any], label: str) -> dict[str, str]:
    out = {}
    for key, value in values.items():
        out[key] = label
        if key in ("method_kwargs", "backbone_kwargs") and isinstance(value, dict):
            out.update({f"{key}.{k}": label for k in value})
    return out


#: Options a run made before they existed used implicitly (pairs of one crop, random
#: batches): missing from its config, they are not a difference on resume.
SAMPLING_DEFAULTS: dict[str, Any] = {
    k: TrainConfig.model_fields[k].get_default(call_default_factory=True)
    for k in ("positives", "batches", "treatment_columns", "plate_column", "well_column",
              "control")}

#: The value every option missing from an older run's config had in that run: the
#: sampling options' defaults, AdamW's β₂, fixed at 0.999 before it was an option, and
#: BYOL's predictor, which learned at the run's rate before ``predictor_lr_scale``
#: (``method_kwargs.<name>`` for a method's hyperparameter).
IMPLICIT_VALUES: dict[str, Any] = {**SAMPLING_DEFAULTS, "adam_beta2": 0.999,
                                   "method_kwargs.predictor_lr_scale": 1.0}


def config_diff(old: dict[str, Any], new: dict[str, Any],
                ignore: frozenset[str] = RESUME_FREE_KEYS) -> dict[str, tuple[Any, Any]]:
    """Keys whose values differ between two plain configs: ``{key: (old, new)}``.

    Mappings (``method_kwargs`` …) are compared key by key (``method_kwargs.temperature``).
    Options missing from an older run's config count as the values that run used
    (:data:`IMPLICIT_VALUES`: the sampling defaults, β₂ 0.999, BYOL's predictor rate 1).

    Examples
    --------
    >>> config_diff({"lr": 0.1}, {"lr": 0.1, "adam_beta2": 0.999})
    {}
    >>> config_diff({"lr": 0.1}, {"lr": 0.1, "adam_beta2": 0.95})
    {'adam_beta2': (0.999, 0.95)}
    """
    out: dict[str, tuple[Any, Any]] = {}
    for k in sorted((set(old) | set(new)) - set(ignore)):
        a, b = old.get(k, IMPLICIT_VALUES.get(k)), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            for sub in sorted(set(a) | set(b)):
                was = a.get(sub, IMPLICIT_VALUES.get(f"{k}.{sub}"))
                if was != b.get(sub):
                    out[f"{k}.{sub}"] = (was, b.get(sub))
        elif a != b:
            out[k] = (a, b)
    return out
