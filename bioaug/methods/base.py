"""The :class:`Method` base class shared by every self-supervised method.

A method owns a backbone, a projector (and whatever else it needs: a momentum encoder, a
queue, a predictor), and turns a list of augmented views into a loss. Every piece of
state lives in submodules or buffers so that ``state_dict()`` captures it all.

Life cycle used by the training loop::

    method = build_method("moco_v2", backbone, **hparams)   # validated hparams
    method.configure_for_dataset(n_items, global_batch_size)  # before optimiser / DDP
    for step ...:
        out = method.training_loss(views)      # {"loss": ..., extra scalars}
        out["loss"].backward(); optimiser.step()
        method.after_step(progress)            # momentum encoders, schedules
    feats = method.embed(x, layer="backbone")

Hyperparameters are a pydantic model per method (``Method.Config``); unknown names or
values out of range are :class:`~bioaug.errors.ConfigError` naming the field and what is
allowed. Each method also declares its training :class:`~bioaug.methods.recipe.Recipe`
(optimiser, learning rate, warm-up) and, for momentum encoders, its momentum schedule
(:meth:`Method.target_momentum`), which the training loop applies without knowing the
method, and :meth:`Method.run_warnings` flags settings that cannot work for a run's length.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, ValidationError
from torch import nn

from bioaug.errors import ConfigError, did_you_mean, validation_error
from bioaug.methods.recipe import Recipe

__all__ = [
    "ALL_LAYERS",
    "EMBED_LAYERS",
    "Method",
    "MethodConfig",
    "backbone_features",
    "cosine_schedule",
    "feature_map_embedding",
    "momentum_update",
    "probe_layers",
    "remaining_init_fraction",
    "validate_config",
]

#: Embedding layers: name → what it is. ``backbone`` is the usual evaluation layer (the
#: pooled encoder output, invariant to where things are in the crop); ``feature_map`` is
#: the last convolutional map before pooling, flattened (it keeps the layout, which
#: matters for centred objects such as digits, not for cells at random positions);
#: ``projection`` is the projector head's output. Which one ``bioaug embed`` uses by
#: default is declared by each backbone (:func:`bioaug.models.default_embed_layer`).
EMBED_LAYERS: dict[str, str] = {
    "backbone": "pooled encoder output",
    "feature_map": "last convolutional map before pooling, flattened (keeps the layout)",
    "projection": "projector head output",
}

#: ``layer="all"`` (``bioaug embed --layer all``): every probe layer of the backbone.
ALL_LAYERS = "all"


def probe_layers(backbone: nn.Module) -> list[str]:
    """The intermediate layers ``backbone`` can be probed at (its ``probe_layers()``: VGG
    and ResNet stages, ViT blocks), in depth order; empty for a backbone without any.

    Intermediate layers often embed better than the last (Kraus et al. 2024, "ViTally
    Consistent"); see :mod:`bioaug.models.probe`.
    """
    layers = getattr(backbone, "probe_layers", None)
    return list(layers()) if callable(layers) else []


def backbone_features(backbone: nn.Module, x: torch.Tensor,
                      layers: list[str]) -> dict[str, torch.Tensor]:
    """Features of ``x`` at each of ``layers`` — ``backbone``, ``feature_map`` or a probe
    layer — with the probe layers taken from one forward pass of the backbone."""
    named = {"backbone": lambda: backbone(x),
             "feature_map": lambda: feature_map_embedding(backbone, x)}
    out = {layer: named[layer]() for layer in layers if layer in named}
    probed = [layer for layer in layers if layer not in named]
    if probed:
        out.update(backbone.probe_many(x, probed))
    return {layer: out[layer] for layer in layers}


def feature_map_embedding(backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``backbone.feature_map(x)`` flattened to ``(B, C·h·w)`` (the ``feature_map`` layer)."""
    fmap = getattr(backbone, "feature_map", None)
    if fmap is None:
        raise ConfigError(f"backbone '{getattr(backbone, 'name', type(backbone).__name__)}' "
                          "has no feature map to embed; use layer 'backbone'")
    return torch.flatten(fmap(x), 1)


class MethodConfig(BaseModel):
    """Base of the per-method hyperparameter models (unknown fields are rejected).

    Examples
    --------
    >>> from bioaug.methods import lookup_method
    >>> config = lookup_method("simclr").Config(temperature=0.2)
    >>> config.model_dump()
    {'proj_hidden_dim': 2048, 'proj_output_dim': 128, 'temperature': 0.2}
    >>> lookup_method("simclr").Config(temprature=0.2)
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for SimCLRConfig
    ...
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


def validate_config(method: str, config_cls: type[MethodConfig], hparams: dict[str, Any]):
    """``config_cls(**hparams)``, turning pydantic errors into one clear ConfigError."""
    try:
        return config_cls(**hparams)
    except ValidationError as exc:
        raise validation_error(exc, config_cls, what=f"method '{method}'") from None


def cosine_schedule(progress: float, start: float, end: float) -> float:
    """Cosine ramp from ``start`` (progress 0) to ``end`` (progress 1).

    ``end − (end − start)·(cos(π·progress) + 1)/2`` — BYOL's target-momentum schedule
    (Grill et al. 2020, τ = 1 − (1 − τ_base)(cos(πk/K) + 1)/2 with ``end = 1``).
    """
    progress = min(max(float(progress), 0.0), 1.0)
    return end - (end - start) * (math.cos(math.pi * progress) + 1.0) / 2.0


@torch.no_grad()
def momentum_update(target: nn.Module, online: nn.Module, m: float) -> None:
    """Exponential moving average of parameters: ``target = m·target + (1 − m)·online``.

    Only parameters move; the target's batch-norm running statistics are its own (as in
    MoCo and BYOL). ``m = 0`` copies the online weights, ``m = 1`` leaves the target as is.
    """
    targets = list(target.parameters())
    onlines = [o.detach() for o in online.parameters()]
    if len(targets) != len(onlines):
        raise ValueError(f"target has {len(targets)} parameters, online {len(onlines)}")
    if m == 1.0 or not targets:
        return
    with torch.no_grad():
        if m == 0.0:
            torch._foreach_copy_(targets, onlines)
        else:  # one fused pass over every tensor: target += (1 − m)·(online − target)
            torch._foreach_lerp_(targets, onlines, 1.0 - m)


def remaining_init_fraction(momenta: list[float]) -> float:
    """How much of its random initialisation an EMA encoder still holds after the updates.

    ``target_T = Π m_t · target_0 + …``: the product of the momenta of the ``T`` updates.
    """
    fraction = 1.0
    for m in momenta:
        fraction *= m
    return fraction


class Method(nn.Module):
    """A self-supervised method: backbone + projector + a loss over augmented views.

    Examples
    --------
    A subclass declares its name, views, ``Config`` and recipe, builds its heads and returns
    ``{"loss": …}`` from :meth:`training_loss`; :func:`~bioaug.methods.build_method` builds
    a registered one:

    >>> import torch
    >>> from bioaug.methods import build_method
    >>> from bioaug.models import build_backbone
    >>> _ = torch.manual_seed(0)
    >>> byol = build_method("byol", build_backbone("vgg_mnist", in_channels=1, width=0.25))
    >>> byol.name, byol.n_views, byol.recipe.optimizer
    ('byol', 2, 'adamw')
    >>> byol.layers()[:3]
    ['backbone', 'feature_map', 'projection']
    """

    name: ClassVar[str] = "method"
    #: human-readable name and paper, for help texts and tables
    title: ClassVar[str] = ""
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    #: the recommended optimiser settings (see :mod:`bioaug.methods.recipe`); a method that
    #: declares none gets the short-run AdamW recipe the shipped methods use
    recipe: ClassVar[Recipe] = Recipe(optimizer="adamw", lr=1.5e-3, lr_scaling="sqrt",
                                      weight_decay=1e-4)
    #: views per image the method takes; ``None``: any number from ``min_views`` on
    n_views: ClassVar[int | None] = 2
    min_views: ClassVar[int] = 2
    embed_layers: ClassVar[tuple[str, ...]] = tuple(EMBED_LAYERS)
    #: the registered backbones the method works on; ``None``: every backbone
    backbones: ClassVar[tuple[str, ...] | None] = None

    backbone: nn.Module
    projector: nn.Module

    def __init__(self, backbone: nn.Module, config: MethodConfig) -> None:
        super().__init__()
        if not isinstance(getattr(backbone, "out_dim", None), int):
            raise ConfigError(
                f"method '{self.name}': the backbone must have an integer out_dim "
                "(build it with bioaug.models.build_backbone)"
            )
        self.backbone = backbone
        self.config = config
        self.feature_dim: int = backbone.out_dim

    # -- hyperparameters -------------------------------------------------------------
    @property
    def hparams(self) -> dict[str, Any]:
        """The validated hyperparameters, defaults filled in."""
        return self.config.model_dump()

    def lr_scales(self) -> dict[str, float]:
        """Factors on the learning rate of named submodules (``{"predictor": 10.0}``), which
        the optimiser gives groups of their own; empty: one rate for every parameter."""
        return {}

    # -- training --------------------------------------------------------------------
    def training_loss(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """The loss for one batch of views: ``{"loss": scalar, extra detached scalars}``."""
        raise NotImplementedError

    def after_step(self, progress: float) -> None:
        """Called after each optimiser step; ``progress`` = fraction of training done in [0, 1]."""

    def before_step(self, progress: float, epoch: float) -> None:
        """Called before each step's loss: ``progress`` done in [0, 1], ``epoch`` the
        (fractional) epochs done; for schedules counted in epochs (DINO's temperature)."""

    def before_optimizer_step(self) -> None:
        """Called after backward and gradient clipping, before the optimiser step (DINO
        drops its head's last-layer gradients there while that layer is frozen)."""

    def health_warnings(self) -> list[str]:
        """What the last training steps say went wrong (a collapse), each message saying
        what to change; read by the training loop at the end of a run. The base has none."""
        return []

    # -- recipe checks ---------------------------------------------------------------
    @classmethod
    def target_momentum(cls, config: MethodConfig, progress: float) -> float | None:
        """The momentum of the EMA (key/target) encoder at ``progress``; None: no EMA encoder."""
        return None

    @classmethod
    def run_warnings(cls, config: MethodConfig, *, n_items: int, batch_size: int,
                     total_steps: int) -> list[str]:
        """Settings in ``config`` that cannot work for a run of ``total_steps`` steps.

        The base checks the momentum encoder: after the run it must hold less than half of
        its random initialisation (``Π m_t ≤ 0.5``), else the targets stay mostly random.
        Each message says what to change.
        """
        if cls.target_momentum(config, 0.0) is None or total_steps < 1:
            return []
        left = cls._init_left(config, total_steps)
        if left <= 0.5:
            return []
        ramp = {"momentum_end": 1.0} if "momentum_end" in type(config).model_fields else {}
        better = [m for m in (0.996, 0.99, 0.98, 0.95, 0.9, 0.8)
                  if cls._init_left(config.model_copy(update={"momentum": m, **ramp}),
                                    total_steps) <= 0.5]
        fix = (f"use momentum={better[0]}" + (" with momentum_end=1.0" if ramp else "")
               if better else "train for more steps or use a lower momentum")
        return [f"{cls.name}: with momentum {cls._describe_momentum(config)} the "
                f"{cls._ema_what} encoder would still be {left:.0%} its random "
                f"initialisation after {total_steps} steps; {fix}"]

    _ema_what: ClassVar[str] = "momentum"

    @classmethod
    def _init_left(cls, config: MethodConfig, total_steps: int) -> float:
        return remaining_init_fraction(
            [float(cls.target_momentum(config, (s + 1) / total_steps) or 0.0)
             for s in range(total_steps)])

    @classmethod
    def _describe_momentum(cls, config: MethodConfig) -> str:
        start, end = cls.target_momentum(config, 0.0), cls.target_momentum(config, 1.0)
        return f"{start:g} (fixed)" if start == end else f"{start:g} → {end:g} (cosine)"

    def check_view_sizes(self, sizes: list[tuple[int, int]]) -> None:
        """Refuse view sizes (height, width) the method cannot train on, before the first
        step (a dry run makes this check too). The base accepts every size."""

    def configure_for_dataset(self, n_items: int, batch_size: int) -> None:
        """Adapt to the dataset size and the **global** batch size (all ranks together).

        Call once, before building the optimiser, wrapping in DDP or loading a state dict.
        The base checks the batch fits the data; subclasses adapt sizes (MoCo's queue).
        """
        for label, value in (("n_items", n_items), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"method '{self.name}': {label} must be a positive integer, got {value!r}")
        if batch_size < 2:
            raise ConfigError(
                f"method '{self.name}': batch size must be at least 2 (batch norm and "
                f"contrastive losses need several samples), got {batch_size}"
            )
        if batch_size > n_items:
            raise ConfigError(
                f"method '{self.name}': batch size {batch_size} is larger than the dataset "
                f"({n_items} items); use a batch size ≤ {n_items}"
            )

    def _check_views(self, views: list[torch.Tensor]) -> None:
        if len(views) != self.n_views:
            raise ConfigError(
                f"method '{self.name}' needs {self.n_views} views per image, the protocol "
                f"gives {len(views)}; give the protocol {self.n_views} views "
                "(e.g. a second view '- same_as: 0')"
            )
        shapes = {tuple(v.shape[:2]) for v in views}
        if len(shapes) != 1:
            raise ConfigError(
                f"method '{self.name}': views disagree in batch size or channels: "
                f"{[tuple(v.shape) for v in views]}"
            )

    def use_global_batchnorm(self, device: torch.device | str | None = None) -> Method:
        """Make batch norm use global-batch statistics under DDP (see GlobalBatchNorm).

        Call before wrapping in DistributedDataParallel; in one process nothing changes
        numerically. With it, a multi-process run matches a single process with the same
        global batch (MoCo: unless ``shuffle_bn``, which keeps its key encoder's batch norm
        per rank on a shuffled batch, as in the paper). On CUDA ``device`` torch's
        SyncBatchNorm is used, elsewhere :class:`~bioaug.methods.distributed.GlobalBatchNorm`.
        The training loop calls this for every multi-process run.
        """
        from bioaug.methods.distributed import convert_to_global_batchnorm

        cuda = device is not None and torch.device(device).type == "cuda"
        skip = set(self._local_batchnorm_children())
        for name, child in list(self.named_children()):
            if name not in skip:
                new = (nn.SyncBatchNorm.convert_sync_batchnorm(child) if cuda
                       else convert_to_global_batchnorm(child))
                setattr(self, name, new)
        return self

    def _local_batchnorm_children(self) -> tuple[str, ...]:
        """Names of submodules whose batch norm must stay per rank."""
        return ()

    # -- inference -------------------------------------------------------------------
    def project(self, features: torch.Tensor) -> torch.Tensor:
        """Projector output for backbone features (what ``layer='projection'`` returns)."""
        return self.projector(features)

    def layers(self) -> list[str]:
        """Every layer :meth:`embed` takes: :data:`EMBED_LAYERS`, then the backbone's
        probe layers (stages or blocks, see :func:`probe_layers`) in depth order."""
        return [*self.embed_layers, *probe_layers(self.backbone)]

    def check_layers(self, layers: list[str]) -> None:
        """ConfigError naming the first layer this model lacks, listing the valid ones."""
        valid = self.layers()
        for layer in layers:
            if layer not in valid:
                name = getattr(self.backbone, "name", type(self.backbone).__name__)
                raise ConfigError(
                    f"unknown embedding layer '{layer}'{did_you_mean(str(layer), valid)} for "
                    f"backbone '{name}'; its layers: {', '.join(valid)}"
                    + (f", or '{ALL_LAYERS}'" if probe_layers(self.backbone) else ""))

    def embed(self, x: torch.Tensor, layer: str = "backbone") -> torch.Tensor:
        """Features of images ``x`` at ``layer`` (a key of :data:`EMBED_LAYERS` or a probe
        layer of the backbone, see :meth:`layers`).

        Does not change train/eval mode nor gradient tracking: callers embedding a data set
        put the method in eval mode and use ``torch.inference_mode()``.
        """
        return self.embed_many(x, [layer])[layer]

    def embed_many(self, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        """Features of ``x`` at each of ``layers`` (probe layers from one forward pass)."""
        self.check_layers(layers)
        wanted = [layer for layer in layers if layer != "projection"]
        out = backbone_features(self.backbone, x, wanted)
        if "projection" in layers:
            features = out["backbone"] if "backbone" in out else self.backbone(x)
            out["projection"] = self.project(features)
        return {layer: out[layer] for layer in layers}

    def forward(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Same as :meth:`training_loss` (so DDP wrapping works through ``__call__``)."""
        return self.training_loss(views)
