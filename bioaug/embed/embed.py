"""Embed a crop store with trained models into an AnnData (one row per item).

Sources of features (exactly one kind per call):

* **checkpoints** (``RUN_DIR`` or ``checkpoint.pt``; several for fusion): the trained
  method's ``embed(x, layer)`` — ``"backbone"`` (encoder output, the usual evaluation
  layer), ``"feature_map"`` (the last map before pooling, flattened) or ``"projection"``
  (projector head output). Without a ``layer``, each checkpoint is embedded at the layer
  its backbone declares (:func:`bioaug.models.default_embed_layer`); the layer used and
  whether it was given or the backbone's default are recorded in ``uns["bioaug"]``.
  Any intermediate layer the backbone lists (``probe_layers()``: ``stage1`` … of VGG and
  ResNet, pooled; ``block1`` … of ViTs, the class token) may be given too, and ``"all"``
  writes every one of them beside the default layer (see *Layer probing* below).
* **backbone** by name: ``"resnet101_supervised"`` is the supervised ImageNet ResNet-101
  baseline of Bendidi et al. (2023) (weights read from disk only, crops resized to 224 px,
  the ImageNet scale; ``backbone_kwargs`` overrides, e.g. ``{"input_size": None}``); any
  other registered backbone is embedded with seeded random weights (a random-network
  baseline), at ``"backbone"`` or ``"feature_map"`` (default: the backbone's layer).
* **raw** pixels: each channel area-averaged to ``raw_size`` × ``raw_size`` (default 16) and
  flattened — the floor any learned representation must beat.

Evaluation-time preprocessing for checkpoints: the model sees items at the size it was
trained on, the crop size of its augmentation protocol. Items of another size are, by
default, **resized** whole to that size (bilinear, antialiased): random-resized-crop
protocols train on resized regions covering most of the item, so the whole item at the
crop size is the view closest to training. ``preprocess="center_crop"`` takes the centre
crop instead (cells at native magnification), ``"none"`` feeds the stored size.

Results (see ``docs/evaluation.md``): ``obsm["X_bioaug"]`` the embedding; with several
checkpoints ``obsm["X_bioaug_0"]``, ``["X_bioaug_1"]``… per model, ``obsm["X_bioaug_fused"]``
the concatenation of the per-model L2-normalised embeddings (the fusion of complementary
invariances of Ericsson et al., BMVC 2022) and ``obsm["X_bioaug"]`` = the first model's.
``uns["bioaug"]`` holds the provenance.

Layer probing (an intermediate layer often embeds cells better than the last: Kraus et
al. 2024, "ViTally Consistent"): with ``layer="all"``, ``obsm["X_bioaug"]`` is the
backbone's default layer as without it, and ``obsm["X_bioaug_<layer>"]`` holds each probe
layer (``X_bioaug_stage1`` …), all from one pass of the model; ``uns["bioaug"]["layers"]``
lists them in depth order. ``bioaug evaluate`` then scores every layer in one report.

Large screens: ``shard=(i, n)`` embeds only the ``i``-th of ``n`` contiguous, equal blocks
of items (``uns["bioaug"]["shard"]`` records which), so a cluster array job can embed a
screen in parallel; :func:`bioaug.embed.merge.merge_shards` joins the shards into the
AnnData one full run would have given.

Non-finite pixels (NaN, ±inf) in a float store, or non-finite features from a model, are
an error naming the items: they would otherwise become NaN rows that poison every
distance computed later.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from bioaug.data.store import HEADER, OBS, Store, nonfinite_items
from bioaug.device import pick_device
from bioaug.errors import CheckpointError, ConfigError, DataError, did_you_mean, unknown_choice
from bioaug.io import atomic_write_json, preallocate, provenance, sha256_file, sha256_text
from bioaug.methods.base import ALL_LAYERS, EMBED_LAYERS, backbone_features, probe_layers
from bioaug.progress import progress
from bioaug.seeds import check_seed

LAYERS = tuple(EMBED_LAYERS)
PREPROCESS = ("resize", "center_crop", "none")
#: obsm key of probe layer ``layer`` (``X_bioaug_stage2``) with ``layer="all"``.
LAYER_KEY = "X_bioaug_{}"
#: Metadata columns stored as categoricals (BBBC021 and natural-image stores).
CATEGORICAL_COLUMNS = ("plate", "well", "site", "replicate", "batch", "compound",
                       "concentration", "moa", "label", "split")
SUPERVISED_INPUT_SIZE = 224
PROGRESS_FILE = "progress.json"
DEFAULT_RAW_SIZE = 16


@dataclass
class Embedder:
    """One feature extractor: a module, the input size it wants, and its provenance."""

    key: str
    forward: Callable[[torch.Tensor], torch.Tensor]
    out_dim: int
    size: int | None = None
    preprocess: str = "none"
    info: dict[str, Any] = field(default_factory=dict)


def prepare_batch(x: torch.Tensor, size: int | None, mode: str) -> torch.Tensor:
    """Bring a batch ``(B, C, H, W)`` to ``size`` × ``size`` by resizing or centre-cropping."""
    if size is None or mode == "none" or tuple(x.shape[-2:]) == (size, size):
        return x
    if mode == "resize":
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                             antialias=True)
    h, w = x.shape[-2:]
    if h < size or w < size:  # a crop larger than the item: resize instead
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                             antialias=True)
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top:top + size, left:left + size]


def _batches(store: Store, batch_size: int, first: int = 0, stop: int | None = None) -> Any:
    """Float batches of the store's items ``first`` … ``stop - 1``, the next read in a
    background thread while the current one is embedded."""
    stop = len(store) if stop is None else stop
    starts = list(range(first, stop, batch_size))
    if not starts:
        return

    def read(a: int) -> np.ndarray:
        return store.read_float(slice(a, min(a + batch_size, stop)))

    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(read, starts[0])
        for i, _ in enumerate(starts):
            batch = future.result()
            if i + 1 < len(starts):
                future = pool.submit(read, starts[i + 1])
            yield batch


def _describe_items(items: np.ndarray, n_total: int, verb: str = "") -> str:
    """``"items 3, 7 (2 of 10 items) have"`` — the first few item indices and the count."""
    shown = ", ".join(str(int(i)) for i in items[:5])
    more = " …" if len(items) > 5 else ""
    one = len(items) == 1
    text = f"{'item' if one else 'items'} {shown}{more} ({len(items)} of {n_total} items)"
    if verb:
        text += " " + ({"have": "has"}.get(verb, verb) if one else verb)
    return text


def check_finite_pixels(store: Store, items: range | None = None, chunk: int = 4096) -> None:
    """DataError naming the items with NaN or infinite pixels (float stores only: integer
    pixels are always finite)."""
    items = range(len(store)) if items is None else items
    found = nonfinite_items(store, chunk, items)
    if len(found):
        raise DataError(f"{_describe_items(found, len(items), 'have')} NaN or infinite pixels",
                        where=store.path, hint="fix or drop those items (e.g. rebuild the "
                        "store from clean images) before embedding")


def _signature(store: Store, embedders: Sequence[Embedder], items: range) -> str:
    header = store.path / "header.json"
    record = {"store": str(store.path), "n": len(store),
              "header": sha256_file(header) if header.is_file() else None,
              "models": [[e.key, e.out_dim, e.size, e.preprocess, e.info] for e in embedders]}
    if (items.start, items.stop) != (0, len(store)):
        record["items"] = [items.start, items.stop]
    return sha256_text(json.dumps(record, sort_keys=True, default=str))


def _open_outputs(store: Store, embedders: Sequence[Embedder], work_dir: Path | None,
                  items: range) -> tuple[list[np.ndarray], int, dict[str, Any] | None]:
    """Output arrays (in memory, or ``.npy`` memory maps in ``work_dir``) and items done
    (counted from ``items.start``)."""
    n = len(items)
    if work_dir is None:
        return [np.empty((n, e.out_dim), dtype=np.float32) for e in embedders], 0, None
    work_dir.mkdir(parents=True, exist_ok=True)
    signature = _signature(store, embedders, items)
    state_file = work_dir / PROGRESS_FILE
    state = None
    if state_file.is_file():
        with contextlib.suppress(ValueError, OSError):
            state = json.loads(state_file.read_text(encoding="utf-8"))
    files = [work_dir / f"embedding_{i}.npy" for i in range(len(embedders))]
    resume = (isinstance(state, dict) and state.get("signature") == signature
              and all(f.is_file() for f in files))
    outs = [np.lib.format.open_memmap(f, mode="r+" if resume else "w+", dtype=np.float32,
                                      shape=(n, e.out_dim))
            for f, e in zip(files, embedders, strict=True)]
    for f in files:  # a full disk: an error now, not a crash when a page is written
        preallocate(f)
    done = int(state["done"]) if resume and state is not None else 0
    if not resume:
        state = {"signature": signature, "done": 0}
        atomic_write_json(state_file, state)
    return outs, done, state


def run_embedders(store: Store, embedders: Sequence[Embedder], *, batch_size: int = 256,
                  device: torch.device | str = "cpu", desc: str = "embed",
                  work_dir: str | os.PathLike | None = None, commit_every: int = 16,
                  items: range | None = None) -> list[np.ndarray]:
    """Stream the store (or its ``items``, a contiguous range) through every embedder;
    memory is bounded by the batch size. Returns one ``(len(items), D)`` array per embedder.

    With ``work_dir`` the outputs are ``.npy`` memory maps there and progress is committed
    every ``commit_every`` batches: a run that is interrupted and started again with the
    same store and models continues after the last committed item. Non-finite features
    are a :class:`CheckpointError` naming the items.
    """
    device = torch.device(device)
    items = range(len(store)) if items is None else items
    wd = Path(work_dir) if work_dir is not None else None
    outs, start, state = _open_outputs(store, embedders, wd, items)
    bar = progress(total=len(items), initial=start, desc=desc, unit="item")
    n_batches = 0

    def commit() -> None:
        if wd is not None and state is not None:
            for out in outs:
                out.flush()  # type: ignore[attr-defined]
            state["done"] = start
            atomic_write_json(wd / PROGRESS_FILE, state)

    try:
        with torch.inference_mode():
            for batch in _batches(store, batch_size, items.start + start, items.stop):
                x = torch.from_numpy(batch).to(device, non_blocking=True)
                for e, out in zip(embedders, outs, strict=True):
                    feats = e.forward(prepare_batch(x, e.size, e.preprocess))
                    if feats.ndim != 2 or feats.shape[1] != e.out_dim:
                        raise CheckpointError(f"model '{e.key}' returned features of shape "
                                              f"{tuple(feats.shape)}, expected (B, {e.out_dim})")
                    values = feats.float().cpu().numpy()
                    _check_finite_features(values, e, items.start + start, store)
                    out[start:start + len(batch)] = values
                start += len(batch)
                bar.update(len(batch))
                n_batches += 1
                if n_batches % commit_every == 0:
                    commit()
        commit()
    finally:
        bar.close()
    return outs


def _check_finite_features(values: np.ndarray, e: Embedder, first: int, store: Store) -> None:
    rows = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if len(rows):
        where = e.info.get("checkpoint") or e.info.get("backbone") or e.key
        raise CheckpointError(
            "the model gave NaN or infinite features for "
            f"{_describe_items(rows + first, len(store))} of the store", where=where,
            hint="the model's weights may have diverged in training; check its metrics.csv")


def parse_shard(text: str | tuple[int, int]) -> tuple[int, int]:
    """``"I/N"`` (or ``(I, N)``) → ``(I, N)`` with ``0 ≤ I < N``; ConfigError otherwise."""
    if isinstance(text, tuple):
        i, n = text
    else:
        parts = str(text).split("/")
        try:
            i, n = (int(p) for p in parts) if len(parts) == 2 else (None, None)
        except ValueError:
            i = n = None
        if i is None or n is None:
            raise ConfigError(f"--shard {text!r} is not of the form I/N",
                              hint="e.g. --shard 0/4 … --shard 3/4 (I counts from 0)")
    if isinstance(i, bool) or isinstance(n, bool) or n < 1 or not 0 <= i < n:
        raise ConfigError(f"--shard {i}/{n} is out of range: N must be ≥ 1 and 0 ≤ I < N",
                          hint="e.g. --shard 0/4 … --shard 3/4 (I counts from 0)")
    return int(i), int(n)


def shard_items(n_items: int, shard: tuple[int, int]) -> range:
    """The contiguous block of item indices that shard ``(i, n)`` of ``n_items`` covers."""
    i, n = shard
    return range(i * n_items // n, (i + 1) * n_items // n)


def embed_with_module(module: torch.nn.Module, store: Store | str | os.PathLike, *,
                      batch_size: int = 256, crop: int | None = None,
                      preprocess: str = "resize", device: str = "cpu") -> np.ndarray:
    """Embed a store with a plain feature module (``(B, C, H, W) → (B, D)``)."""
    st = store if isinstance(store, Store) else Store.open(store)
    module.eval()
    with torch.inference_mode():
        probe = module(torch.zeros(1, st.n_channels, *(st.image_size if crop is None
                                                       else (crop, crop))))
    e = Embedder("module", module, int(probe.shape[1]), crop, preprocess)
    return run_embedders(st, [e], batch_size=batch_size, device=device)[0]


# -- building embedders -------------------------------------------------------------------
def resolve_layer(layer: str | None, backbone: str) -> tuple[str, str]:
    """(layer, source): ``layer`` when given, else the default ``backbone`` declares."""
    from bioaug.models import default_embed_layer

    if layer is not None:
        return layer, "given"
    return default_embed_layer(backbone), f"default of backbone {backbone}"


def _checkpoint_embedder(path: str | os.PathLike, index: int, store: Store,
                         layer: str | None, preprocess: str, device: torch.device
                         ) -> Embedder:
    from bioaug.train.checkpoint import load_trained

    trained = load_trained(path, device=device)
    if trained.n_channels != store.n_channels:
        raise CheckpointError(
            f"the model was trained on {trained.n_channels}-channel images "
            f"({', '.join(trained.channels) or 'channels not recorded'}) but the store "
            f"{store.path} has {store.n_channels} ({', '.join(store.channels)})",
            where=trained.path, hint="embed a store with the channels the model was trained on")
    if trained.channels and [c.lower() for c in trained.channels] != \
            [c.lower() for c in store.channels]:
        warnings.warn(f"{trained.path}: trained on channels {trained.channels}, the store has "
                      f"{store.channels} (same count; embedding anyway)", stacklevel=3)
    method = trained.method
    names, source = _layer_plan(layer, trained.backbone_name, probe_layers(method.backbone))
    method.check_layers(names)
    size = trained.crop_size or store.image_size[0]
    info = {"run": str(Path(path)), "checkpoint": str(trained.path),
            "checkpoint_sha256": trained.checkpoint_sha256, "method": trained.method_name,
            "backbone": trained.backbone_name, "epoch": trained.epoch, "step": trained.step,
            "finished": trained.finished, "channels": list(trained.channels),
            "crop_size": trained.crop_size, "protocol_text": trained.protocol_text,
            "sampling": trained.sampling,
            "preprocess": preprocess if trained.crop_size and
            tuple(store.image_size) != (trained.crop_size,) * 2 else "none",
            "layer": names[0], "layer_source": source}
    if trained.sampling:  # which cells were positives: read by evaluate's leakage check
        info["sampling"] = trained.sampling
    probe = torch.zeros(2, store.n_channels, size, size, device=device)
    return _layers_embedder(str(index), lambda x: method.embed_many(x, names), names, probe,
                            trained.crop_size, preprocess, info)


def _layer_plan(layer: str | None, backbone: str, probe: list[str]) -> tuple[list[str], str]:
    """(layers to write, source): the main layer first (``obsm["X_bioaug"]``), then, for
    ``"all"``, every probe layer of the backbone."""
    if layer != ALL_LAYERS:
        main, source = resolve_layer(layer, backbone)
        return [main], source
    if not probe:
        raise ConfigError(f"backbone '{backbone}' lists no intermediate layers to probe; "
                          f"--layer {ALL_LAYERS} needs one that does",
                          hint=f"give one of the layers {', '.join(EMBED_LAYERS)}")
    main, source = resolve_layer(None, backbone)
    return [main, *probe], source


def _layers_embedder(key: str, many: Callable[[torch.Tensor], dict[str, torch.Tensor]],
                     names: list[str], probe: torch.Tensor, size: int | None,
                     preprocess: str, info: dict[str, Any]) -> Embedder:
    """One embedder for ``names`` (one forward pass; their features side by side); the
    width of each is recorded in ``info["layer_dims"]``, the first one's in ``out_dim``."""
    with torch.inference_mode():
        dims = {name: int(f.shape[1]) for name, f in many(probe).items()}
    info["out_dim"] = dims[names[0]]
    if len(names) > 1:
        info["layers"] = list(names[1:])
        info["layer_dims"] = dims

    def forward(x: torch.Tensor) -> torch.Tensor:
        feats = many(x)
        return torch.cat([feats[n].flatten(1) for n in names], dim=1)

    return Embedder(key, forward, sum(dims.values()), size, preprocess, info)


