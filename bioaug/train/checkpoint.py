"""Checkpoints: what a run saves, and loading a trained model back.

A checkpoint (``RUN/checkpoint.pt``) is a plain ``torch.save`` dict that loads with
``torch.load(weights_only=True)``: only tensors, dicts, lists, strings and numbers (the
configuration as a plain dict, RNG states as uint8 tensors). It is replaced atomically
(:func:`bioaug.io.atomic_save`), so a crash or a full disk leaves the previous one intact.

Keys::

    format, version           "bioaug-checkpoint", 1
    config                    the resolved TrainConfig (plain dict; recipe values filled in)
    config_sources            option → where its value came from (recipe, run file, …)
    config_warnings           the settings flagged at the start as unfit for the run
    health_warnings           what the last steps said went wrong, as of this checkpoint
                              (Method.health_warnings: DINO's collapse; RankMe's)
    protocol_text             the protocol file as written; protocol_effective: the YAML
                              actually used (crop override applied); crop_size
    store                     path, channels, n_items, image_size, dtype, header_sha256
    method                    name, hparams (all of them, resolved), n_items + batch_size
                              (configure_for_dataset)
    backbone                  name, kwargs, in_channels, out_dim
    model                     Method.state_dict() (queue, momentum encoder included)
    optimizer                 optimiser state_dict
    schedule                  step, total_steps, warmup_steps, steps_per_epoch, base_lr
    epoch, step               epochs completed, optimiser steps done (step // steps_per_epoch
                              = epoch being trained; step % steps_per_epoch = batches done)
    finished                  True once the last step is done
    rng                       torch (CPU) and augmentation generator states; cuda states
    last_loss, provenance
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bioaug.errors import CheckpointError
from bioaug.io import atomic_save, sha256_file

FORMAT = "bioaug-checkpoint"
VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"


def checkpoint_path(run_dir_or_file: str | os.PathLike) -> Path:
    """``RUN/checkpoint.pt`` for a run directory, the path itself for a file."""
    p = Path(run_dir_or_file)
    return p / CHECKPOINT_NAME if p.is_dir() else p


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write ``payload`` atomically (the previous checkpoint survives any failure)."""
    data = {"format": FORMAT, "version": VERSION, **payload}
    atomic_save(path, lambda tmp: torch.save(data, tmp))


