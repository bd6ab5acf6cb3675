"""Checks and builders run before training starts: every input mistake is caught here.

:func:`prepare_run` makes them all, in this order, and is the one function both a run
(:func:`bioaug.train.loop.train`) and its dry run (``bioaug train --dry-run``,
:func:`bioaug.train.loop.resolve_run`) call, so a dry run accepts exactly what the run
accepts: the output folder (new, or a run with ``resume``; never an input) → method and
backbone names → store → batch size vs store and processes → the method's recipe → protocol
(+ crop override) → channel names → pipeline (channel count) → the ``--positives`` /
``--batches`` columns → crop vs stored image size → non-finite pixels in a float store →
the kNN store → the model (MoCo's queue vs the batch) → views vs method → the run to
resume (same options, weights and optimiser state that fit).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from bioaug.data.store import FINITE_CHUNK, Store, nonfinite_items
from bioaug.errors import CheckpointError, ConfigError, DataError, ProtocolError, unknown_choice
from bioaug.io import check_output, sha256_file
from bioaug.train.checkpoint import CHECKPOINT_NAME, load_model_state, read_checkpoint
from bioaug.train.config import TrainConfig, config_diff
from bioaug.train.data import Sampling, build_sampling
from bioaug.train.optim import build_optimizer, set_momentum
from bioaug.train.resolve import SOURCE_RECIPE, ResolvedConfig, resolve

if TYPE_CHECKING:
    from bioaug.augment import Pipeline
    from bioaug.methods.base import Method
    from bioaug.train.knn import KnnMonitor


@dataclass
class RunPlan:
    """A run's inputs, every one checked (see :func:`prepare_run`)."""

    resolved: ResolvedConfig
    store: Store
    protocol: Any
    protocol_text: str
    pipeline: Pipeline
    sampling: Sampling
    crop_sizes: list[tuple[int, int]]
    method: nn.Module
    header_sha256: str
    #: the checkpoint resumed from (its weights already in ``method``); None: a fresh start
    previous: dict[str, Any] | None
    #: the kNN monitor of ``knn_data`` (None without one)
    knn: KnnMonitor | None = None

    @property
    def config(self) -> TrainConfig:
        """The resolved configuration (every recipe value filled in)."""
        return self.resolved.config


def prepare_run(config: TrainConfig, *, world_size: int, resume: bool = False,
                force: bool = False) -> RunPlan:
    """Every check a run makes before its first step, and what they build.

    Builds the model on the CPU (seeded) and, when resuming, loads the saved weights into it
    and checks that the saved optimiser state fits. Raises the run's errors: nothing here
    writes a file or touches an accelerator, so a dry run calls this too.
    """
    from bioaug.augment import build_pipeline

    check_run_output(config, resume=resume)
    method_cls = check_names(config)
    store = Store.open(config.data)
    check_batch(config, len(store), world_size)
    resolved = resolve(config, len(store), method_cls=method_cls)
    cfg = resolved.config
    protocol, text = load_run_protocol(cfg)
    check_protocol_vs_store(protocol, store, cfg)
    pipeline = build_pipeline(protocol, store.n_channels, store.channels)
    sampling = build_sampling(store.obs, cfg, where=store.path)  # --positives/--batches
    crop_sizes = check_crops(pipeline, store, cfg)
    check_finite_store(store)
    knn = None
    if cfg.knn_data is not None:  # checks the kNN store (labels, channels)
        from bioaug.train.knn import KnnMonitor

        knn = KnnMonitor(cfg.knn_data, channels=store.channels, k=cfg.knn_k,
                         max_items=cfg.knn_max_items, seed=cfg.seed)
    method = build_run_model(cfg, store.n_channels, len(store), method_cls=method_cls)
    resolved = with_model_hparams(resolved, method)
    cfg = resolved.config
    check_views(pipeline, method, cfg)
    method.check_view_sizes(crop_sizes)
    header_sha256 = sha256_file(store.path / "header.json")
    previous = previous_run(cfg, text, header_sha256, force=force)
    if previous is not None:
        load_previous_model(method, previous, cfg, force=force)
        load_optimizer_state(build_run_optimizer(method, cfg), previous, cfg)
    return RunPlan(resolved, store, protocol, text, pipeline, sampling, crop_sizes, method,
                   header_sha256, previous, knn)


def check_run_output(config: TrainConfig, *, resume: bool) -> None:
    """``--out`` must be a new or empty directory, or (with ``resume``) a run; never one of
    the run's inputs (the store, the kNN store, the protocol file) nor a folder holding one."""
    inputs = [config.data, config.knn_data]
    if Path(config.protocol).is_file():
        inputs.append(Path(config.protocol))
    check_output(config.out, "run", inputs=inputs, replace=resume, replace_flag="--resume")
    out = Path(config.out).resolve()
    for store in (config.data, config.knn_data):  # a store is rebuilt whole by `data prepare`
        if store is not None and out.is_relative_to(Path(store).resolve()):
            raise ConfigError(f"--out {config.out} is inside the store {store}; a run there "
                              "would be lost when the store is rebuilt",
                              hint="choose an --out outside the store")


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