def split_layers(e: Embedder, feats: np.ndarray) -> dict[str, np.ndarray]:
    """obsm entries of one embedder: ``X_bioaug`` and, for ``"all"``, ``X_bioaug_<layer>``."""
    dims = e.info.get("layer_dims")
    if not dims:
        return {"X_bioaug": feats}
    out: dict[str, np.ndarray] = {}
    start = 0
    for i, (name, width) in enumerate(dims.items()):
        out["X_bioaug" if i == 0 else LAYER_KEY.format(name)] = \
            np.ascontiguousarray(feats[:, start:start + width])
        start += width
    return out


def _backbone_embedder(name: str, store: Store, device: torch.device,
                       kwargs: dict[str, Any] | None, seed: int,
                       layer: str | None = None) -> Embedder:
    from bioaug.models import build_backbone

    kw = dict(kwargs or {})
    info: dict[str, Any] = {"backbone": name}
    if name == "resnet101_supervised":
        kw.setdefault("input_size", SUPERVISED_INPUT_SIZE)
        info["weights"] = "ImageNet (torchvision), frozen"
    else:
        info["weights"] = f"random initialisation (seed {seed})"
    with torch.random.fork_rng(devices=[]):  # seeded weights; the caller's RNG is untouched
        torch.manual_seed(seed)
        model = build_backbone(name, store.n_channels, **kw).to(device).eval()
    if name == "resnet101_supervised" and getattr(model, "source", ""):
        info["weights_sha256"] = sha256_file(model.source)
        info["weights_file"] = str(model.source)
    info["kwargs"] = {k: v for k, v in kw.items() if v is not None}
    names, source = _layer_plan(layer, name, probe_layers(model))
    info.update(layer=names[0], layer_source=source)
    _check_backbone_layers(model, name, names)
    probe = torch.zeros(2, store.n_channels, *store.image_size, device=device)
    return _layers_embedder(name, lambda x: backbone_features(model, x, names), names, probe,
                            None, "none", info)