def read_checkpoint(run_dir_or_file: str | os.PathLike,
                    map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint dict (``weights_only=True``); problems → CheckpointError.

    Parameters
    ----------
    run_dir_or_file
        A run directory (its ``checkpoint.pt``) or a checkpoint file.
    map_location
        Where the tensors are loaded.

    Returns
    -------
    dict
        The checkpoint: ``config``, ``method``, ``backbone``, ``model`` (the weights),
        ``step``, ``epoch``, ``finished`` and the provenance of the run.

    Examples
    --------
    A 2-step SimCLR run on 16 two-channel crops of 16 px:

    >>> import tempfile
    >>> import numpy as np
    >>> import pandas as pd
    >>> from bioaug.data.store import write_store
    >>> from bioaug.train import load_config, read_checkpoint, train
    >>> folder = tempfile.mkdtemp()
    >>> images = np.random.default_rng(0).integers(0, 65535, (16, 2, 16, 16), dtype=np.uint16)
    >>> _ = write_store(f"{folder}/crops", images, pd.DataFrame({"label": ["a", "b"] * 8}),
    ...                 channels=["DAPI", "Actin"])
    >>> config = load_config(data=f"{folder}/crops", protocol="none", out=f"{folder}/run",
    ...                      method="simclr", backbone="vgg_mnist", width=0.25, crop=12,
    ...                      batch_size=8, epochs=1, max_steps=2, device="cpu", num_workers=0,
    ...                      tensorboard=False, preview_views=0,
    ...                      method_kwargs={"proj_hidden_dim": 16, "proj_output_dim": 8})
    >>> run = train(config)
    >>> checkpoint = read_checkpoint(run)
    >>> checkpoint["step"], checkpoint["finished"], checkpoint["method"]["name"]
    (2, True, 'simclr')
    >>> checkpoint["backbone"]["in_channels"], checkpoint["crop_size"]
    (2, 12)
    >>> read_checkpoint(f"{folder}/crops")
    Traceback (most recent call last):
    ...
    bioaug.errors.CheckpointError: no checkpoint at .../crops/checkpoint.pt...
    """
    path = checkpoint_path(run_dir_or_file)
    if not path.exists():
        where = Path(run_dir_or_file)
        raise CheckpointError(f"no checkpoint at {path}",
                              hint="train one with `bioaug train`" if not where.is_dir()
                              else f"{where} is not a finished or started training run")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError,
            ValueError, KeyError, io.UnsupportedOperation) as exc:
        raise CheckpointError(f"the checkpoint is corrupt or truncated ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})", where=path,
                              hint="resume from an earlier copy or train again") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError("not a bioaug checkpoint (no 'format: bioaug-checkpoint' key)",
                              where=path)
    if int(data.get("version", 0)) > VERSION:
        raise CheckpointError(f"checkpoint version {data.get('version')} is newer than this "
                              f"bioaug reads (≤{VERSION})", where=path, hint="upgrade bioaug")
    for key in ("config", "method", "backbone", "model"):
        if key not in data:
            raise CheckpointError(f"the checkpoint has no '{key}' entry", where=path)
    return data


@dataclass
class Trained:
    """A trained model loaded from a checkpoint (see :func:`load_trained`)."""

    method: nn.Module
    backbone: nn.Module
    config: dict[str, Any]
    protocol_text: str
    n_channels: int
    channels: list[str]
    checkpoint_sha256: str
    epoch: int
    finished: bool
    path: Path
    step: int = 0
    method_name: str = ""
    backbone_name: str = ""
    crop_size: int | None = None
    image_size: tuple[int, int] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    #: which cells formed positive pairs and batches (``--positives``, ``--batches``)
    sampling: dict[str, Any] | None = None

    @property
    def out_dim(self) -> int:
        return int(getattr(self.backbone, "out_dim", 0))


def build_model(data: dict[str, Any], where: str | os.PathLike = "<checkpoint>") -> nn.Module:
    """Rebuild the (untrained) method recorded in a checkpoint dict."""
    from bioaug.methods import build_method
    from bioaug.models import build_backbone

    bb, me = data["backbone"], data["method"]
    backbone = build_backbone(bb["name"], int(bb["in_channels"]), **dict(bb.get("kwargs") or {}))
    method = build_method(me["name"], backbone, **dict(me.get("hparams") or {}))
    if me.get("n_items") is not None:
        method.configure_for_dataset(int(me["n_items"]), int(me["batch_size"]))
    return method


def load_model_state(method: nn.Module, state: dict[str, torch.Tensor],
                     where: str | os.PathLike) -> None:
    try:
        method.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"the weights do not fit the recorded model: "
                              f"{str(exc).splitlines()[0]}", where=where,
                              hint="the checkpoint was written by another bioaug version or "
                              "edited") from None


def load_trained(run_dir_or_file: str | os.PathLike, device: str | torch.device = "cpu"
                 ) -> Trained:
    """The trained method (eval mode, on ``device``) and what it was trained with.

    Parameters
    ----------
    run_dir_or_file
        A run directory (its ``checkpoint.pt``) or a checkpoint file.
    device
        Where the model is put.

    Returns
    -------
    Trained
        The method and its ``backbone`` (eval mode), the run's config, protocol text,
        channels, crop size and provenance.

    Examples
    --------
    A 2-step SimCLR run on 16 two-channel crops of 16 px, then its encoder on new crops:

    >>> import tempfile
    >>> import numpy as np
    >>> import pandas as pd
    >>> from bioaug.data.store import write_store
    >>> from bioaug.train import load_config, load_trained, train
    >>> folder = tempfile.mkdtemp()
    >>> images = np.random.default_rng(0).integers(0, 65535, (16, 2, 16, 16), dtype=np.uint16)
    >>> _ = write_store(f"{folder}/crops", images, pd.DataFrame({"label": ["a", "b"] * 8}),
    ...                 channels=["DAPI", "Actin"])
    >>> config = load_config(data=f"{folder}/crops", protocol="none", out=f"{folder}/run",
    ...                      method="simclr", backbone="vgg_mnist", width=0.25, crop=12,
    ...                      batch_size=8, epochs=1, max_steps=2, device="cpu", num_workers=0,
    ...                      tensorboard=False, preview_views=0,
    ...                      method_kwargs={"proj_hidden_dim": 16, "proj_output_dim": 8})
    >>> import torch
    >>> trained = load_trained(train(config))
    >>> trained.method_name, trained.backbone_name, trained.channels, trained.crop_size
    ('simclr', 'vgg_mnist', ['DAPI', 'Actin'], 12)
    >>> with torch.no_grad():
    ...     features = trained.backbone(torch.rand(3, 2, 12, 12))
    >>> tuple(features.shape) == (3, trained.out_dim), trained.method.training
    (True, False)
    """
    path = checkpoint_path(run_dir_or_file)
    data = read_checkpoint(path, map_location="cpu")
    method = build_model(data, path)
    load_model_state(method, data["model"], path)
    method.to(device).eval()
    store = data.get("store") or {}
    image_size = store.get("image_size")
    return Trained(
        method=method,
        backbone=method.backbone,
        config=dict(data["config"]),
        protocol_text=str(data.get("protocol_text", "")),
        n_channels=int(data["backbone"]["in_channels"]),
        channels=list(store.get("channels") or []),
        checkpoint_sha256=sha256_file(path),
        epoch=int(data.get("epoch", 0)),
        finished=bool(data.get("finished", False)),
        path=path,
        step=int(data.get("step", 0)),
        method_name=str(data["method"]["name"]),
        backbone_name=str(data["backbone"]["name"]),
        crop_size=data.get("crop_size"),
        image_size=tuple(image_size) if image_size else None,
        provenance=dict(data.get("provenance") or {}),
        sampling=data.get("sampling"),
    )
