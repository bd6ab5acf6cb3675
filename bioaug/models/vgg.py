"""VGG encoders with batch norm and global average pooling.

``vgg13_bn`` follows torchvision's VGG13-BN feature extractor (configuration "B" of
Simonyan & Zisserman 2015, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", with batch norm after every convolution): conv stacks
``[64, 64, M, 128, 128, M, 256, 256, M, 512, 512, M, 512, 512, M]``. The fully connected
classifier is replaced by global average pooling, so any crop of at least 32 px (five
2×2 max-pools) works, and the number of input channels comes from the data. ``width``
scales every channel count (``width=0.25`` gives 16 … 128 channels) for small or CPU runs.

``vgg_mnist`` is a small VGG-style encoder for 28×28 images (MNIST-like digits), as used
for the MNIST experiments of Bendidi et al. 2023 ("No Free Lunch in Self-Supervised
Representation Learning"): three conv-BN-ReLU stages and global average pooling.

Stages, for probing (:mod:`bioaug.models.probe`): a stage is the convolutions up to and
including a max-pool (or up to the end); ``stage1`` … ``stage5`` for VGG13,
``stage1`` … ``stage3`` for ``vgg_mnist``, each global-average pooled. The last stage,
pooled, is the ``backbone`` output.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from bioaug.errors import ConfigError
from bioaug.models.probe import check_probe_layers, global_average_pool, numbered_layers

__all__ = ["VGG", "VGG13_CONFIG", "VGG_MNIST_CONFIG", "vgg13_bn", "vgg_mnist"]

#: torchvision's VGG13 ("B") configuration; "M" is a 2×2 max-pool.
VGG13_CONFIG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M",
)
#: The small MNIST encoder: 28 → 14 → 7 → global pool.
VGG_MNIST_CONFIG: tuple[int | str, ...] = (32, 32, "M", 64, 64, "M", 128, 128)


def _scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


class VGG(nn.Module):
    """Conv-BN-ReLU stacks with max-pools, then global average pooling to ``out_dim``."""

    def __init__(
        self,
        config: Sequence[int | str],
        in_channels: int,
        width: float = 1.0,
        name: str = "vgg",
    ) -> None:
        super().__init__()
        if not isinstance(width, int | float) or isinstance(width, bool) or not width > 0:
            raise ConfigError(f"backbone '{name}': width must be a number > 0, got {width!r}")
        if _scaled(min(c for c in config if c != "M"), width) < 1:  # pragma: no cover
            raise ConfigError(f"backbone '{name}': width {width} leaves a layer with 0 channels")
        self.name = name
        self.width = float(width)
        self.in_channels = in_channels
        layers: list[nn.Module] = []
        channels = in_channels
        n_pools = 0
        stage_ends: list[int] = []
        for item in config:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                n_pools += 1
                stage_ends.append(len(layers))
                continue
            out = _scaled(int(item), width)
            layers += [
                nn.Conv2d(channels, out, kernel_size=3, padding=1),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
            ]
            channels = out
        self.features = nn.Sequential(*layers)
        if not stage_ends or stage_ends[-1] != len(layers):
            stage_ends.append(len(layers))
        #: End index (exclusive) in ``features`` of each stage.
        self.stage_ends: tuple[int, ...] = tuple(stage_ends)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_dim: int = channels
        #: Smallest crop side the max-pools can take (each halves the size).
        self.min_input_size: int = 2**n_pools
        self._init_weights()

    def _init_weights(self) -> None:
        # As torchvision's VGG: He-normal (fan_out) convolutions, unit BN scales.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.feature_map(x)), 1)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """The last convolutional map before global pooling, ``(B, out_dim, h, w)``."""
        self._check_input(x)
        return self.features(x)

    def probe_layers(self) -> list[str]:
        """The stages this encoder can be probed at, in depth order."""
        return numbered_layers("stage", len(self.stage_ends))

    def probe(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        """Stage ``layer``'s map, global-average pooled: ``(B, channels)``."""
        return self.probe_many(x, [layer])[layer]

    def probe_many(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """Several stages' pooled maps from one forward pass (stops after the deepest)."""
        names = self.probe_layers()
        check_probe_layers(self.name, layers, names)
        self._check_input(x)
        out: dict[str, torch.Tensor] = {}
        start = 0
        for name, end in zip(names, self.stage_ends, strict=True):
            x = self.features[start:end](x)
            start = end
            if name in layers:
                out[name] = global_average_pool(x)
            if len(out) == len(set(layers)):
                break
        return out

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(
                f"backbone '{self.name}' expects (B, {self.in_channels}, H, W) input, "
                f"got shape {tuple(x.shape)}"
            )
        h, w = x.shape[-2:]
        if min(h, w) < self.min_input_size:
            raise ConfigError(
                f"backbone '{self.name}' needs crops of at least {self.min_input_size} px "
                f"(it halves the size {self.min_input_size.bit_length() - 1} times); got {h}×{w}",
                hint="use a larger crop_size in the protocol, or a smaller backbone "
                "(vgg_mnist takes 28×28)",
            )


def vgg13_bn(*, in_channels: int, width: float = 1.0) -> VGG:
    """VGG13 with batch norm (torchvision configuration), global-average pooled.

    ``out_dim = round(512 · width)``; crops must be at least 32 px.
    """
    return VGG(VGG13_CONFIG, in_channels, width=width, name="vgg13_bn")


def vgg_mnist(*, in_channels: int, width: float = 1.0) -> VGG:
    """Small VGG for 28×28 images: 2×(32) M 2×(64) M 2×(128), then global pooling.

    ``out_dim = round(128 · width)``; crops must be at least 4 px.
    """
    return VGG(VGG_MNIST_CONFIG, in_channels, width=width, name="vgg_mnist")