def _check_backbone_layers(model: torch.nn.Module, name: str, layers: list[str]) -> None:
    """ConfigError for a layer a named backbone (without a projector) does not have."""
    valid = ["backbone", *(["feature_map"] if hasattr(model, "feature_map") else []),
             *probe_layers(model)]
    for layer in layers:
        if layer == "projection":
            raise ConfigError("layer 'projection' needs a checkpoint (a named --backbone has "
                              f"no projector; its layers: {', '.join(valid)})")
        if layer not in valid:
            raise ConfigError(f"unknown layer '{layer}'{did_you_mean(layer, valid)} for "
                              f"backbone '{name}'; its layers: {', '.join(valid)}"
                              + (f", or '{ALL_LAYERS}'" if probe_layers(model) else ""))


def _raw_embedder(store: Store, raw_size: int) -> Embedder:
    size = (min(raw_size, store.image_size[0]), min(raw_size, store.image_size[1]))

    def forward(x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x, size).flatten(1)

    dim = store.n_channels * size[0] * size[1]
    return Embedder("raw", forward, dim, None, "none",
                    {"raw": f"area-averaged to {size[0]}×{size[1]} per channel, flattened",
                     "out_dim": dim})


# -- the AnnData ---------------------------------------------------------------------------
def obs_from_store(store: Store) -> pd.DataFrame:
    """The store's metadata with string index and metadata columns as categoricals."""
    obs = store.obs.copy()
    obs.index = pd.Index([str(i) for i in range(len(obs))], name="item")
    for col in obs.columns:
        if col in CATEGORICAL_COLUMNS or obs[col].dtype == object:
            if obs[col].dtype == object:
                obs[col] = obs[col].where(obs[col].isna(), obs[col].astype(str))
            obs[col] = obs[col].astype("category")
    return obs


