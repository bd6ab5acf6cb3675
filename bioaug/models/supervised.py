"""The supervised baseline: torchvision's ImageNet-trained ResNet-101, frozen.

Bendidi et al. 2023 ("No Free Lunch in Self-Supervised Representation Learning") compare
self-supervised encoders on BBBC021 with features of a ResNet-101 trained with labels on
ImageNet (He et al. 2016). This module loads those weights **from disk only** — a file
given as ``weights=`` or torchvision's file in the torch hub cache
(``torch.hub.get_dir()/checkpoints/resnet101-*.pth``) — and never downloads anything.

Inputs are float images in [0, 1]; ImageNet normalisation is applied inside. The network
is a frozen feature extractor: always in eval mode, no parameter requires a gradient.

Mapping the data's channels to the RGB stem (``channel_map``):

* ``None`` (default, "auto"): 1 channel → ``"replicate"``; 3 channels → ``"rgb"``;
  any other count → ``"per_channel"``.
* ``"rgb"``: channels 0, 1, 2 feed R, G, B as they are (for BBBC021 this is
  DAPI → R, Tubulin → G, Actin → B). Needs exactly 3 channels.
* ``"replicate"``: one channel copied to R, G and B. Needs exactly 1 channel.
* ``"mean"``: the mean over channels, replicated as gray; ``out_dim`` 2048.
* ``"per_channel"``: each channel embedded separately as a gray image and the features
  concatenated in channel order; ``out_dim`` is 2048 × C.
* a list of three channel indices, e.g. ``[2, 1, 0]``: those channels as R, G, B.

``input_size`` optionally resizes crops (bilinear) to that side before the network, e.g.
224 to match ImageNet's scale; by default crops are used at their own size.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet101

from bioaug.errors import CheckpointError, ConfigError

__all__ = [
    "CHANNEL_MAPS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "RESNET101_FILES",
    "SupervisedResNet101",
    "find_resnet101_weights",
    "resnet101_supervised",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: torchvision's released ImageNet weights for ResNet-101 (file name → URL).
RESNET101_FILES = {
    "resnet101-63fe2227.pth": "https://download.pytorch.org/models/resnet101-63fe2227.pth",
    "resnet101-cd907fc2.pth": "https://download.pytorch.org/models/resnet101-cd907fc2.pth",
}
CHANNEL_MAPS = ("rgb", "replicate", "mean", "per_channel")


def _hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def find_resnet101_weights(weights: str | os.PathLike | None = None) -> Path:
    """The weights file to use: ``weights`` if given, else torchvision's file in the hub cache.

    Prefers ``resnet101-63fe2227.pth`` (IMAGENET1K_V1, the classic release) when several
    are cached. Raises :class:`CheckpointError` saying where it looked when none is found.
    """
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise CheckpointError(
                f"ResNet-101 weights file not found: {path}",
                hint=_placement_hint(),
            )
        return path
    cache = _hub_checkpoint_dir()
    found = sorted(glob.glob(str(cache / "resnet101-*.pth")))
    if not found:
        raise CheckpointError(
            f"no ImageNet ResNet-101 weights found: looked for {cache / 'resnet101-*.pth'} "
            "(the torch hub cache; set TORCH_HOME to move it) and no weights= file was given",
            hint=_placement_hint(),
        )
    preferred = [p for p in found if Path(p).name == "resnet101-63fe2227.pth"]
    return Path(preferred[0] if preferred else found[0])


def _placement_hint() -> str:
    files = "; ".join(f"{name} from {url}" for name, url in RESNET101_FILES.items())
    return (
        f"bioaug never downloads weights. Fetch torchvision's file ({files}) and put it in "
        f"{_hub_checkpoint_dir()}/ , or pass its path as weights=PATH"
    )


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"cannot read ResNet-101 weights ({type(exc).__name__}: {exc})", where=path,
            hint=_placement_hint(),
        ) from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError("not a state dict of tensors", where=path, hint=_placement_hint())
    return state


class SupervisedResNet101(nn.Module):
    """Frozen ImageNet ResNet-101 features (2048 per RGB image) for C-channel crops."""

    def __init__(
        self,
        in_channels: int,
        state_dict: dict[str, torch.Tensor],
        channel_map: str | list[int] | None = None,
        input_size: int | None = None,
        source: str = "",
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.channel_map = _resolve_channel_map(channel_map, in_channels)
        if input_size is not None and (isinstance(input_size, bool) or int(input_size) < 32):
            raise ConfigError(f"resnet101_supervised: input_size must be ≥ 32, got {input_size!r}")
        self.input_size = None if input_size is None else int(input_size)
        with torch.device("meta"):  # no random init: every tensor comes from the file
            net = resnet101(weights=None)
        try:
            net.load_state_dict(state_dict, strict=True, assign=True)
        except RuntimeError as exc:
            raise CheckpointError(
                f"weights do not fit torchvision's ResNet-101: {str(exc).splitlines()[0]}",
                where=source or None, hint=_placement_hint(),
            ) from exc
        net.fc = nn.Identity()
        self.net = net.float()
        self.source = source
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.out_dim: int = 2048 * (in_channels if self.channel_map == "per_channel" else 1)
        super().train(False)

    def train(self, mode: bool = True) -> SupervisedResNet101:
        """Stays in eval mode: this is a frozen feature extractor."""
        return super().train(False)

    def _rgb_batches(self, x: torch.Tensor) -> list[torch.Tensor]:
        cmap = self.channel_map
        if isinstance(cmap, list):
            return [x[:, cmap]]
        if cmap == "rgb":
            return [x]
        if cmap in ("replicate", "mean"):
            gray = x.mean(dim=1, keepdim=True)
            return [gray.expand(-1, 3, -1, -1)]
        return [x[:, c : c + 1].expand(-1, 3, -1, -1) for c in range(x.shape[1])]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(
                f"resnet101_supervised expects (B, {self.in_channels}, H, W) input, "
                f"got shape {tuple(x.shape)}"
            )
        with torch.no_grad():
            if self.input_size is not None and tuple(x.shape[-2:]) != (self.input_size,) * 2:
                x = F.interpolate(
                    x, size=(self.input_size, self.input_size), mode="bilinear",
                    align_corners=False, antialias=True,
                )
            feats = [self.net((rgb - self.mean) / self.std) for rgb in self._rgb_batches(x)]
            return torch.cat(feats, dim=1)


def _resolve_channel_map(channel_map: Any, n: int) -> str | list[int]:
    if channel_map is None:
        return {1: "replicate", 3: "rgb"}.get(n, "per_channel")
    if isinstance(channel_map, str):
        if channel_map not in CHANNEL_MAPS:
            raise ConfigError(
                f"resnet101_supervised: unknown channel_map '{channel_map}'; "
                f"valid: {', '.join(CHANNEL_MAPS)} or a list of 3 channel indices"
            )
        need = {"rgb": 3, "replicate": 1}.get(channel_map)
        if need is not None and n != need:
            raise ConfigError(
                f"resnet101_supervised: channel_map '{channel_map}' needs {need} channel(s), "
                f"the data has {n}; use 'per_channel', 'mean' or a list of 3 channel indices"
            )
        return channel_map
    idx = list(channel_map)
    if len(idx) != 3 or not all(
        isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n for i in idx
    ):
        raise ConfigError(
            f"resnet101_supervised: channel_map {channel_map!r} must be 3 channel indices "
            f"in [0, {n - 1}] (R, G, B)"
        )
    return idx


def resnet101_supervised(
    *,
    in_channels: int,
    weights: str | os.PathLike | None = None,
    channel_map: str | list[int] | None = None,
    input_size: int | None = None,
) -> SupervisedResNet101:
    """Frozen ImageNet ResNet-101 (torchvision weights read from disk, never downloaded).

    See the module docstring for ``channel_map``. Raises :class:`CheckpointError` when no
    weights file is found (the message says where it looked and which file to place).
    """
    # Validate the mapping before touching the (large) weights file.
    _resolve_channel_map(channel_map, in_channels)
    path = find_resnet101_weights(weights)
    return SupervisedResNet101(
        in_channels, _load_state_dict(path), channel_map=channel_map,
        input_size=input_size, source=str(path),
    )
