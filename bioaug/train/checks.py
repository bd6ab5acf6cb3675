"""Checks and builders run before training starts: every input mistake is caught here.

Order: method/backbone names → store → protocol (+ crop override) → channel names →
pipeline (channel count) → crop vs stored image size → views vs method → batch size vs
store, processes and the method (MoCo's queue).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from bioaug.data.store import Store
from bioaug.errors import ConfigError, DataError, ProtocolError, unknown_choice
from bioaug.train.config import TrainConfig

if TYPE_CHECKING:
    from bioaug.methods.base import Method


def check_names(config: TrainConfig) -> type[Method]:
    """The method's class; an unknown method or backbone → ConfigError listing the known."""
    from bioaug.methods import lookup_method
    from bioaug.models import backbone_names

    method = lookup_method(config.method)
    if config.backbone not in backbone_names():
        raise ConfigError(unknown_choice("backbone", config.backbone, backbone_names()),
                          where="backbone")
    return method


def load_run_protocol(config: TrainConfig) -> tuple[Any, str]:
    """The protocol to train with (crop override applied) and its original text."""
    from bioaug.augment import load_protocol, protocol_from_dict

    protocol = load_protocol(config.protocol)
    text = str(getattr(protocol, "text", "") or protocol.to_yaml())
    if config.crop is not None:
        d = protocol.to_dict()
        for view in d.get("views", []):
            if isinstance(view, dict) and "crop_size" in view:
                view["crop_size"] = int(config.crop)
        protocol = protocol_from_dict(d, source=f"{config.protocol} (crop override "
                                      f"{config.crop})")
    return protocol, text


def _size_pair(size: Any) -> tuple[int, int]:
    if isinstance(size, (list, tuple)):
        return int(size[0]), int(size[-1])
    return int(size), int(size)


def check_protocol_vs_store(protocol: Any, store: Store, config: TrainConfig) -> None:
    """Channel names declared by the protocol must be the store's, in order (case aside)."""
    from bioaug.augment import same_channels

    names = getattr(protocol, "channels", None)
    if names is None:
        return
    names = list(names)
    if len(names) != store.n_channels:
        raise ProtocolError(
            f"the protocol is for {len(names)} channels {names} but the store {store.path} has "
            f"{store.n_channels} channels {store.channels}", where=config.protocol,
            hint="use a protocol written for this data, or remove `channels:` from it")
    if not same_channels(names, store.channels):
        raise ProtocolError(
            f"the protocol's channels {names} are not the store's channels {store.channels} "
            f"({store.path})", where=config.protocol,
            hint="fix `channels:` in the protocol (same names, same order as the store)")


def check_crops(pipeline: Any, store: Store, config: TrainConfig) -> list[tuple[int, int]]:
    """Every view's crop must fit inside the stored images."""
    h, w = store.image_size
    sizes = [_size_pair(s) for s in pipeline.crop_sizes]
    for i, (ch, cw) in enumerate(sizes):
        if ch > h or cw > w:
            what = f"--crop {config.crop}" if config.crop is not None else \
                f"views[{i}].crop_size {ch if ch == cw else [ch, cw]}"
            raise ConfigError(
                f"{what} is larger than the stored images ({h}×{w} in {store.path})",
                where=config.protocol if config.crop is None else "crop",
                hint=f"use a crop size ≤ {min(h, w)}, or build the store with larger crops")
    return sizes


def check_batch(config: TrainConfig, n_items: int, world_size: int) -> None:
    if config.batch_size % world_size:
        raise ConfigError(f"the global batch size {config.batch_size} is not divisible by the "
                          f"{world_size} processes", where="batch_size",
                          hint=f"use a multiple of {world_size}")
    if n_items < config.batch_size:
        raise DataError(f"the store has {n_items} items, fewer than one batch of "
                        f"{config.batch_size}", where=config.data,
                        hint=f"use --batch-size ≤ {n_items} or a larger store")


def build_run_model(config: TrainConfig, in_channels: int, n_items: int, *,
                    method_cls: type[Method] | None = None) -> nn.Module:
    """Backbone + method, seeded, sized for the dataset (queue vs batch checked here).

    ``method_cls`` is the class :func:`check_names` returned (looked up by name otherwise).
    """
    from bioaug.methods import build_method
    from bioaug.models import build_backbone

    torch.manual_seed(config.seed)
    backbone = build_backbone(config.backbone, in_channels, **config.backbone_options())
    method = build_method(method_cls or config.method, backbone, **config.method_kwargs)
    method.configure_for_dataset(n_items, config.batch_size)
    return method


def check_views(pipeline: Any, method: nn.Module, config: TrainConfig) -> None:
    need = getattr(method, "n_views", 2)
    if need is None:  # any number from min_views on (multi-crop methods)
        least = int(getattr(method, "min_views", 2))
        if pipeline.n_views < least:
            raise ProtocolError(
                f"method '{config.method}' needs at least {least} views per image but the "
                f"protocol makes {pipeline.n_views}", where=config.protocol,
                hint="add views (e.g. `count: 2` on a view)")
        return
    if pipeline.n_views != need:
        raise ProtocolError(
            f"method '{config.method}' needs {need} views per image but the protocol makes "
            f"{pipeline.n_views}", where=config.protocol,
            hint="add a view (e.g. `- same_as: 0`) or remove one"
            + (" (a view's `count: N` makes N views)" if pipeline.n_views > need else ""))


def method_hparams(method: nn.Module) -> dict[str, Any]:
    """The method's effective hyperparameters as a plain dict (for the record)."""
    cfg = getattr(method, "config", None)
    if hasattr(cfg, "model_dump"):
        return cfg.model_dump(mode="json")
    return dict(getattr(method, "hparams", {}) or {})