def l2_normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def _check_fusable(infos: list[dict[str, Any]]) -> None:
    first = infos[0]
    for other in infos[1:]:
        if first.get("channels") and other.get("channels") and \
                list(first["channels"]) != list(other["channels"]):
            raise CheckpointError(
                f"cannot fuse models trained on different channels: {first['run']} has "
                f"{first['channels']}, {other['run']} has {other['channels']}",
                hint="fuse checkpoints trained on the same kind of store")


def _provenance(store: Store, kind: str, embedders: Sequence[Embedder],
                run: dict[str, Any]) -> dict[str, Any]:
    """``uns["bioaug"]`` of an embedding: the source, layer, store and models."""
    header_file, obs_file = store.path / HEADER, store.path / OBS
    return {
        "kind": kind,
        **_layer_record(embedders),
        "store": str(store.path),
        "store_header_sha256": sha256_file(header_file) if header_file.is_file() else None,
        "store_obs_sha256": sha256_file(obs_file) if obs_file.is_file() else None,
        "store_channels": store.channels,
        "store_image_size": list(store.image_size),
        "label_column": store.label_column,
        "n_items": len(store),
        "models": {e.key: e.info for e in embedders},
        "obsm": _obsm_record(embedders),
        "provenance": run,
    }


def _check_layer(layer: str | None, kind: str, n_models: int = 1) -> None:
    """ConfigError, before any model is loaded, for a layer the source of features cannot
    have (the backbone's own layers are checked once it is built)."""
    if layer is None:
        return
    if not isinstance(layer, str):
        raise ConfigError(f"layer must be a name, got {layer!r}")
    if kind == "raw" and layer not in LAYERS:
        raise ConfigError(unknown_choice("layer", layer, LAYERS))
    if kind == "raw" and layer != "backbone":
        raise ConfigError(f"layer '{layer}' needs a checkpoint (--raw gives the 'backbone' "
                          "layer only; a named --backbone 'backbone', 'feature_map' or its "
                          "stages / blocks)")
    if layer == ALL_LAYERS and n_models > 1:
        raise ConfigError(f"--layer {ALL_LAYERS} takes one checkpoint, got {n_models}",
                          hint="probe each model's layers in its own `bioaug embed`")


