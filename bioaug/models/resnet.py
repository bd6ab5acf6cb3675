"""ResNet encoders (He et al. 2016, "Deep Residual Learning for Image Recognition").

torchvision's ResNet-18/50 definitions with the input convolution set to the data's
channel count and the classifier removed (``fc = Identity``), so the output is the
global-average-pooled feature vector (512 for ResNet-18, 2048 for ResNet-50).
``cifar_stem=True`` swaps the 7×7 stride-2 convolution and max-pool for a single 3×3
stride-1 convolution, the usual adaptation for 32×32 images (as in SimCLR's CIFAR-10
experiments, Chen et al. 2020).

Stages, for probing (:mod:`bioaug.models.probe`): ``stage1`` … ``stage4`` are torchvision's
``layer1`` … ``layer4`` (after the stem), each global-average pooled; ``stage4`` pooled is
the ``backbone`` output.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torchvision.models import resnet as tv_resnet

from bioaug.models.probe import check_probe_layers, global_average_pool, numbered_layers

__all__ = ["ResNetBackbone", "resnet18", "resnet50"]


class ResNetBackbone(nn.Module):
    """A torchvision ResNet without its classifier; ``forward`` returns (B, out_dim)."""

    def __init__(
        self,
        factory: Callable[..., tv_resnet.ResNet],
        in_channels: int,
        cifar_stem: bool = False,
        zero_init_residual: bool = False,
        name: str = "resnet",
    ) -> None:
        super().__init__()
        net = factory(weights=None, zero_init_residual=zero_init_residual)
        if cifar_stem:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        else:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.out_dim: int = net.fc.in_features
        net.fc = nn.Identity()
        self.net = net
        self.name = name
        self.in_channels = in_channels
        self.cifar_stem = bool(cifar_stem)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """The last residual stage's map before global pooling, ``(B, out_dim, h, w)``."""
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        return n.layer4(n.layer3(n.layer2(n.layer1(x))))

    def _stages(self) -> list[nn.Module]:
        n = self.net
        return [n.layer1, n.layer2, n.layer3, n.layer4]

    def probe_layers(self) -> list[str]:
        """The residual stages this encoder can be probed at, in depth order."""
        return numbered_layers("stage", len(self._stages()))

    def probe(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        """Stage ``layer``'s map, global-average pooled: ``(B, channels)``."""
        return self.probe_many(x, [layer])[layer]

    def probe_many(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """Several stages' pooled maps from one forward pass (stops after the deepest)."""
        names = self.probe_layers()
        check_probe_layers(self.name, layers, names)
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        out: dict[str, torch.Tensor] = {}
        for name, stage in zip(names, self._stages(), strict=True):
            x = stage(x)
            if name in layers:
                out[name] = global_average_pool(x)
            if len(out) == len(set(layers)):
                break
        return out


def resnet18(*, in_channels: int, cifar_stem: bool = False) -> ResNetBackbone:
    """ResNet-18 encoder, ``out_dim = 512``."""
    return ResNetBackbone(tv_resnet.resnet18, in_channels, cifar_stem=cifar_stem, name="resnet18")


def resnet50(*, in_channels: int, cifar_stem: bool = False) -> ResNetBackbone:
    """ResNet-50 encoder, ``out_dim = 2048``."""
    return ResNetBackbone(tv_resnet.resnet50, in_channels, cifar_stem=cifar_stem, name="resnet50")