def with_model_hparams(resolved: ResolvedConfig, method: nn.Module) -> ResolvedConfig:
    """``resolved`` with the hyperparameters the built method settled on: those left unset
    that follow the backbone (Barlow Twins' and VICReg's projector widths) get their
    values, so the printed configuration, ``RUN/config.yaml`` and a resumed run's check
    all see the widths the model has."""
    effective = method_hparams(method)
    given = resolved.config.method_kwargs
    sources = dict(resolved.sources)
    for key, value in effective.items():
        if given.get(key) is None and value is not None:
            sources[f"method_kwargs.{key}"] = f"{SOURCE_RECIPE}, for this backbone"
    return replace(resolved, config=resolved.config.model_copy(update={"method_kwargs": effective}),
                   sources=sources)


def method_hparams(method: nn.Module) -> dict[str, Any]:
    """The method's effective hyperparameters as a plain dict (for the record)."""
    cfg = getattr(method, "config", None)
    if hasattr(cfg, "model_dump"):
        return cfg.model_dump(mode="json")
    return dict(getattr(method, "hparams", {}) or {})


def check_finite_store(store: Store, chunk: int = FINITE_CHUNK) -> None:
    """A store with NaN or infinite pixels → DataError naming the items (training on them
    would run until the loss is NaN)."""
    bad = nonfinite_items(store, chunk)
    if len(bad):
        shown = ", ".join(str(int(i)) for i in bad[:5]) + (" …" if len(bad) > 5 else "")
        noun = "item" if len(bad) == 1 else "items"
        raise DataError(f"{noun} {shown} ({len(bad)} of {len(store)} items) "
                        f"{'has' if len(bad) == 1 else 'have'} NaN or infinite pixels",
                        where=store.path, hint="fix or drop those items (e.g. rebuild the "
                        "store from clean images) before training")


def previous_run(config: TrainConfig, protocol_text: str, header_sha256: str, *,
                 force: bool) -> dict[str, Any] | None:
    """The checkpoint in ``config.out`` to resume from (None: a fresh start). One written
    with another configuration, protocol or store is a ConfigError listing the
    differences, unless ``force``."""
    path = Path(config.out) / CHECKPOINT_NAME
    if not path.exists():
        return None
    data = read_checkpoint(path)
    diffs = config_diff(dict(data["config"]), config.to_plain())
    if data.get("protocol_text") != protocol_text:
        diffs["protocol (file content)"] = ("<as saved in the checkpoint>", "<changed>")
    if (data.get("store") or {}).get("header_sha256") != header_sha256:
        diffs["data (store content)"] = ("<as saved in the checkpoint>", "<changed>")
    if diffs and not force:
        lines = [f"{k}: {old!r} → {new!r}" for k, (old, new) in diffs.items()]
        raise ConfigError("cannot resume: the run was started with another configuration:"
                          "\n  " + "\n  ".join(lines), where=path,
                          hint="use the original options, or --force to resume anyway "
                          "with the new ones")
    return data


def load_previous_model(method: nn.Module, previous: dict[str, Any], config: TrainConfig, *,
                        force: bool) -> None:
    """The saved weights into ``method``; weights of another model → a clear error."""
    path = Path(config.out) / CHECKPOINT_NAME
    try:
        load_model_state(method, previous["model"], path)
    except CheckpointError:
        if not force:
            raise
        raise ConfigError("cannot resume with --force: the saved weights do not fit the new "
                          "model (method, backbone or width changed)", where=path,
                          hint="--force resumes with new training options, not a new model; "
                          "start a new run (another --out)") from None


def build_run_optimizer(method: Method, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser of a resolved config over ``method``'s parameters."""
    return build_optimizer(
        method, config.optimizer, config.effective_lr(), config.momentum, config.weight_decay,
        exclude_bias_norm=config.exclude_bias_norm, trust_coefficient=config.lars_eta,
        clip=config.lars_clip, adam_beta2=config.adam_beta2, lr_scales=method.lr_scales())


def load_optimizer_state(optimizer: torch.optim.Optimizer, previous: dict[str, Any],
                         config: TrainConfig) -> None:
    """The saved optimiser state into ``optimizer``, keeping ``config``'s momentum and β₂
    (they differ from the saved ones only under --force); one that does not fit →
    ConfigError."""
    path = Path(config.out) / CHECKPOINT_NAME
    try:
        optimizer.load_state_dict(previous["optimizer"])
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"the optimiser state in {path} does not fit this run ({exc})",
                          hint="start a new run (another --out)") from None
    set_momentum(optimizer, config.momentum, config.adam_beta2)