def _layer_record(embedders: Sequence[Embedder]) -> dict[str, Any]:
    """``layer`` (one per model, ``,``-joined when they differ), where it came from, and
    the probe layers written beside it (``layers``, with ``layer="all"``)."""
    layers = [str(e.info.get("layer", "backbone")) for e in embedders]
    sources = [str(e.info.get("layer_source", "raw pixels")) for e in embedders]
    one = len(set(layers)) == 1
    record: dict[str, Any] = {
        "layer": layers[0] if one else ",".join(layers),
        "layer_source": sources[0] if len(set(sources)) == 1 else ",".join(sources)}
    probed = embedders[0].info.get("layers") if len(embedders) == 1 else None
    if probed:
        record["layers"] = list(probed)
    return record


def _obsm_record(embedders: Sequence[Embedder]) -> dict[str, str]:
    """``uns["bioaug"]["obsm"]``: what each obsm key holds."""
    if len(embedders) > 1:
        return {"X_bioaug": "model 0",
                "X_bioaug_fused": "concatenation of L2-normalised X_bioaug_i"}
    info = embedders[0].info
    record = {"X_bioaug": "the embedding" + (f" (layer {info['layer']})"
                                             if info.get("layers") else "")}
    for name in info.get("layers") or []:
        record[LAYER_KEY.format(name)] = f"layer {name}"
    return record


@dataclass(frozen=True)
class Source:
    """Where the features come from: exactly one of trained ``checkpoints``, a named
    ``backbone`` or ``raw`` pixels, with the options of that source."""

    checkpoints: tuple[str | os.PathLike, ...] = ()
    backbone: str | None = None
    raw: bool = False
    layer: str | None = None
    preprocess: str = "resize"
    backbone_kwargs: dict[str, Any] | None = None
    raw_size: int = DEFAULT_RAW_SIZE
    seed: int = 0

    @property
    def kind(self) -> str:
        """``checkpoint``, ``backbone`` or ``raw`` (a key of :data:`SOURCES`)."""
        return "checkpoint" if self.checkpoints else "backbone" if self.backbone else "raw"

    def check(self) -> None:
        """ConfigError, before any model is loaded, for a request that cannot be served."""
        given = sum([bool(self.checkpoints), self.backbone is not None, bool(self.raw)])
        if given != 1:
            raise ConfigError("give exactly one source of features: checkpoint(s), a "
                              f"backbone name or raw pixels (got {given})",
                              hint="e.g. --checkpoint RUN_DIR, --backbone "
                                   "resnet101_supervised or --raw")
        _check_layer(self.layer, kind=self.kind, n_models=len(self.checkpoints))
        if self.preprocess not in PREPROCESS:
            raise ConfigError(unknown_choice("preprocessing", self.preprocess, PREPROCESS))
        check_seed(self.seed, "seed")


def _checkpoint_embedders(src: Source, store: Store, device: torch.device) -> list[Embedder]:
    embedders = [_checkpoint_embedder(p, i, store, src.layer, src.preprocess, device)
                 for i, p in enumerate(src.checkpoints)]
    _check_fusable([e.info for e in embedders])
    return embedders


def _named_backbone_embedders(src: Source, store: Store, device: torch.device
                              ) -> list[Embedder]:
    assert src.backbone is not None
    return [_backbone_embedder(src.backbone, store, device, src.backbone_kwargs, src.seed,
                               src.layer)]


def _raw_embedders(src: Source, store: Store, device: torch.device) -> list[Embedder]:
    return [_raw_embedder(store, src.raw_size)]


#: source kind → the embedders it builds for a store on a device.
SOURCES: dict[str, Callable[[Source, Store, torch.device], list[Embedder]]] = {
    "checkpoint": _checkpoint_embedders, "backbone": _named_backbone_embedders,
    "raw": _raw_embedders}


def _plan_items(store: Store, batch_size: int, shard: tuple[int, int] | str | None,
                aggregate: str | None) -> tuple[range, tuple[int, int] | None]:
    """(the items to embed, the shard as ``(i, n)`` or None), checked before any work."""
    if isinstance(batch_size, bool) or int(batch_size) < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if len(store) == 0:
        raise DataError(f"the store {store.path} holds no items")
    items = range(len(store))
    parsed = parse_shard(shard) if shard is not None else None
    if parsed is not None:
        if aggregate is not None:
            raise ConfigError("a shard cannot be aggregated: wells may span shards",
                              hint="merge the shards first (`bioaug embed merge … "
                                   "--aggregate well`)")
        items = shard_items(len(store), parsed)
        if len(items) == 0:
            raise ConfigError(f"shard {parsed[0]}/{parsed[1]} holds no items: the store has "
                              f"only {len(store)}", hint="use fewer shards than items")
    if aggregate is not None:
        from bioaug.embed.aggregate import check_aggregatable

        check_aggregatable(store.obs.columns, aggregate, where=store.path)
    return items, parsed


def _to_anndata(store: Store, items: range, embedders: Sequence[Embedder],
                feats: list[np.ndarray], kind: str, run: dict[str, Any],
                shard: tuple[int, int] | None) -> Any:
    """The AnnData of embedded ``items``: obs, the obsm keys, the provenance."""
    import anndata as ad

    adata = ad.AnnData(obs=obs_from_store(store).iloc[items.start:items.stop])
    for key, values in split_layers(embedders[0], feats[0]).items():
        adata.obsm[key] = values
    if len(feats) > 1:
        for i, f in enumerate(feats):
            adata.obsm[f"X_bioaug_{i}"] = f
        adata.obsm["X_bioaug_fused"] = np.concatenate([l2_normalise(f) for f in feats],
                                                      axis=1).astype(np.float32)
    adata.uns["bioaug"] = _provenance(store, kind, embedders, run)
    if shard is not None:
        adata.uns["bioaug"]["shard"] = {"index": shard[0], "count": shard[1],
                                        "start": items.start, "stop": items.stop}
    return adata


def embed(checkpoints: Sequence[str | os.PathLike] | str | os.PathLike = (),
          data: str | os.PathLike | Store | None = None, *, layer: str | None = None,
          batch_size: int = 256, backbone: str | None = None, raw: bool = False,
          device: str = "auto", aggregate: str | None = None, preprocess: str = "resize",
          backbone_kwargs: dict[str, Any] | None = None, raw_size: int = DEFAULT_RAW_SIZE,
          seed: int = 0, work_dir: str | os.PathLike | None = None,
          shard: tuple[int, int] | str | None = None) -> Any:
    """Embed every item of a crop store; one row per item, as AnnData (scanpy's layout:
    ``sc.pp.neighbors(adata, use_rep="X_bioaug")`` works on it as it is).

    Parameters
    ----------
    checkpoints
        Training run directories or ``checkpoint.pt`` files; with several, each model's
        embedding is ``obsm["X_bioaug_<i>"]`` and their fusion (concatenated L2-normalised
        embeddings, Ericsson et al., BMVC 2022) ``obsm["X_bioaug_fused"]``.
    data
        The crop store (a path made by ``bioaug data prepare``, or an open ``Store``).
    layer
        ``"backbone"``, ``"feature_map"``, ``"projection"`` (checkpoints only), a stage or
        block the backbone lists (``"stage3"``), or ``"all"`` (every layer, in
        ``obsm["X_bioaug_<layer>"]``). None: the layer the backbone declares; recorded in
        ``uns["bioaug"]["layer"]`` and ``["layer_source"]``.
    batch_size
        Items per forward pass; memory is bounded by it.
    backbone
        A registered backbone instead of checkpoints: ``"resnet101_supervised"`` (ImageNet
        weights from disk), any other with seeded random weights.
    raw
        Embed raw pixels (each channel area-averaged to ``raw_size`` × ``raw_size``).
    device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"mps"``.
    aggregate
        ``"well"`` or ``"treatment"``: return those profiles instead of cells (the columns
        are checked before any work).
    preprocess
        How items reach a checkpoint's crop size: ``"resize"``, ``"center_crop"``, ``"none"``.
    backbone_kwargs
        Extra arguments of the named ``backbone`` (e.g. ``{"weights": "r101.pth"}``).
    raw_size
        Side of the area-averaged raw-pixel image.
    seed
        Seed of a random-weight backbone (0 … 2**32 - 1, :func:`bioaug.seeds.check_seed`).
    work_dir
        A folder for resumable progress (the caller removes it once the result is saved).
    shard
        ``(i, n)`` or ``"i/n"``: only the ``i``-th of ``n`` contiguous blocks of items;
        join the shards with :func:`bioaug.embed.merge_files`.

    Returns
    -------
    AnnData
        ``obs`` the store's metadata, ``obsm["X_bioaug"]`` the embedding,
        ``uns["bioaug"]`` the provenance. Mistakes raise a
        :class:`bioaug.errors.BioaugError` (NaN pixels or features named by item).

    Examples
    --------
    A store of six 3-channel crops, each channel a constant grey level:

    >>> import tempfile
    >>> import numpy as np
    >>> import pandas as pd
    >>> import bioaug
    >>> from bioaug.data.store import write_store
    >>> levels = np.array([[0, 51, 255], [102, 153, 204]] * 3, dtype=np.uint8)
    >>> images = np.broadcast_to(levels[:, :, None, None], (6, 3, 16, 16))
    >>> obs = pd.DataFrame({"plate": "P1", "well": ["A01", "A01", "A02", "A02", "B01", "B01"]})
    >>> store = write_store(f"{tempfile.mkdtemp()}/crops", images, obs,
    ...                     channels=["DAPI", "Tubulin", "Actin"])

    Raw pixels area-averaged to 1 × 1 are each channel's mean, scaled to [0, 1]:

    >>> cells = bioaug.embed(data=store, raw=True, raw_size=1, device="cpu")
    >>> cells.obsm["X_bioaug"][:2].round(3)
    array([[0. , 0.2, 1. ],
           [0.4, 0.6, 0.8]], dtype=float32)
    >>> cells.obs["well"].tolist()
    ['A01', 'A01', 'A02', 'A02', 'B01', 'B01']

    A named backbone with seeded random weights (its pooled 512-d output), and well
    profiles in one call:

    >>> bioaug.embed(data=store, backbone="resnet18", device="cpu").obsm["X_bioaug"].shape
    (6, 512)
    >>> bioaug.embed(data=store, raw=True, raw_size=1, device="cpu", aggregate="well").n_obs
    3
    """
    # 80+ lines only through its documentation (parameters and a running example), not its code.
    if data is None:
        raise ConfigError("embed needs a store: data=PATH (made by `bioaug data prepare`)")
    store = data if isinstance(data, Store) else Store.open(data)
    source = Source(tuple([checkpoints] if isinstance(checkpoints, (str, os.PathLike))
                          else checkpoints), backbone, bool(raw), layer, preprocess,
                    backbone_kwargs, raw_size, seed)
    source.check()
    dev = pick_device(device)
    items, parsed = _plan_items(store, batch_size, shard, aggregate)
    check_finite_pixels(store, items)
    embedders = SOURCES[source.kind](source, store, dev)
    feats = run_embedders(store, embedders, batch_size=int(batch_size), device=dev,
                          work_dir=work_dir, items=items)
    adata = _to_anndata(store, items, embedders,
                        [np.array(f, dtype=np.float32) for f in feats],  # maps → memory
                        source.kind, provenance(stage="embed", device=str(dev),
                                                batch_size=int(batch_size)), parsed)
    if aggregate is None:
        return adata
    from bioaug.embed.aggregate import aggregate as _aggregate

    return _aggregate(adata, aggregate)
